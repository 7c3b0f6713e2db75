"""Diffusion maps of sampled trajectories (pydiffmap), vanilla and target-measure.

Conventions (needed by anyone extending the map, e.g. a Nyström CV)
--------------------------------------------------------------------
* Kernel: pydiffmap's Gaussian ``k(x, y) = exp(-|x - y|² / (4 ε))`` on the
  ``k`` nearest neighbours of every point (symmetrised with "or").  Note the
  factor 4: ``ε`` is *not* the variance of the Gaussian.
* Right normalisation: ``K̃_ij = K_ij q_j^{-α} w_j`` with ``q_j = Σ_l K_jl``
  (kernel density estimate) and ``w_j`` the target-measure weights; then rows
  are normalised, ``P = D⁻¹ K̃``, and ``L = (P - I) / ε``.
* Vanilla map: ``w = 1`` (α = 0.5 by default: Fokker–Planck normalisation).
* Target-measure map (TMDmap, Banisch et al. 2020): ``w_j = π(x_j)^{1/2}`` with
  ``π = exp(-β U)`` (computed as ``exp(-β (U - min U) / 2)``) and α = 1, so the
  generator is that of overdamped Langevin dynamics in ``exp(-β U)`` whatever
  distribution the points were sampled from.
* Diffusion coordinates are the eigenvectors ``ψ_i`` of ``L`` with eigenvalues
  ``λ_1 > λ_2 > …`` (``λ_0 = 0`` dropped), scaled by ``sqrt(-1/λ_i)``
  (pydiffmap's ``dmap``).

Choice of ε
-----------
pydiffmap's default ``epsilon="bgh"`` (Berry, Giannakis & Harlim) maximises
``d log T / d log ε`` with ``T(ε) = Σ K``; on metastable data (two wells, few
transitions) it picks an ε so small that the kernel graph splits into
disconnected pieces, ``L`` has several zero eigenvalues and ARPACK fails to
converge.  ``epsilon="sweep"`` (default here) scans ε over powers of two,
and picks the largest ε at which the kernel has decayed at the k-th
neighbour (so the neighbour cut-off is harmless) and the graph whose edges
have kernel value ``>= connectivity_threshold`` is connected (see
:func:`choose_epsilon`).  Failures raise :class:`DiffusionMapError` saying what to do.
"""
from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sps
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla
from scipy.special import logsumexp

__all__ = ["DiffusionMapError", "DiffusionMapResult", "diffusion_map", "choose_epsilon"]


class DiffusionMapError(RuntimeError):
    """The diffusion map could not be computed (disconnected kernel graph,
    ARPACK non-convergence); the message says what to change."""


@dataclass
class DiffusionMapResult:
    """Output of :func:`diffusion_map`.

    Attributes
    ----------
    eigenvalues : ndarray, shape (n_evecs,)
        Eigenvalues ``λ_1 > λ_2 > …`` of the generator ``L`` (negative; ``λ_0 = 0`` dropped).
    coordinates : ndarray, shape (n_points, n_evecs)
        Diffusion coordinates ``ψ_i sqrt(-1/λ_i)`` of the points used.
    eigenvectors : ndarray, shape (n_points, n_evecs)
        Unscaled right eigenvectors ``ψ_i``.
    dmap : pydiffmap.diffusion_map.DiffusionMap
        The fitted pydiffmap object (``dmap.transform(Y)`` extends out of sample).
    epsilon : float
        Kernel bandwidth in pydiffmap's convention ``exp(-|x-y|²/(4 ε))``.
    alpha : float
        Right-normalisation exponent.
    k : int
        Number of nearest neighbours in the kernel.
    data : ndarray, shape (n_points, d)
        The (subsampled) points the map was built on.
    indices : ndarray of int
        Rows of the input ``samples`` that form ``data``.
    kde : ndarray, shape (n_points,)
        Kernel density estimate ``q_j = Σ_l K_jl``.
    right_normalization : ndarray, shape (n_points,)
        ``q_j^{-α}``.
    target_weights : ndarray or None
        ``w_j = exp(-β (U_j - min U) / 2)`` for the target-measure map, None otherwise.
    beta : float or None
        Inverse temperature of the target measure.
    target_measure : bool
        Whether this is a TMDmap.
    epsilon_sweep : dict
        ``epsilons``, ``log_derivative`` (BGH criterion), ``n_components`` (of the
        thresholded graph) per candidate, ``bgh`` and ``connected_min``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> points = np.column_stack([np.linspace(0.0, 1.0, 100),
    ...                           0.05 * rng.standard_normal(100)])
    >>> result = diffusion_map(points, n_evecs=1, k=10)
    >>> result.coordinates.shape, result.target_measure, result.alpha
    ((100, 1), False, 0.5)
    >>> bool(result.eigenvalues[0] < 0), result.weights.shape
    (True, (100,))
    """

    eigenvalues: np.ndarray
    coordinates: np.ndarray
    eigenvectors: np.ndarray
    dmap: object
    epsilon: float
    alpha: float
    k: int
    data: np.ndarray
    indices: np.ndarray
    kde: np.ndarray
    right_normalization: np.ndarray
    target_weights: object
    beta: object
    target_measure: bool
    epsilon_sweep: dict

    @property
    def weights(self):
        """Full right-normalisation weights ``q_j^{-α} w_j`` (``w = 1`` for a vanilla map)."""
        if self.target_weights is None:
            return self.right_normalization
        return self.right_normalization * self.target_weights

    def transform(self, points):
        """Nyström extension of the diffusion coordinates to new points ``(m, d)``."""
        return self.dmap.transform(np.asarray(points, dtype=np.float64))


def _make_dmap_class():
    from pydiffmap.diffusion_map import DiffusionMap

    class _WeightedDiffusionMap(DiffusionMap):
        """pydiffmap DiffusionMap with per-point weights given as an array."""

        def __init__(self, kernel_object, point_weights=None, **kwargs):
            super().__init__(kernel_object, **kwargs)
            self._point_weights = point_weights

        def _compute_weights(self, X):
            if self._point_weights is None:
                return None
            if X.shape[0] == self._point_weights.shape[0]:
                return self._point_weights
            raise ValueError("target-measure weights are known only at the training points")

    return _WeightedDiffusionMap


def _distance_graph(data, k, neighbor_params):
    from sklearn.neighbors import NearestNeighbors

    neigh = NearestNeighbors(n_neighbors=min(k, data.shape[0]), **(neighbor_params or {}))
    neigh.fit(data)
    graph = neigh.kneighbors_graph(data, mode="distance")
    return graph


def choose_epsilon(data, k=64, connectivity_threshold=1e-6, truncation_tolerance=0.1,
                   neighbor_params=None, epsilons=None):
    """Sweep ε over powers of two; pick the largest well-resolved, connected one.

    For every candidate ε the sweep records the BGH criterion
    ``d log T / d log ε`` (pydiffmap's rule, for reference), the number of
    connected pieces of the graph whose edges have kernel value
    ``>= connectivity_threshold``, and the median kernel value at each point's
    k-th neighbour.  The chosen ε is the largest candidate at which

    * the kernel has decayed to ``truncation_tolerance`` at the median k-th
      neighbour distance (so cutting the kernel at k neighbours is harmless), and
    * the thresholded graph is connected.

    Larger ε averages over more neighbours and gives a better conditioned
    generator; the truncation condition bounds it by the neighbour search.
    When no candidate meets both, the smallest connected ε is used and a
    warning suggests a larger ``k``.

    Parameters
    ----------
    data : ndarray, shape (n, d)
        Points.
    k : int, optional
        Nearest neighbours per point (as in the map).
    connectivity_threshold : float, optional
        Kernel values below this do not count as edges (default 1e-6).
    truncation_tolerance : float, optional
        Largest acceptable kernel value at the k-th neighbour (default 0.1).
    neighbor_params : dict, optional
        Passed to ``sklearn.neighbors.NearestNeighbors``.
    epsilons : array_like, optional
        Candidates (default: powers of two spanning the squared neighbour distances).

    Returns
    -------
    epsilon : float
        Chosen bandwidth (pydiffmap convention ``exp(-d²/(4ε))``).
    sweep : dict
        ``epsilons``, ``log_derivative`` (BGH), ``n_components``, ``bgh`` (the
        BGH choice), ``connected_min`` (smallest connected candidate),
        ``truncation_max`` (largest well-truncated value).

    Raises
    ------
    DiffusionMapError
        When the k-nearest-neighbour graph itself is disconnected (no ε helps).

    Examples
    --------
    >>> points = np.column_stack([np.linspace(0.0, 1.0, 100), np.zeros(100)])
    >>> epsilon, sweep = choose_epsilon(points, k=10)
    >>> bool(sweep["connected_min"] <= epsilon <= sweep["truncation_max"])
    True
    """
    graph = _distance_graph(data, k, neighbor_params)
    kth = np.asarray(graph.max(axis=1).todense()).ravel()  # distance to the k-th neighbour
    graph = graph.maximum(graph.T).tocsr()  # "or" symmetrisation, as pydiffmap
    sq = graph.data ** 2
    positive = sq[sq > 0]
    n_knn, _ = csgraph.connected_components(graph.astype(bool), directed=False)
    if n_knn > 1:
        raise DiffusionMapError(
            f"the {k}-nearest-neighbour graph of the {data.shape[0]} points has {n_knn} "
            "disconnected pieces, so no epsilon can connect them (metastable data with no "
            "transitions between the states seen by the neighbour search). Increase k, "
            "subsample more evenly along the trajectory, or add samples on the transition "
            "paths; diffusion maps cannot relate states that were never connected.")
    if positive.size == 0:
        raise DiffusionMapError("all neighbour distances are zero: the points are identical")
    if epsilons is None:
        lo = np.floor(np.log2(np.percentile(positive, 1) / 4.0)) - 2
        hi = np.ceil(np.log2(positive.max() / 4.0)) + 2
        epsilons = 2.0 ** np.arange(lo, hi + 1)
    epsilons = np.sort(np.asarray(epsilons, dtype=np.float64))
    if epsilons.size < 2 or np.any(epsilons <= 0):
        raise ValueError("epsilons must hold at least two positive values")
    log_t = np.array([logsumexp(-sq / (4.0 * e)) for e in epsilons])
    log_derivative = np.diff(log_t) / np.diff(np.log(epsilons))
    eps_bgh = float(epsilons[int(np.argmax(log_derivative))])
    n_components = np.empty(epsilons.size, dtype=np.int64)
    cutoff_sq = -4.0 * np.log(connectivity_threshold)  # edge when d² <= cutoff_sq * ε
    for i, e in enumerate(epsilons):
        keep = graph.copy()
        keep.data = (keep.data ** 2 <= cutoff_sq * e).astype(np.float64)
        keep.eliminate_zeros()
        n_components[i] = csgraph.connected_components(keep, directed=False)[0]
    kth_kernel = np.exp(-np.median(kth ** 2) / (4.0 * epsilons))
    truncated = kth_kernel <= truncation_tolerance
    connected = n_components == 1
    good = np.flatnonzero(truncated & connected)
    eps_conn = float(epsilons[np.flatnonzero(connected)[0]]) if connected.any() else np.inf
    eps_trunc = float(epsilons[np.flatnonzero(truncated)[-1]]) if truncated.any() else 0.0
    sweep = {"epsilons": epsilons, "log_derivative": log_derivative,
             "n_components": n_components, "kth_neighbour_kernel": kth_kernel,
             "bgh": eps_bgh, "connected_min": eps_conn, "truncation_max": eps_trunc}
    if good.size:
        return float(epsilons[good[-1]]), sweep
    if not np.isfinite(eps_conn):
        raise DiffusionMapError(
            "no epsilon in the sweep connects the kernel graph; increase k or give epsilon")
    warnings.warn(
        f"the kernel graph connects only at epsilon = {eps_conn:.4g}, where the kernel is "
        f"still {np.exp(-np.median(kth ** 2) / (4 * eps_conn)):.2g} at the {k}-th neighbour "
        f"(truncation distorts the map); increase k", RuntimeWarning, stacklevel=3)
    return eps_conn, sweep


def _generator_eigenpairs(dmap, n_evecs, epsilon):
    """Leading eigenpairs of pydiffmap's generator ``L = (D⁻¹ K R - I)/ε``.

    ``P = D⁻¹ K R`` (``R`` the right normalisation, ``D`` its row sums) is
    similar to the symmetric ``S = D^{-1/2} R^{1/2} K R^{1/2} D^{-1/2}``:
    ``P = (DR)^{-1/2} S (DR)^{1/2}``.  The eigenvalues of ``S`` closest to 1 are
    found by symmetric Lanczos in shift-invert mode, which converges however
    small ε is (pydiffmap's Arnoldi iteration on ``L`` with ``which='LR'`` does
    not when ``1/ε`` dwarfs the spectral gap).  Right eigenvectors of ``L`` are
    ``(DR)^{-1/2} φ``, normalised like pydiffmap's (unit Euclidean norm).
    """
    kernel = sps.csr_matrix(dmap.kernel_matrix)
    r = np.asarray(dmap.right_norm_vec, dtype=np.float64).ravel()
    if dmap.weights is not None:
        r = r * np.asarray(dmap.weights, dtype=np.float64).ravel()
    d = np.asarray(kernel @ r).ravel()
    sqrt_r = np.sqrt(r)
    scale = sqrt_r / np.sqrt(d)
    s = sps.diags(scale) @ kernel @ sps.diags(scale)
    s = 0.5 * (s + s.T)
    n = s.shape[0]
    k = n_evecs + 1
    v0 = np.sqrt(d * r)  # the eigenvector of eigenvalue 1, a good start
    if n <= 600:
        mu, phi = np.linalg.eigh(s.toarray())
        mu, phi = mu[-k:], phi[:, -k:]
    else:
        mu, phi = spla.eigsh(s.tocsc(), k=k, sigma=1.0 + 1e-6, which="LM", v0=v0,
                             maxiter=5000)
    order = np.argsort(mu)[::-1][1:]
    mu, phi = mu[order], phi[:, order]
    psi = phi / np.sqrt(d * r)[:, None]
    psi /= np.linalg.norm(psi, axis=0)
    index = np.argmax(np.abs(psi), axis=0)
    psi *= np.sign(psi[index, np.arange(psi.shape[1])])
    return (mu - 1.0) / epsilon, psi


def _subsample(samples, stride, max_points):
    n = samples.shape[0]
    indices = np.arange(0, n, int(stride))
    if max_points is not None and indices.size > max_points:
        pick = np.linspace(0, indices.size - 1, int(max_points)).round().astype(np.int64)
        indices = indices[pick]
    return indices


def _fit(data, epsilon, k, alpha, weights, n_evecs, connectivity_threshold, neighbor_params):
    """Build pydiffmap's generator at one ε and solve for its leading eigenpairs."""
    from pydiffmap.kernel import Kernel

    kernel = Kernel(kernel_type="gaussian", epsilon=epsilon, k=k,
                    neighbor_params=neighbor_params)
    dmap = _make_dmap_class()(kernel, point_weights=weights, alpha=alpha, n_evecs=n_evecs)
    dmap.construct_Lmat(data)
    eps_used = float(dmap.epsilon_fitted)
    advice = ("choose a larger epsilon (epsilon='sweep' does this automatically, or pass a "
              "number several times larger), a larger k, or fewer, more evenly spread points")
    kernel_matrix = dmap.kernel_matrix.tocsr()
    strong = kernel_matrix.copy()
    strong.data = (strong.data >= connectivity_threshold).astype(np.float64)
    strong.eliminate_zeros()
    n_parts = csgraph.connected_components(strong, directed=False)[0]
    if n_parts > 1:
        raise DiffusionMapError(
            f"kernel graph is disconnected at epsilon = {eps_used:.4g}: {n_parts} pieces with "
            f"no kernel weight >= {connectivity_threshold:g} between them, so the generator "
            f"has {n_parts} zero eigenvalues and ARPACK cannot separate them (typical of "
            f"metastable data with pydiffmap's 'bgh' epsilon). To fix: {advice}.")
    try:
        evals, evecs = _generator_eigenpairs(dmap, n_evecs, eps_used)
    except spla.ArpackNoConvergence as exc:
        raise DiffusionMapError(
            f"ARPACK did not converge for the diffusion-map generator at epsilon = "
            f"{eps_used:.4g} (near-degenerate eigenvalues, usually a nearly disconnected "
            f"kernel graph). To fix: {advice}.") from exc
    except (spla.ArpackError, RuntimeError) as exc:
        raise DiffusionMapError(f"eigensolver failed at epsilon = {eps_used:.4g}: {exc}. "
                                f"To fix: {advice}.") from exc
    if np.any(evals > -1e-9 / eps_used):
        raise DiffusionMapError(
            f"the generator has a second zero eigenvalue at epsilon = {eps_used:.4g} "
            f"(eigenvalues {evals[:3]}): the kernel graph is effectively disconnected. "
            f"To fix: {advice}.")
    coords = evecs * np.sqrt(-1.0 / evals)
    return dmap, evals, evecs, coords


def diffusion_map(samples, n_evecs=2, epsilon="sweep", alpha=None, k=64, energies=None,
                  beta=None, target_measure=False, stride=1, max_points=None,
                  connectivity_threshold=1e-6, localisation_threshold=0.1, max_retries=6,
                  neighbor_params=None):
    """Diffusion map of sampled points.

    Parameters
    ----------
    samples : array_like, shape (n, d)
        Points (e.g. ``run.trajectory``), in time order if subsampled.
    n_evecs : int, optional
        Number of non-trivial eigenpairs (default 2).
    epsilon : "sweep", "bgh", "bgh_generous" or float, optional
        Kernel bandwidth (pydiffmap convention, see module docstring).
        ``"sweep"`` (default) checks the kernel graph is connected.
    alpha : float, optional
        Right-normalisation exponent; default 0.5 (vanilla) or 1 (target measure).
    k : int, optional
        Nearest neighbours per point (default 64).
    energies : array_like, shape (n,), optional
        ``U`` of each sample (same rows as ``samples``), needed for the target-measure map.
    beta : float, optional
        Inverse temperature of the target measure ``exp(-β U)``.
    target_measure : bool, optional
        Build a TMDmap (needs ``energies`` and ``beta``).
    stride : int, optional
        Use every ``stride``-th sample.
    max_points : int, optional
        Then keep at most this many, evenly spaced (kernel cost grows as n·k).
    connectivity_threshold : float, optional
        See :func:`choose_epsilon`.
    localisation_threshold : float, optional
        An eigenvector with inverse participation ratio ``Σ ψ⁴`` (unit norm) above
        this is localised on a few isolated points (default 0.1).  With
        ``epsilon="sweep"`` ε is doubled (up to ``max_retries`` times) until no
        leading eigenvector is localised, else :class:`DiffusionMapError`; with a
        given ε a warning is issued.
    max_retries : int, optional
        See ``localisation_threshold``.
    neighbor_params : dict, optional
        Passed to ``sklearn.neighbors.NearestNeighbors``.

    Returns
    -------
    DiffusionMapResult

    Raises
    ------
    DiffusionMapError
        Disconnected kernel graph or ARPACK non-convergence; the message says
        whether to raise ε, k, or collect transitions.

    Examples
    --------
    The slowest diffusion coordinate of points along a noisy line follows the line:

    >>> rng = np.random.default_rng(0)
    >>> points = np.column_stack([np.linspace(0.0, 1.0, 100),
    ...                           0.05 * rng.standard_normal(100)])
    >>> result = diffusion_map(points, n_evecs=1, k=10)
    >>> result.eigenvalues.shape, result.coordinates.shape
    ((1,), (100, 1))
    >>> bool(abs(np.corrcoef(result.coordinates[:, 0], points[:, 0])[0, 1]) > 0.95)
    True
    """
    x = np.asarray(samples)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"samples must be numeric, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"samples must have shape (n_points, dimension), got {x.shape}")
    x = x.astype(np.float64, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError("samples contains NaN or inf")
    n_evecs = int(n_evecs)
    if n_evecs < 1:
        raise ValueError(f"n_evecs must be >= 1, got {n_evecs}")
    if int(stride) < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if max_points is not None and int(max_points) < 3:
        raise ValueError(f"max_points must be >= 3, got {max_points}")
    k = int(k)
    if k < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    indices = _subsample(x, stride, max_points)
    data = np.ascontiguousarray(x[indices])
    m = data.shape[0]
    if n_evecs + 2 > m:
        raise ValueError(f"need more than n_evecs + 2 = {n_evecs + 2} points, have {m}")
    weights = None
    if target_measure:
        if energies is None or beta is None:
            raise ValueError("target_measure=True needs energies (U of each sample) and beta")
        u = np.asarray(energies, dtype=np.float64)
        if u.shape != (x.shape[0],):
            raise ValueError(f"energies must have shape ({x.shape[0]},), got {u.shape}")
        beta = float(beta)
        if not (np.isfinite(beta) and beta > 0):
            raise ValueError(f"beta must be positive and finite, got {beta}")
        u = u[indices]
        if not np.all(np.isfinite(u)):
            raise ValueError("energies contains NaN or inf")
        weights = np.exp(-0.5 * beta * (u - u.min()))
        if alpha is None:
            alpha = 1.0
    elif energies is not None:
        raise ValueError("energies given but target_measure=False; set target_measure=True")
    if alpha is None:
        alpha = 0.5
    alpha = float(alpha)
    sweep = {}
    if isinstance(epsilon, str):
        if epsilon == "sweep":
            epsilon, sweep = choose_epsilon(data, k, connectivity_threshold,
                                           neighbor_params=neighbor_params)
        elif epsilon not in ("bgh", "bgh_generous"):
            raise ValueError(f"epsilon must be 'sweep', 'bgh', 'bgh_generous' or a number, "
                             f"got {epsilon!r}")
    elif isinstance(epsilon, numbers.Real) and not isinstance(epsilon, bool):
        epsilon = float(epsilon)
        if not (np.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"epsilon must be positive, got {epsilon}")
    else:
        raise TypeError(f"epsilon must be a string or a number, got {type(epsilon).__name__}")

    candidates = [epsilon]
    if sweep:
        later = sweep["epsilons"][sweep["epsilons"] > epsilon]
        candidates += [float(e) for e in later[:max_retries]]
    for attempt, eps in enumerate(candidates):
        dmap, evals, evecs, coords = _fit(data, eps, k, alpha, weights, n_evecs,
                                          connectivity_threshold, neighbor_params)
        ipr = np.sum(evecs ** 4, axis=0)  # 1/m for a flat vector, ~1 on one point
        localised = ipr > localisation_threshold
        if not localised.any():
            break
        where = data[np.argmax(np.abs(evecs[:, np.argmax(ipr)]))]
        message = (f"diffusion-map eigenvector {int(np.argmax(ipr)) + 1} is localised on a few "
                   f"isolated points (inverse participation ratio {ipr.max():.2g}) at epsilon = "
                   f"{float(dmap.epsilon_fitted):.4g}, e.g. near the sample with coordinates "
                   f"{np.array2string(where[:4], precision=3)}...; outliers weakly linked to "
                   f"the rest dominate the slowest modes")
        if attempt == len(candidates) - 1:
            if sweep:
                raise DiffusionMapError(message + "; no larger epsilon in the sweep helped: "
                                        "remove outliers, subsample differently or raise k")
            warnings.warn(message + "; use a larger epsilon or epsilon='sweep'",
                          RuntimeWarning, stacklevel=2)
    if sweep:
        sweep["chosen"] = float(dmap.epsilon_fitted)
    eps_used = float(dmap.epsilon_fitted)
    dmap.evals, dmap.evecs, dmap.dmap = evals, evecs, coords
    return DiffusionMapResult(
        eigenvalues=evals, coordinates=coords, eigenvectors=evecs, dmap=dmap,
        epsilon=eps_used, alpha=alpha, k=min(k, m), data=data, indices=indices,
        kde=np.asarray(dmap.q).ravel(), right_normalization=np.asarray(dmap.right_norm_vec).ravel(),
        target_weights=weights, beta=beta if target_measure else None,
        target_measure=bool(target_measure), epsilon_sweep=sweep)
