"""The collective-variable protocol: how Numba kernels see a CV s(θ).

A collective variable (CV) maps the parameters θ ∈ R^d to a few numbers
s(θ) = (s_1(θ), ..., s_m(θ)) ∈ R^m (m = 1 or 2 for metadynamics).  Like
potentials and biases (see :mod:`thermo.potentials.base`), a CV is a Python
object whose ``kernel_data`` is an instance of a ``typing.NamedTuple`` class
registered here with its jitted implementation.  A bias such as
:class:`thermo.bias.Metadynamics` nests the CV's kernel data in its own, so
one compiled sampler kernel serves each (bias, CV) class pair and no Python
runs per step.

Generic kernel-side function
----------------------------
``cv_value_gradient(data, theta, values_out, jacobian_out) -> None``
    Writes s(θ) into ``values_out`` (float64, shape (m,)) and the Jacobian
    J_{kl} = ∂s_k/∂θ_l into ``jacobian_out`` (float64, shape (m, d)).
    ``theta`` may be float32 or float64.

A user CV in a few lines (here s(θ) = |θ|²/2)::

    from typing import NamedTuple
    import numpy as np
    from thermo.cv import CV, register_cv

    class HalfNormData(NamedTuple):
        unused: int

    def half_norm(data, theta, values_out, jacobian_out):
        values_out[0] = 0.0
        for i in range(theta.size):
            values_out[0] += 0.5 * theta[i] * theta[i]
            jacobian_out[0, i] = theta[i]

    register_cv(HalfNormData, half_norm)
    cv = CV(HalfNormData(0), dimension=10, n_coords=1)

The implementation is a plain Python function in the Numba subset; thermo
compiles it inside the sampler kernels.
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numba.extending import overload

from thermo import _numba_cache  # noqa: F401  (threading layer, tolerant cache index)

__all__ = ["register_cv", "cv_value_gradient", "CV"]

_IMPLEMENTATIONS: dict = {}


def register_cv(data_class, value_gradient):
    """Tie a NamedTuple class to the jitted implementation of a CV.

    Parameters
    ----------
    data_class : type
        A ``typing.NamedTuple`` subclass holding arrays, scalars and nested
        registered NamedTuples only.
    value_gradient : callable
        ``f(data, theta, values_out, jacobian_out) -> None`` in the Numba
        subset; writes s(θ) into ``values_out`` (m,) and ∂s/∂θ into
        ``jacobian_out`` (m, d).

    Returns
    -------
    None

    Examples
    --------
    >>> from typing import NamedTuple
    >>> class SquaredNormData(NamedTuple):
    ...     scale: float
    >>> def squared_norm(data, theta, values_out, jacobian_out):
    ...     values_out[0] = data.scale * np.sum(theta ** 2)
    ...     jacobian_out[0, :] = 2.0 * data.scale * theta
    >>> register_cv(SquaredNormData, squared_norm)
    >>> CV(SquaredNormData(0.5), dimension=2, n_coords=1)(np.array([1.0, 2.0])).tolist()
    [2.5]
    """
    if not (isinstance(data_class, type) and issubclass(data_class, tuple)
            and hasattr(data_class, "_fields")):
        raise TypeError(f"register_cv() needs a NamedTuple class, got {data_class!r}")
    if not callable(value_gradient):
        raise TypeError("value_gradient must be a function")
    _IMPLEMENTATIONS[data_class] = value_gradient


def _lookup(data_type):
    return _IMPLEMENTATIONS.get(getattr(data_type, "instance_class", None))


def cv_value_gradient(data, theta, values_out, jacobian_out):
    """s(θ) into ``values_out`` and ∂s/∂θ into ``jacobian_out`` (kernel-side).

    Parameters
    ----------
    data : NamedTuple
        Kernel data of a registered CV.
    theta : ndarray, shape (d,)
    values_out : ndarray, shape (m,)
    jacobian_out : ndarray, shape (m, d)

    Returns
    -------
    None

    Examples
    --------
    Called from Numba code, e.g. inside a sampler kernel:

    >>> from numba import njit
    >>> from thermo.cv import Distance
    >>> @njit
    ... def first_value(data, theta):
    ...     values = np.empty(1)
    ...     jacobian = np.empty((1, theta.size))
    ...     cv_value_gradient(data, theta, values, jacobian)
    ...     return values[0]
    >>> round(first_value(Distance(np.zeros(2)).kernel_data, np.array([3.0, 4.0])), 12)
    5.0
    """
    raise NotImplementedError("call from Numba code, or use CV methods")


# Not cached itself: compiled into (and cached with) each calling kernel, so
# CVs defined without a source file (REPL, doctest) work too.
@overload(cv_value_gradient)
def _overload_cv_value_gradient(data, theta, values_out, jacobian_out):
    return _lookup(data)


@njit(cache=True)
def _call_cv_value_gradient(data, theta, values_out, jacobian_out):
    cv_value_gradient(data, theta, values_out, jacobian_out)


@njit(cache=True)
def _call_cv_values(data, thetas, values_out, jacobian_work):
    # Values of the CV at many points; the Jacobian is computed and dropped.
    m = values_out.shape[1]
    row = np.empty(m)
    for n in range(thetas.shape[0]):
        cv_value_gradient(data, thetas[n], row, jacobian_work)
        for k in range(m):
            values_out[n, k] = row[k]


class CV:
    """A collective variable s: R^d → R^m with exact Jacobian.

    Parameters
    ----------
    kernel_data : NamedTuple
        Instance of a class registered with :func:`register_cv`.
    dimension : int
        d, the length of θ.
    n_coords : int
        m, the number of CV components.
    names : sequence of str, optional
        Component names (default ``s1, s2, ...``), used in hills files.

    Examples
    --------
    >>> from thermo.cv import Distance
    >>> cv = Distance(np.zeros(2))
    >>> value, jacobian = cv.value_and_jacobian(np.array([3.0, 4.0]))
    >>> value.round(12).tolist(), jacobian.round(12).tolist()
    ([5.0], [[0.6, 0.8]])
    """

    def __init__(self, kernel_data, dimension, n_coords, names=None):
        if type(kernel_data) not in _IMPLEMENTATIONS:
            raise TypeError(
                f"{type(kernel_data).__name__} is not registered; call "
                "thermo.cv.register_cv(data_class, value_gradient) first")
        dimension = int(dimension)
        n_coords = int(n_coords)
        if dimension < 1:
            raise ValueError(f"dimension must be >= 1, got {dimension}")
        if n_coords < 1:
            raise ValueError(f"n_coords must be >= 1, got {n_coords}")
        if names is None:
            names = [f"s{k + 1}" for k in range(n_coords)]
        names = [str(name) for name in names]
        if len(names) != n_coords:
            raise ValueError(f"need {n_coords} names, got {len(names)}")
        self.kernel_data = kernel_data
        self.dimension = dimension
        self.n_coords = n_coords
        self.names = names

    def _check_points(self, theta):
        theta = np.asarray(theta)
        if theta.dtype.kind != "f":
            raise TypeError(f"theta must be a float array, got dtype {theta.dtype}")
        if theta.shape[-1] != self.dimension or theta.ndim not in (1, 2):
            raise ValueError(
                f"theta must have shape ({self.dimension},) or (n, {self.dimension}), "
                f"got {theta.shape}")
        if theta.dtype not in (np.float32, np.float64):
            theta = theta.astype(np.float64)
        return np.ascontiguousarray(theta)

    def value_and_jacobian(self, theta):
        """s(θ) (shape (m,)) and the Jacobian ∂s_k/∂θ_l (shape (m, d)) at one θ."""
        theta = self._check_points(theta)
        if theta.ndim != 1:
            raise ValueError("value_and_jacobian takes one point θ of shape (d,)")
        values = np.empty(self.n_coords)
        jacobian = np.empty((self.n_coords, self.dimension))
        _call_cv_value_gradient(self.kernel_data, theta, values, jacobian)
        return values, jacobian

    def __call__(self, theta):
        """s(θ): shape (m,) for one θ, (n, m) for an (n, d) array of points."""
        theta = self._check_points(theta)
        single = theta.ndim == 1
        points = theta[None, :] if single else theta
        values = np.empty((points.shape[0], self.n_coords))
        work = np.empty((self.n_coords, self.dimension))
        _call_cv_values(self.kernel_data, points, values, work)
        return values[0] if single else values

    value = __call__
