"""Loss landscapes on 2-D planes through parameter space.

A landscape is the loss (and accuracy) on the grid

.. math:: θ(a, b) = θ^* + a\\, s_i \\hat v_i + b\\, s_j \\hat v_j

for a direction pair ``(v_i, v_j)`` with unit vectors ``v̂`` and axis scales
``s``.  The grid coordinates ``a, b`` are therefore *in units of* ``s``:

* ``"sqrt_eigenvalue"``: ``s = sqrt(λ)`` for covariance eigenvectors (one unit
  is one standard deviation of the sampled θ along the direction); for Hessian
  eigenvectors ``s = 1/sqrt(|λ_H|)`` (the thermal width at β = 1 of the
  quadratic approximation, i.e. sqrt of the matching covariance eigenvalue);
* ``"theta_norm"``: ``s = |θ*|``;
* ``"raw"``: ``s = |v|`` (the vector as given; filter-normalised random
  directions use this).

Directions come from :func:`covariance_directions`,
:func:`hessian_directions` (finite-difference Hessian-vector products +
Lanczos), :func:`random_directions` (filter-normalised, Li et al. 2018,
"Visualizing the Loss Landscape of Neural Nets") or :func:`user_directions`.

Evaluation
----------
* An :class:`~thermo.networks.MLP` with ``X, y``: ``train_loss`` is the
  **mean** loss (``net.loss``), ``train_acc`` the accuracy.
* A :class:`~thermo.potentials.Posterior`: the same for its network and data,
  plus ``energy`` = U (total loss plus prior).
* Any other potential: ``energy`` = U, ``train_loss`` = U, ``train_acc`` = NaN.

For a single-layer network (one weight layer, e.g. the MNIST perceptron) the
pre-activations are affine in ``(a, b)``: ``Z(a, b) = Z₀ + a Z_i + b Z_j``
with ``Z₀ = X W* + b*`` and ``Z_i = X W_i + b_i`` (``V_i`` reshaped as
``(W_i, b_i)``) computed once; every grid point then costs ``O(N · classes)``
in a Numba kernel parallel over grid points (``method="affine"``).  Deeper
networks call the network's batched kernels per grid point.

Surfaces are written with :meth:`Landscape.save` in the HDF5 layout of Li et
al.'s ``loss-landscape`` tool (``xcoordinates``, ``ycoordinates``,
``train_loss``, ``train_acc`` with ``train_loss[i, j]`` at
``(xcoordinates[i], ycoordinates[j])``) plus direction metadata.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse.linalg as spla
from numba import njit, prange

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)
from thermo.analysis.covariance import project
from thermo.networks.kernels import LABEL_SIGN, LINEAR, _activate, _loss_delta, _predict_one

__all__ = [
    "Directions",
    "Landscape",
    "covariance_directions",
    "hessian_directions",
    "hessian_vector_product",
    "random_directions",
    "user_directions",
    "landscape",
    "zoom_levels",
    "load_landscape",
]

_UNITS = ("sqrt_eigenvalue", "theta_norm", "raw")


@dataclass
class Directions:
    """A pair of directions spanning a landscape plane.

    Attributes
    ----------
    vectors : ndarray, shape (d, 2)
        Unit vectors ``v̂_i, v̂_j`` as columns.
    scales : ndarray, shape (2,)
        Length in θ-space of one unit of each axis (see module docstring).
    units : str
        "sqrt_eigenvalue", "theta_norm" or "raw".
    kind : str
        "covariance", "hessian", "random" or "user".
    ranks : ndarray of int, shape (2,)
        Eigenvector numbers (1 = largest eigenvalue; -1 when not eigenvectors).
    eigenvalues : ndarray, shape (2,)
        Eigenvalues of the directions (NaN when not eigenvectors).
    labels : tuple of str
        Axis labels for plots.

    Examples
    --------
    >>> directions = user_directions([2.0, 0.0, 0.0], [0.0, 1.0, 1.0])
    >>> directions.scales, directions.kind
    (array([2.        , 1.41421356]), 'user')
    >>> directions.steps  # θ-displacement per axis unit
    array([[2., 0.],
           [0., 1.],
           [0., 1.]])
    """

    vectors: np.ndarray
    scales: np.ndarray
    units: str
    kind: str
    ranks: np.ndarray
    eigenvalues: np.ndarray
    labels: tuple

    @property
    def steps(self):
        """``(d, 2)`` θ-displacement per unit of each axis, ``s v̂``."""
        return self.vectors * self.scales


def _unit_columns(vectors, name="directions"):
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 2:
        raise ValueError(f"{name} must have shape (d, 2), got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} contains NaN or inf")
    norms = np.linalg.norm(v, axis=0)
    if np.any(norms == 0):
        raise ValueError(f"{name} contains a zero vector")
    unit = v / norms
    if abs(unit[:, 0] @ unit[:, 1]) > 1 - 1e-10:
        raise ValueError(f"the two {name} are parallel: they do not span a plane")
    return unit, norms


def _scales(units, norms, eigenvalues, centre, kind):
    if units not in _UNITS:
        raise ValueError(f"units must be one of {_UNITS}, got {units!r}")
    if units == "raw":
        return norms.copy()
    if units == "theta_norm":
        if centre is None:
            raise ValueError("units='theta_norm' needs the centre θ*")
        scale = float(np.linalg.norm(centre))
        if scale == 0:
            raise ValueError("units='theta_norm' with θ* = 0: use 'raw' or 'sqrt_eigenvalue'")
        return np.array([scale, scale])
    ev = np.asarray(eigenvalues, dtype=np.float64)
    if np.any(~np.isfinite(ev)):
        raise ValueError("units='sqrt_eigenvalue' needs eigenvalues")
    if kind == "hessian":
        if np.any(ev == 0):
            raise ValueError("a Hessian eigenvalue is zero: use units='raw' or 'theta_norm'")
        return 1.0 / np.sqrt(np.abs(ev))
    if np.any(ev <= 0):
        raise ValueError(f"covariance eigenvalues must be positive for units='sqrt_eigenvalue', "
                         f"got {ev}")
    return np.sqrt(ev)


def _check_ranks(ranks, available):
    try:
        ranks = np.array([int(r) for r in ranks], dtype=np.int64)
    except (TypeError, ValueError):
        raise TypeError(f"ranks must be two integers, got {ranks!r}") from None
    if ranks.shape != (2,):
        raise ValueError(f"ranks must be two eigenvector numbers, got {ranks}")
    if np.any(ranks < 1) or np.any(ranks > available):
        raise ValueError(f"ranks are eigenvector numbers 1..{available} (1 = largest "
                         f"eigenvalue), got {ranks.tolist()}")
    if ranks[0] == ranks[1]:
        raise ValueError("the two ranks must differ")
    return ranks


def covariance_directions(eigenpairs, ranks=(1, 2), units="sqrt_eigenvalue", centre=None):
    """Directions along covariance eigenvectors.

    Parameters
    ----------
    eigenpairs : Eigenpairs or (values, vectors)
        From :func:`thermo.analysis.principal_components` or
        :func:`thermo.analysis.eigendecomposition` (descending order).
    ranks : (int, int), optional
        Eigenvector numbers counted from 1 (1 = largest eigenvalue), e.g. ``(1, 64)``.
    units : {"sqrt_eigenvalue", "theta_norm", "raw"}, optional
        Axis units (see module docstring).
    centre : array_like, optional
        θ*, needed for ``units="theta_norm"``.

    Returns
    -------
    Directions

    Examples
    --------
    >>> from thermo.analysis import principal_components
    >>> samples = np.random.default_rng(0).standard_normal((500, 3)) * [2.0, 1.0, 0.5]
    >>> directions = covariance_directions(principal_components(samples), ranks=(1, 3))
    >>> directions.ranks, np.round(directions.scales, 2)  # standard deviations
    (array([1, 3]), array([1.96, 0.51]))
    >>> directions.labels[0]
    'covariance eigenvector 1 [√λ]'
    """
    values, vectors = eigenpairs
    values = np.asarray(values, dtype=np.float64)
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[1] != values.size:
        raise ValueError("eigenpairs must be (values (k,), vectors (d, k))")
    ranks = _check_ranks(ranks, values.size)
    unit, norms = _unit_columns(vectors[:, ranks - 1])
    ev = values[ranks - 1]
    scales = _scales(units, norms, ev, centre, "covariance")
    unit_name = {"sqrt_eigenvalue": "√λ", "theta_norm": "|θ*|", "raw": "raw"}[units]
    labels = tuple(f"covariance eigenvector {r} [{unit_name}]" for r in ranks)
    return Directions(unit, scales, units, "covariance", ranks, ev, labels)


def _resolve_gradient(model, X, y):
    """``grad(theta) -> ∇f`` for a net with data (mean loss) or a potential (U)."""
    net, X, y, potential = _resolve_model(model, X, y)
    if potential is not None:
        return lambda theta: potential.gradient(theta.astype(potential.dtype)).astype(np.float64), \
            potential.dimension, "U"
    return (lambda theta: net.loss_and_grad(theta.astype(net.dtype), X, y)[1].astype(np.float64),
            net.n_params, "mean loss")


def hessian_vector_product(gradient, theta, vector, step=None):
    """Central finite difference ``H v ≈ (∇f(θ + h v̂) - ∇f(θ - h v̂)) |v| / (2h)``.

    Parameters
    ----------
    gradient : callable
        ``gradient(theta) -> ndarray`` (float64).
    theta, vector : ndarray, shape (d,)
        Point and direction.
    step : float, optional
        ``h``; default ``1e-4 * max(1, |θ|)`` (error O(h²) for smooth f).

    Returns
    -------
    ndarray, shape (d,)

    Examples
    --------
    >>> hessian = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> hessian_vector_product(lambda theta: hessian @ theta, np.zeros(2), [1.0, 0.0])
    array([2., 1.])
    """
    theta = np.asarray(theta, dtype=np.float64)
    vector = np.asarray(vector, dtype=np.float64).ravel()
    norm = np.linalg.norm(vector)
    if norm == 0:
        return np.zeros_like(theta)
    if step is None:
        step = 1e-4 * max(1.0, float(np.linalg.norm(theta)))
    unit = vector / norm
    return (gradient(theta + step * unit) - gradient(theta - step * unit)) * (norm / (2 * step))


def hessian_directions(model, centre, ranks=(1, 2), which="largest", units="sqrt_eigenvalue",
                       X=None, y=None, step=None, seed=0, tol=1e-6):
    """Directions along Hessian eigenvectors at θ* (Lanczos on finite-difference H v).

    Parameters
    ----------
    model : MLP or Potential
        An MLP (with ``X, y``: Hessian of the **mean** loss) or a potential
        (Hessian of U).
    centre : ndarray, shape (d,)
        θ*.
    ranks : (int, int), optional
        Eigenvector numbers from 1 in the order given by ``which``.
    which : {"largest", "smallest"}, optional
        Algebraically largest (stiffest) or smallest (flattest/negative) eigenvalues.
    units : {"sqrt_eigenvalue", "theta_norm", "raw"}, optional
        With "sqrt_eigenvalue" one axis unit is ``1/sqrt(|λ_H|)``.
    X, y : array_like, optional
        Data for an MLP.
    step : float, optional
        Finite-difference step (see :func:`hessian_vector_product`).
    seed : int, optional
        Lanczos start vector seed.
    tol : float, optional
        ARPACK relative tolerance.

    Returns
    -------
    Directions
        ``eigenvalues`` holds the two Hessian eigenvalues.

    Examples
    --------
    >>> from thermo.potentials import Gaussian
    >>> potential = Gaussian(np.zeros(5), precision=np.arange(1.0, 6.0))
    >>> directions = hessian_directions(potential, np.zeros(5))
    >>> np.round(directions.eigenvalues, 6), np.round(directions.scales, 3)
    (array([5., 4.]), array([0.447, 0.5  ]))
    """
    if which not in ("largest", "smallest"):
        raise ValueError(f"which must be 'largest' or 'smallest', got {which!r}")
    gradient, d, what = _resolve_gradient(model, X, y)
    centre = _check_centre(centre, d)
    ranks = _check_ranks(ranks, d)
    k = int(ranks.max())
    if k >= d - 1:
        raise ValueError(f"Lanczos needs rank < d - 1 = {d - 1}, got {k}")
    operator = spla.LinearOperator(
        (d, d), matvec=lambda v: hessian_vector_product(gradient, centre, v, step),
        dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(d)
    values, vectors = spla.eigsh(operator, k=k, which="LA" if which == "largest" else "SA",
                                 v0=v0, tol=tol)
    order = np.argsort(values)
    if which == "largest":
        order = order[::-1]
    values, vectors = values[order], vectors[:, order]
    unit, norms = _unit_columns(vectors[:, ranks - 1])
    ev = values[ranks - 1]
    scales = _scales(units, norms, ev, centre, "hessian")
    unit_name = {"sqrt_eigenvalue": "1/√|λ|", "theta_norm": "|θ*|", "raw": "raw"}[units]
    labels = tuple(f"Hessian ({what}) eigenvector {r} [{unit_name}]" for r in ranks)
    return Directions(unit, scales, units, "hessian", ranks, ev, labels)


def random_directions(model, centre, seed=0, ignore_bias=True):
    """Two random filter-normalised directions (Li et al. 2018).

    Each direction is Gaussian; for an MLP every *filter* (the incoming
    weights ``W[:, k]`` of output unit ``k`` of a layer) is rescaled to the
    norm of the same filter of θ*, and bias entries are zeroed
    (``ignore_bias``, as in Li et al.) or rescaled like a filter.  For a
    plain potential the whole vector is rescaled to ``|θ*|``.  Axis units are
    "raw": ``a = 1`` moves every filter by its own norm.

    Parameters
    ----------
    model : MLP or Posterior or Potential
        Gives the θ layout.
    centre : ndarray, shape (d,)
        θ*.
    seed : int, optional
        Seed of ``numpy.random.default_rng``.
    ignore_bias : bool, optional
        Zero the bias components (default True).

    Returns
    -------
    Directions

    Examples
    --------
    For a plain potential each direction has the length ``|θ*|``:

    >>> from thermo.potentials import Gaussian
    >>> directions = random_directions(Gaussian(np.zeros(3)), np.ones(3), seed=0)
    >>> directions.kind, directions.units, np.round(directions.scales, 4)
    ('random', 'raw', array([1.7321, 1.7321]))
    """
    net, _, _, potential = _resolve_model(model, None, None, need_data=False)
    d = net.n_params if net is not None else potential.dimension
    centre = _check_centre(centre, d)
    rng = np.random.default_rng(seed)
    raw = rng.standard_normal((d, 2))
    for c in range(2):
        v = raw[:, c]
        if net is None:
            v *= np.linalg.norm(centre) / np.linalg.norm(v)
            continue
        for lay in net.layout:
            w = v[lay.weight_offset:lay.bias_offset].reshape(lay.weight_shape)
            w_star = centre[lay.weight_offset:lay.bias_offset].reshape(lay.weight_shape)
            w *= np.linalg.norm(w_star, axis=0) / (np.linalg.norm(w, axis=0) + 1e-300)
            b = v[lay.bias_offset:lay.bias_offset + lay.bias_size]
            if ignore_bias:
                b[:] = 0.0
            else:
                b *= np.linalg.norm(centre[lay.bias_offset:lay.bias_offset + lay.bias_size]) / (
                    np.linalg.norm(b) + 1e-300)
    if np.any(np.linalg.norm(raw, axis=0) == 0):
        raise ValueError("θ* is zero: filter normalisation gives zero directions; "
                         "use user_directions")
    unit, norms = _unit_columns(raw)
    labels = ("random filter-normalised direction 1", "random filter-normalised direction 2")
    return Directions(unit, norms, "raw", "random", np.array([-1, -1]),
                      np.array([np.nan, np.nan]), labels)


def user_directions(v1, v2, units="raw", centre=None, labels=("direction 1", "direction 2")):
    """Directions given as two vectors.

    Parameters
    ----------
    v1, v2 : array_like, shape (d,)
        Directions (need not be normalised or orthogonal, but not parallel).
    units : {"raw", "theta_norm"}, optional
        "raw": one axis unit is the vector as given; "theta_norm": ``|θ*|``.
    centre : array_like, optional
        θ* for "theta_norm".
    labels : (str, str), optional
        Axis labels.

    Returns
    -------
    Directions

    Examples
    --------
    >>> directions = user_directions([1.0, 0.0], [1.0, 1.0], labels=("x", "diagonal"))
    >>> directions.vectors.round(4)
    array([[1.    , 0.7071],
           [0.    , 0.7071]])
    >>> directions.scales.round(4), directions.labels
    (array([1.    , 1.4142]), ('x', 'diagonal'))
    """
    if units not in ("raw", "theta_norm"):
        raise ValueError(f"units must be 'raw' or 'theta_norm' for user vectors, got {units!r}")
    v1 = np.asarray(v1, dtype=np.float64).ravel()
    v2 = np.asarray(v2, dtype=np.float64).ravel()
    if v1.shape != v2.shape:
        raise ValueError(f"v1 and v2 differ in length: {v1.size} and {v2.size}")
    unit, norms = _unit_columns(np.stack([v1, v2], axis=1))
    scales = _scales(units, norms, None, centre, "user")
    return Directions(unit, scales, units, "user", np.array([-1, -1]),
                      np.array([np.nan, np.nan]), tuple(labels))


# -- models ---------------------------------------------------------------

def _is_net(obj):
    return all(hasattr(obj, a) for a in ("layout", "loss", "accuracy", "n_params", "sizes"))


def _posterior_parts(obj):
    """(net, X, y) of a Posterior-like potential, or None.

    Reads ``obj.net`` and the data either from ``obj.X``/``obj.y`` or from
    the kernel data of :class:`thermo.potentials.Posterior` (``X``, ``y_int``,
    ``y_float``, ``label_code``), with labels put back into the form
    ``MLP.loss`` accepts.
    """
    from thermo.networks import kernels as nk

    net = getattr(obj, "net", None)
    if net is None or not _is_net(net):
        return None
    X, y = getattr(obj, "X", None), getattr(obj, "y", None)
    if X is not None and y is not None:
        return net, X, y
    data = getattr(obj, "kernel_data", None)
    if data is None or not all(hasattr(data, a) for a in ("X", "y_int", "y_float",
                                                         "label_code")):
        return None
    if data.label_code == nk.LABEL_CLASS:
        y = data.y_int
    elif data.label_code == nk.LABEL_SIGN:
        y = np.asarray(data.y_float)[:, 0]
    else:
        y = data.y_float
    return net, data.X, y


def _resolve_model(model, X, y, need_data=True):
    """Return (net, X, y, potential): net/X/y for network evaluation (or
    None), potential when U itself is evaluated (or None)."""
    from thermo.potentials.base import Potential

    if _is_net(model):
        if need_data and (X is None or y is None):
            raise ValueError("a network needs the data: pass X and y")
        return model, X, y, None
    if isinstance(model, Potential):
        parts = _posterior_parts(model)
        if parts is not None:
            net, px, py = parts
            if X is not None or y is not None:
                raise ValueError("X, y are taken from the posterior; do not pass them")
            return net, px, py, model
        if X is not None or y is not None:
            raise ValueError("X, y only apply to networks")
        return None, None, None, model
    raise TypeError(f"expected an MLP or a Potential, got {type(model).__name__}")


def _check_centre(centre, d):
    centre = np.asarray(centre)
    if centre.dtype.kind != "f":
        raise TypeError(f"centre must be a float array, got dtype {centre.dtype}")
    if centre.shape != (d,):
        raise ValueError(f"centre must have shape ({d},), got {centre.shape}")
    if not np.all(np.isfinite(centre)):
        raise ValueError("centre contains NaN or inf")
    return centre.astype(np.float64)


# -- the affine fast path -------------------------------------------------

@njit(cache=True, parallel=True)
def _affine_grid(z0, zi, zj, a_values, b_values, y_int, y_float, out_code, loss_code,
                 label_code, loss_out, correct_out):
    """Sum of losses and number of correct predictions at each grid point.

    ``z0, zi, zj`` are (N, K) pre-activations; the output at ``(a, b)`` is
    ``act(z0 + a zi + b zj)``.  Uses the network kernels' per-example loss
    and prediction, so the semantics are identical to ``MLP.loss``.
    """
    n, k_out = z0.shape
    na = a_values.size
    nb = b_values.size
    for p in prange(na * nb):
        ia = p // nb
        ib = p - ia * nb
        a = a_values[ia]
        b = b_values[ib]
        o = np.empty(k_out)
        delta = np.empty(k_out)
        total = 0.0
        hits = 0
        for i in range(n):
            for k in range(k_out):
                z = z0[i, k] + a * zi[i, k] + b * zj[i, k]
                o[k] = z if out_code == LINEAR else _activate(out_code, z)
            total += _loss_delta(o, 0, k_out, out_code, loss_code, label_code, y_int,
                                 y_float, i, delta, 0)
            pred = _predict_one(o, 0, k_out, loss_code)
            if label_code == LABEL_SIGN:
                label = 1 if y_float[i, 0] > 0 else -1
            else:
                label = y_int[i] if y_int.size > 0 else -(10 ** 9)
            if pred == label:
                hits += 1
        loss_out[ia, ib] = total
        correct_out[ia, ib] = hits


def _affine_surfaces(net, X, y, centre, steps, a_values, b_values):
    from thermo.networks import kernels as nk
    from thermo.networks.mlp import prepare_data

    X64, y_int, y_float, label_code = prepare_data(net, X, y)
    X64 = np.asarray(X64, dtype=np.float64)
    y_float = np.ascontiguousarray(y_float, dtype=np.float64)
    lay = net.layout[0]

    def pre(vector):
        W = vector[lay.weight_offset:lay.bias_offset].reshape(lay.weight_shape)
        b = vector[lay.bias_offset:lay.bias_offset + lay.bias_size]
        return np.ascontiguousarray(X64 @ W + b)

    z0, zi, zj = pre(centre), pre(steps[:, 0]), pre(steps[:, 1])
    loss = np.empty((a_values.size, b_values.size))
    correct = np.empty((a_values.size, b_values.size), dtype=np.int64)
    _affine_grid(z0, zi, zj, a_values, b_values, y_int, y_float,
                 int(net._acts[-1]), int(net._loss_code), int(label_code), loss, correct)
    n = X64.shape[0]
    acc = correct / n if label_code != nk.LABEL_TARGET else np.full(loss.shape, np.nan)
    return loss / n, acc


# -- the landscape --------------------------------------------------------

@dataclass
class Landscape:
    """Loss surface on a plane through θ*.

    Attributes
    ----------
    xcoordinates, ycoordinates : ndarray
        Grid coordinates ``a`` and ``b`` in axis units.
    train_loss : ndarray, shape (len(x), len(y))
        Mean training loss (U for plain potentials); ``train_loss[i, j]`` at
        ``(xcoordinates[i], ycoordinates[j])``.
    train_acc : ndarray, shape (len(x), len(y))
        Training accuracy (NaN where undefined).
    energy : ndarray or None
        U (loss total plus prior) for posteriors and potentials.
    directions : Directions
        The plane.
    centre : ndarray, shape (d,)
        θ*.
    method : str
        "affine", "network" or "potential".
    trajectories : dict
        name -> ``(coordinates (n, 2) in axis units, distance from the plane (n,))``.

    Examples
    --------
    >>> from thermo.potentials import Gaussian
    >>> surface = landscape(Gaussian(np.zeros(3)), np.zeros(3), np.eye(3)[:, :2],
    ...                     extent=1.0, n_grid=3)
    >>> surface.xcoordinates, surface.method
    (array([-1.,  0.,  1.]), 'potential')
    >>> surface.point(1.0, -1.0)
    array([ 1., -1.,  0.])
    >>> coords, distance = surface.add_trajectory("run", [[0.5, 0.5, 2.0]])
    >>> coords, distance
    (array([[0.5, 0.5]]), array([2.]))
    """

    xcoordinates: np.ndarray
    ycoordinates: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray
    energy: object
    directions: Directions
    centre: np.ndarray
    method: str
    trajectories: dict = field(default_factory=dict)

    def point(self, a, b):
        """θ at grid coordinates ``(a, b)``."""
        return self.centre + self.directions.steps @ np.array([a, b], dtype=np.float64)

    def add_trajectory(self, name, trajectory):
        """Project a trajectory ``(n, d)`` onto the plane (stored in ``trajectories``).

        Returns
        -------
        coordinates : ndarray, shape (n, 2)
            Least-squares plane coordinates in axis units.
        distance : ndarray, shape (n,)
            Euclidean distance of each point from the plane.
        """
        coords, distance = project(trajectory, self.directions.steps, self.centre,
                                   residual=True)
        self.trajectories[str(name)] = (coords, distance)
        return coords, distance

    def save(self, path, group=None, mode="a"):
        """Write to HDF5 (Li et al.'s keys plus metadata).

        Parameters
        ----------
        path : str or path-like
            HDF5 file.
        group : str, optional
            Group inside the file (default: the root; then the file is
            readable by ``loss-landscape``'s plotting scripts).
        mode : str, optional
            h5py file mode (default "a"; existing datasets are replaced).
        """
        import h5py

        with h5py.File(path, mode) as f:
            g = f if group is None else f.require_group(group)
            data = {
                "xcoordinates": self.xcoordinates, "ycoordinates": self.ycoordinates,
                "train_loss": self.train_loss, "train_acc": self.train_acc,
                "centre": self.centre, "directions": self.directions.vectors,
                "direction_scales": self.directions.scales,
                "direction_indices": self.directions.ranks,
                "eigenvalues": self.directions.eigenvalues,
            }
            if self.energy is not None:
                data["energy"] = self.energy
            for name, (coords, distance) in self.trajectories.items():
                data[f"trajectories/{name}/coordinates"] = coords
                data[f"trajectories/{name}/distance"] = distance
            for key, value in data.items():
                if key in g:
                    del g[key]
                g.create_dataset(key, data=value)
            g.attrs["units"] = self.directions.units
            g.attrs["kind"] = self.directions.kind
            g.attrs["labels"] = list(self.directions.labels)
            g.attrs["method"] = self.method


def load_landscape(path, group=None):
    """Read a :class:`Landscape` written by :meth:`Landscape.save`.

    Parameters
    ----------
    path : str or path-like
        HDF5 file.
    group : str, optional
        Group the landscape was saved in (default: the file's root).

    Returns
    -------
    Landscape

    Examples
    --------
    >>> from thermo.potentials import Gaussian
    >>> surface = landscape(Gaussian(np.zeros(2)), np.zeros(2), np.eye(2), n_grid=3)
    >>> surface.save("landscape.h5", group="plane")
    >>> loaded = load_landscape("landscape.h5", group="plane")
    >>> np.array_equal(loaded.train_loss, surface.train_loss), loaded.directions.kind
    (True, 'user')
    """
    import h5py

    with h5py.File(path, "r") as f:
        g = f if group is None else f[group]
        directions = Directions(
            g["directions"][()], g["direction_scales"][()], str(g.attrs["units"]),
            str(g.attrs["kind"]), g["direction_indices"][()], g["eigenvalues"][()],
            tuple(str(s) for s in g.attrs["labels"]))
        trajectories = {}
        if "trajectories" in g:
            for name in g["trajectories"]:
                t = g["trajectories"][name]
                trajectories[name] = (t["coordinates"][()], t["distance"][()])
        return Landscape(g["xcoordinates"][()], g["ycoordinates"][()], g["train_loss"][()],
                         g["train_acc"][()], g["energy"][()] if "energy" in g else None,
                         directions, g["centre"][()], str(g.attrs["method"]), trajectories)


def _grid_axes(extent, n_grid):
    if np.ndim(extent) == 0:
        e = float(extent)
        if not (np.isfinite(e) and e > 0):
            raise ValueError(f"extent must be positive, got {extent}")
        bounds = (-e, e, -e, e)
    else:
        bounds = tuple(float(v) for v in np.ravel(extent))
        if len(bounds) != 4:
            raise ValueError("extent must be a number or (a_min, a_max, b_min, b_max)")
        if not (bounds[1] > bounds[0] and bounds[3] > bounds[2]):
            raise ValueError(f"extent needs a_min < a_max and b_min < b_max, got {bounds}")
    if np.ndim(n_grid) == 0:
        n_grid = (int(n_grid), int(n_grid))
    nx, ny = (int(v) for v in n_grid)
    if nx < 2 or ny < 2:
        raise ValueError(f"n_grid must be >= 2, got {(nx, ny)}")
    return np.linspace(bounds[0], bounds[1], nx), np.linspace(bounds[2], bounds[3], ny)


def landscape(potential_or_net, centre, directions, extent=1.0, n_grid=41, X=None, y=None,
              method="auto", trajectories=None, progress=False):
    """Loss and accuracy on the grid ``θ* + a s_i v̂_i + b s_j v̂_j``.

    Parameters
    ----------
    potential_or_net : MLP or Posterior or Potential
        What to evaluate (see module docstring).
    centre : ndarray, shape (d,)
        θ*, the centre of the plane (e.g. the optimised minimum).
    directions : Directions or array_like (d, 2)
        The plane; a plain array is taken as two user vectors in "raw" units.
    extent : float or (a_min, a_max, b_min, b_max), optional
        Grid range in axis units (a number ``e`` means ``[-e, e]²``).
        Call again with a smaller extent for a zoomed view.
    n_grid : int or (int, int), optional
        Grid points per axis (default 41).
    X, y : array_like, optional
        Data, for an MLP.
    method : {"auto", "affine", "network", "potential"}, optional
        "affine" needs a single-layer network; "auto" uses it when possible.
    trajectories : dict, optional
        name -> trajectory ``(n, d)`` to project onto the plane (see
        :meth:`Landscape.add_trajectory`).
    progress : bool, optional
        tqdm progress bar over grid rows (non-affine methods).

    Returns
    -------
    Landscape

    Examples
    --------
    ``U = |θ|²/2`` on the plane of the first two axes (a plain potential:
    ``train_loss`` is U, ``train_acc`` NaN):

    >>> from thermo.potentials import Gaussian
    >>> surface = landscape(Gaussian(np.zeros(3)), np.zeros(3), np.eye(3)[:, :2],
    ...                     extent=1.0, n_grid=3)
    >>> surface.train_loss
    array([[1. , 0.5, 1. ],
           [0.5, 0. , 0.5],
           [1. , 0.5, 1. ]])
    >>> bool(np.isnan(surface.train_acc).all())
    True
    """
    if method not in ("auto", "affine", "network", "potential"):
        raise ValueError(f"method must be 'auto', 'affine', 'network' or 'potential', "
                         f"got {method!r}")
    net, Xd, yd, potential = _resolve_model(potential_or_net, X, y)
    d = net.n_params if net is not None else potential.dimension
    centre = _check_centre(centre, d)
    if not isinstance(directions, Directions):
        v = np.asarray(directions, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != 2:
            raise ValueError(f"directions must be a Directions object or a (d, 2) array, "
                             f"got shape {v.shape}")
        directions = user_directions(v[:, 0], v[:, 1])
    if directions.vectors.shape[0] != d:
        raise ValueError(f"directions have dimension {directions.vectors.shape[0]}, "
                         f"θ has {d}")
    a_values, b_values = _grid_axes(extent, n_grid)
    steps = directions.steps
    if method == "auto":
        if net is not None:
            method = "affine" if net.depth == 1 else "network"
        else:
            method = "potential"
    if method in ("affine", "network") and net is None:
        raise ValueError(f"method={method!r} needs a network (an MLP or a Posterior)")
    if method == "affine" and net.depth != 1:
        raise ValueError(f"method='affine' needs a single-layer network, this one has "
                         f"{net.depth} weight layers; use method='network'")
    if method == "potential" and potential is None:
        raise ValueError("method='potential' needs a potential")
    shape = (a_values.size, b_values.size)
    energy = None
    if method == "affine":
        loss, acc = _affine_surfaces(net, Xd, yd, centre, steps, a_values, b_values)
    else:
        loss = np.empty(shape)
        acc = np.full(shape, np.nan)
        rows = range(shape[0])
        if progress:
            from tqdm.auto import tqdm
            rows = tqdm(rows, desc="landscape", unit="row")
        for i in rows:
            for j in range(shape[1]):
                theta = centre + steps @ np.array([a_values[i], b_values[j]])
                if method == "network":
                    th = theta.astype(net.dtype)
                    loss[i, j] = net.loss(th, Xd, yd)
                    try:
                        acc[i, j] = net.accuracy(th, Xd, yd)
                    except ValueError:
                        acc[i, j] = np.nan
                else:
                    loss[i, j] = potential.energy(theta.astype(potential.dtype))
                    acc[i, j] = potential.accuracy(theta.astype(potential.dtype))
        if method == "potential":
            energy = loss.copy()
    if potential is not None and method != "potential":
        energy = _posterior_energy(potential, net, Xd, loss, centre, steps, a_values, b_values)
    result = Landscape(a_values, b_values, loss, acc, energy, directions, centre, method)
    for name, trajectory in (trajectories or {}).items():
        result.add_trajectory(name, trajectory)
    return result


def zoom_levels(potential_or_net, centre, directions, extents, n_grid=41, **kwargs):
    """The same plane at several zoom levels.

    Parameters
    ----------
    potential_or_net, centre, directions, n_grid
        As in :func:`landscape`.
    extents : sequence of float or of (a_min, a_max, b_min, b_max)
        One extent per zoom level, e.g. ``(10.0, 1.0, 0.1)``.
    **kwargs
        Passed to :func:`landscape` (``X``, ``y``, ``method``, ``trajectories``, ...).

    Returns
    -------
    list of Landscape
        One per extent, in the given order (plot with
        :func:`thermo.plotting.plot_landscape_panels`).

    Examples
    --------
    >>> from thermo.potentials import Gaussian
    >>> views = zoom_levels(Gaussian(np.zeros(2)), np.zeros(2), np.eye(2),
    ...                     extents=(2.0, 0.5), n_grid=3)
    >>> [view.xcoordinates for view in views]
    [array([-2.,  0.,  2.]), array([-0.5,  0. ,  0.5])]
    """
    extents = list(extents)
    if not extents:
        raise ValueError("extents is empty: give at least one zoom level")
    return [landscape(potential_or_net, centre, directions, extent=e, n_grid=n_grid, **kwargs)
            for e in extents]


def _posterior_energy(potential, net, X, loss, centre, steps, a_values, b_values):
    """U on the grid for a posterior: ``N * mean loss + (λ/2)|θ|²``, checked
    against ``potential.energy`` at the centre (None if the form differs)."""
    n = np.asarray(X).shape[0]
    lam = getattr(potential, "prior_precision", None)
    if lam is None:
        return None
    lam = float(lam)
    a, b = np.meshgrid(a_values, b_values, indexing="ij")
    c = centre
    s0, s1 = steps[:, 0], steps[:, 1]
    sq = (c @ c + 2 * a * (c @ s0) + 2 * b * (c @ s1) + a * a * (s0 @ s0)
          + 2 * a * b * (s0 @ s1) + b * b * (s1 @ s1))
    energy = n * loss + 0.5 * lam * sq
    # The form must reproduce U at a grid point (guards against a different
    # posterior definition, e.g. minibatch scaling); otherwise report none.
    i, j = a_values.size // 2, b_values.size // 2
    theta = (c + a_values[i] * s0 + b_values[j] * s1).astype(potential.dtype)
    exact = potential.energy(theta)
    if not np.isclose(exact, energy[i, j], rtol=1e-6, atol=1e-8):
        return None
    return energy
