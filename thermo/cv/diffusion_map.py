"""Diffusion-map collective variables with a smooth Nyström extension.

The diffusion map is fitted with pydiffmap on n landmark configurations
x_1..x_n (a subsample of the samples, optionally after a linear feature map
y = A(θ − c)).  pydiffmap builds, with the Gaussian kernel
K(y, x) = exp(−|y − x|²/(4ε)),

.. math::
    q_j = \\sum_i K(x_i, x_j), \\qquad
    c_j = q_j^{-α}\\, w_j, \\qquad
    P_{ij} = \\frac{K(x_i, x_j)\\, c_j}{\\sum_k K(x_i, x_k)\\, c_k},

(right normalisation by the kernel density to the power α, optional weights
w_j — pydiffmap's ``weight_fxn`` — then row normalisation), and the generator
L = (P − I)/ε with eigenpairs L φ_l = λ_l φ_l.  The diffusion coordinates are
Φ_{jl} = φ_l(x_j) (−1/λ_l)^{1/2}, and μ_l = 1 + ελ_l is the eigenvalue of P.

Out of sample, at any point y, this module uses the **dense** Nyström
extension

.. math::
    ψ_l(y) = \\frac{1}{μ_l} \\sum_j P_j(y)\\, Φ_{jl}, \\qquad
    P_j(y) = \\frac{K(y, x_j)\\, c_j}{\\sum_k K(y, x_k)\\, c_k},

which reproduces ψ_l(x_i) = Φ_{il} on the landmarks (pydiffmap is fitted with
k = n neighbours, i.e. a dense kernel, so P is the same matrix) and is smooth
everywhere.  Its exact gradient is

.. math::
    ∇_y ψ_l(y) = \\frac{1}{2 ε μ_l} \\sum_j P_j(y)\\,(x_j − \\bar x(y))\\, Φ_{jl},
    \\qquad \\bar x(y) = \\sum_j P_j(y)\\, x_j,

since ∇_y log K(y, x_j) = −(y − x_j)/(2ε).  The weights P_j are computed with a
log-sum-exp shift, so far from the data ψ tends to the value of the nearest
landmark instead of under- or overflowing.  pydiffmap's own ``transform`` is
*not* used in dynamics: its k-nearest-neighbour kernel is discontinuous and
vanishes far from the data (it also omits the 1/μ_l factor).

With a feature map, s(θ) = a_l ψ_l(A(θ − c)) + b_l and ∇_θ s_l = a_l Aᵀ ∇_y ψ_l;
a_l, b_l (default 1, 0) let a refitted CV be aligned with an older one.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)
from thermo.cv.base import CV, register_cv
from thermo.cv.linear import LinearFeatureMap

__all__ = ["DiffusionMapCV"]

#: Landmark counts up to which the eigenpairs are recomputed with a dense,
#: deterministic eigensolver after pydiffmap's ARPACK call (O(n³): 0.1 s at 500).
DENSE_EIGEN_LIMIT = 3000


class DiffusionMapData(NamedTuple):
    """Kernel data of :class:`DiffusionMapCV` (see the module docstring).

    ``landmarks`` (n, k), ``log_weight`` = log c_j (n,), ``coords`` Φ (n, m),
    ``inv_mu`` 1/μ_l (m,), ``inv_four_epsilon`` 1/(4ε), ``scale``/``shift`` a_l,
    b_l (m,), ``use_features`` (bool), ``projection`` A (k, d) and ``centre``
    c (d,) (empty when unused), work arrays ``work_y`` (k,), ``work_p`` (n,),
    ``work_xbar`` (k,), ``work_u`` (k,), ``work_c`` (m,),
    ``work_w`` (n,), and the transposed copies ``landmarks_t`` (k, n) and
    ``coords_t`` (m, n) (filled in by :class:`DiffusionMapCV`) that let the
    kernel sums run along j in vector lanes.  After a value evaluation
    ``work_y`` holds y, ``work_p`` the normalised weights P_j(y) and
    ``work_xbar`` x̄(y): the vector–Jacobian product
    (:func:`diffusion_map_add_vjp`) reuses them.
    """
    landmarks: np.ndarray
    log_weight: np.ndarray
    coords: np.ndarray
    inv_mu: np.ndarray
    inv_four_epsilon: float
    scale: np.ndarray
    shift: np.ndarray
    use_features: bool
    projection: np.ndarray
    centre: np.ndarray
    work_y: np.ndarray
    work_p: np.ndarray
    work_xbar: np.ndarray
    work_u: np.ndarray
    work_c: np.ndarray
    work_w: np.ndarray = None
    landmarks_t: np.ndarray = None
    coords_t: np.ndarray = None


@njit(cache=True, fastmath={"reassoc", "contract"})
def _project(projection, theta, centre, y):
    """y_i = A_i . (θ − c) for every row of A, four rows per pass over θ.

    Reassociation lets each sum run in vector lanes: a strict left-to-right
    sum is one dependent add per element (latency bound), which made the k·d
    feature projection the largest per-step cost of a feature-map CV.
    Blocking rows reads θ and c once per four rows.  NaN/inf still propagate
    (no nnan/ninf flags).
    """
    k, d = projection.shape
    i = 0
    while i + 4 <= k:
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        for l in range(d):
            x = theta[l] - centre[l]
            a0 += projection[i, l] * x
            a1 += projection[i + 1, l] * x
            a2 += projection[i + 2, l] * x
            a3 += projection[i + 3, l] * x
        y[i] = a0
        y[i + 1] = a1
        y[i + 2] = a2
        y[i + 3] = a3
        i += 4
    while i < k:
        a0 = 0.0
        for l in range(d):
            a0 += projection[i, l] * (theta[l] - centre[l])
        y[i] = a0
        i += 1


@njit(cache=True)
def _add_pullback(projection, u, gradient):
    """gradient += Aᵀ u: one read-modify-write pass over the gradient per four
    rows of A (element-wise, vectorises without reassociation)."""
    k, d = projection.shape
    i = 0
    while i + 4 <= k:
        u0 = u[i]
        u1 = u[i + 1]
        u2 = u[i + 2]
        u3 = u[i + 3]
        for l in range(d):
            gradient[l] += (u0 * projection[i, l] + u1 * projection[i + 1, l]) \
                + (u2 * projection[i + 2, l] + u3 * projection[i + 3, l])
        i += 4
    if i + 2 <= k:
        u0 = u[i]
        u1 = u[i + 1]
        for l in range(d):
            gradient[l] += u0 * projection[i, l] + u1 * projection[i + 1, l]
        i += 2
    if i < k:
        u0 = u[i]
        for l in range(d):
            gradient[l] += u0 * projection[i, l]


@njit(cache=True)
def _row_dot(a, rows, i, centre):
    """Σ_j a_j (rows[i, j] − centre) with four independent accumulators
    combined in a fixed order: deterministic, and not bound by the latency of
    one running sum.  ``centre = 0.0`` gives the plain dot product exactly
    (x − 0.0 is x for every float).  Takes the row index (a row view costs
    reference counting)."""
    n = a.size
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    j = 0
    while j + 4 <= n:
        a0 += a[j] * (rows[i, j] - centre)
        a1 += a[j + 1] * (rows[i, j + 1] - centre)
        a2 += a[j + 2] * (rows[i, j + 2] - centre)
        a3 += a[j + 3] * (rows[i, j + 3] - centre)
        j += 4
    total = (a0 + a1) + (a2 + a3)
    while j < n:
        total += a[j] * (rows[i, j] - centre)
        j += 1
    return total


@njit(cache=True)
def _nystrom_values(data, theta, values_out):
    """s(θ) into ``values_out``; leaves y, P_j(y) and x̄(y) in the work arrays.

    Loops run over the landmarks j innermost on the transposed copies
    (k, n) and (m, n): the squared distances accumulate feature by feature
    for all j at once (element-wise, vectorised), the weighted sums use
    :func:`_row_dot`.
    """
    k, n = data.landmarks_t.shape
    m = data.coords_t.shape[0]
    y = data.work_y
    if data.use_features:
        _project(data.projection, theta, data.centre, y)
    else:
        for i in range(k):
            y[i] = theta[i]
    # |y − x_j|², then log P_j up to a constant, then the shifted exponentials.
    p = data.work_p
    lt = data.landmarks_t
    yi = y[0]
    for j in range(n):
        diff = yi - lt[0, j]
        p[j] = diff * diff
    for i in range(1, k):
        yi = y[i]
        for j in range(n):
            diff = yi - lt[i, j]
            p[j] += diff * diff
    largest = -np.inf
    for j in range(n):
        a = data.log_weight[j] - p[j] * data.inv_four_epsilon
        p[j] = a
        if a > largest:
            largest = a
    z = 0.0
    for j in range(n):
        e = np.exp(p[j] - largest)
        p[j] = e
        z += e
    inv_z = 1.0 / z
    for j in range(n):
        p[j] *= inv_z
    xbar = data.work_xbar
    for i in range(k):
        xbar[i] = _row_dot(p, lt, i, 0.0)
    for l in range(m):
        values_out[l] = data.shift[l] + (data.scale[l] * data.inv_mu[l]) \
            * _row_dot(p, data.coords_t, l, 0.0)


def diffusion_map_value(data, theta, values_out):
    """Dense Nyström diffusion coordinates s(θ) (kernel-side, fast path)."""
    _nystrom_values(data, theta, values_out)


@njit(cache=True)
def _feature_gradient(data, cotangent, u):
    """u = Σ_l c_l ∇_y s_l(y) ∈ R^k from the weights left by a value evaluation:
    u_i = Σ_j w_j (x_ji − x̄_i), w_j = P_j Σ_l c_l a_l Φ_jl /(2ε μ_l).
    O(n(k + m)) instead of the O(nkm) of the m gradients."""
    k, n = data.landmarks_t.shape
    m = data.coords_t.shape[0]
    c = data.work_c
    for l in range(m):
        c[l] = cotangent[l] * (2.0 * data.inv_four_epsilon * (data.scale[l] * data.inv_mu[l]))
    w = data.work_w
    ct = data.coords_t
    c0 = c[0]
    for j in range(n):
        w[j] = c0 * ct[0, j]
    for l in range(1, m):
        cl = c[l]
        for j in range(n):
            w[j] += cl * ct[l, j]
    p = data.work_p
    for j in range(n):
        w[j] *= p[j]
    xbar = data.work_xbar
    for i in range(k):
        u[i] = _row_dot(w, data.landmarks_t, i, xbar[i])


def diffusion_map_add_vjp(data, theta, cotangent, gradient):
    """gradient += Σ_l c_l ∇_θ s_l after :func:`diffusion_map_value` at θ.

    The cotangent is pulled back to feature space first (u ∈ R^k, O(n(k + m)))
    and then through the feature map once (gradient += Aᵀu, one pass over A):
    the m × d Jacobian is never formed.
    """
    u = data.work_u
    _feature_gradient(data, cotangent, u)
    if data.use_features:
        _add_pullback(data.projection, u, gradient)
    else:
        for i in range(u.size):
            gradient[i] += u[i]


def diffusion_map_value_gradient(data, theta, values_out, jacobian_out):
    """Dense Nyström diffusion coordinates and their exact Jacobian (kernel-side);
    row l of the Jacobian is the VJP with the unit cotangent e_l."""
    m = data.coords_t.shape[0]
    _nystrom_values(data, theta, values_out)
    unit = np.zeros(m)
    for l in range(m):
        unit[:] = 0.0
        unit[l] = 1.0
        row = jacobian_out[l]
        row[:] = 0.0
        if data.use_features:
            _feature_gradient(data, unit, data.work_u)
            _add_pullback(data.projection, data.work_u, row)
        else:
            _feature_gradient(data, unit, row)


register_cv(DiffusionMapData, diffusion_map_value_gradient, value=diffusion_map_value,
            add_vjp=diffusion_map_add_vjp)


def _fix_sign(coords):
    # Eigenvector signs are arbitrary: make the largest-magnitude entry positive.
    coords = coords.copy()
    signs = np.ones(coords.shape[1])
    for l in range(coords.shape[1]):
        if coords[np.argmax(np.abs(coords[:, l])), l] < 0:
            signs[l] = -1.0
            coords[:, l] *= -1.0
    return coords, signs


def _dense_eigenpairs(dmap, n_coords):
    """pydiffmap's ``_make_diffusion_coords`` with a dense eigensolver.

    Used when ARPACK does not converge (small ε, nearly disconnected data);
    ``dmap.L`` was built by pydiffmap's ``construct_Lmat``.  Same ordering,
    real parts and scaling Φ = φ (−1/λ)^{1/2} as pydiffmap.
    """
    evals, evecs = np.linalg.eig(np.asarray(dmap.L.todense()))
    order = np.argsort(evals.real)[::-1][1:n_coords + 1]
    evals = np.real(evals[order])
    evecs = np.real(evecs[:, order])
    evecs = evecs / np.linalg.norm(evecs, axis=0)
    dmap.evals = evals
    dmap.evecs = evecs
    dmap.dmap = evecs @ np.diag(np.sqrt(-1.0 / evals))


class DiffusionMapCV(CV):
    """Leading diffusion coordinates as a smooth CV with exact gradient.

    Build with :meth:`fit`; see the module docstring for the equations.

    Attributes
    ----------
    epsilon : float
        Kernel bandwidth ε (kernel exp(−|y − x|²/(4ε))).
    alpha : float
        Right-normalisation exponent α.
    eigenvalues : ndarray, shape (m,)
        λ_l of the generator L (negative, decreasing).
    landmarks : ndarray, shape (n, k)
        Landmarks in feature space (θ space without a feature map).
    landmark_coords : ndarray, shape (n, m)
        Φ, the diffusion coordinates of the landmarks (sign fixed so that the
        largest-magnitude entry of each column is positive).
    feature_map : LinearFeatureMap or None
    dmap : pydiffmap.diffusion_map.DiffusionMap
        The fitted pydiffmap object (kept for inspection; not used in dynamics).
    signs : ndarray, shape (m,)
        ±1: Φ = signs · pydiffmap's ``dmap``.
    alignment : dict or None
        Set by :meth:`aligned_to`: which candidate coordinates were kept and
        how well they correlate with the reference.

    Examples
    --------
    The leading coordinate of samples from two basins (around x = ±1)
    separates the basins:

    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(-1.0, 0.2, 50), rng.normal(1.0, 0.2, 50)])
    >>> samples = np.column_stack([x, 0.1 * rng.normal(size=100)])
    >>> cv = DiffusionMapCV.fit(samples, n_coords=1, epsilon=0.1, n_landmarks=None)
    >>> cv.landmarks.shape, bool(cv.eigenvalues[0] < 0)
    ((100, 2), True)
    >>> s = cv(np.array([[-1.0, 0.0], [1.0, 0.0]]))
    >>> s.shape, bool(s[0, 0] * s[1, 0] < 0)
    ((2, 1), True)
    >>> values, jacobian = cv.value_and_jacobian(np.array([0.0, 0.0]))
    >>> jacobian.shape
    (1, 2)
    """

    def __init__(self, kernel_data, dimension, names=None, *, epsilon, alpha,
                 eigenvalues, feature_map=None, dmap=None, signs=None):
        # the kernel's transposed layouts, always derived from the data
        kernel_data = kernel_data._replace(
            landmarks_t=np.ascontiguousarray(kernel_data.landmarks.T),
            coords_t=np.ascontiguousarray(kernel_data.coords.T),
            work_w=np.empty(kernel_data.landmarks.shape[0]))
        super().__init__(kernel_data, dimension, kernel_data.coords.shape[1], names=names)
        self.epsilon = float(epsilon)
        self.alpha = float(alpha)
        self.eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
        self.feature_map = feature_map
        self.dmap = dmap
        self.signs = np.ones(self.n_coords) if signs is None else np.asarray(signs)
        self.alignment = None

    @property
    def landmarks(self):
        return self.kernel_data.landmarks

    @property
    def landmark_coords(self):
        return self.kernel_data.coords

    @property
    def scale(self):
        """a_l in s_l = a_l ψ_l + b_l."""
        return self.kernel_data.scale.copy()

    @property
    def shift(self):
        """b_l in s_l = a_l ψ_l + b_l."""
        return self.kernel_data.shift.copy()

    @classmethod
    def fit(cls, samples, n_coords=1, *, epsilon="bgh", alpha=0.5, n_landmarks=500,
            features=None, n_features=None, sample_weights=None, seed=0, names=None):
        """Fit the diffusion map on (a subsample of) ``samples`` with pydiffmap.

        Parameters
        ----------
        samples : array_like, shape (N, d)
            Configurations θ_n (e.g. a sampler trajectory).
        n_coords : int
            m, the number of leading diffusion coordinates (1 or 2 for
            metadynamics; any m ≥ 1 works here).
        epsilon : float or {"bgh", "bgh_generous", "sweep"}
            Bandwidth ε, pydiffmap's automatic choice (Berry–Giannakis–
            Harlim), or "sweep": :func:`thermo.analysis.diffusion_map.choose_epsilon`
            (largest connected, well-resolved ε) on the landmarks.
        alpha : float
            Right normalisation exponent α (0.5: backward Kolmogorov operator
            of overdamped Langevin for the sampled density; 1: Laplace–Beltrami).
        n_landmarks : int or None
            Number of landmarks chosen uniformly without replacement (seeded);
            None or ≥ N uses all samples.  The CV costs O(n k m) per call.
        features : None, "pca" or LinearFeatureMap
            Feature map applied before the kernel.  "pca": coordinates on the
            top ``n_features`` eigenvectors of the (weighted) sample covariance.
        n_features : int
            k for ``features="pca"``.
        sample_weights : array_like, shape (N,), optional
            Reweighting factors r_n of biased samples (e.g. exp(β(V − c(t))) of
            metadynamics).  Landmark j then carries w_j = r_j^{1/2} in the
            right normalisation (pydiffmap ``weight_fxn``); with α = 1/2 this is
            the target-measure diffusion map of the unbiased density,
            K q^{-1/2} r^{1/2} = K q^{-1} (q r)^{1/2}.
        seed : int
            Seed of the landmark subsample.
        names : sequence of str, optional

        Returns
        -------
        DiffusionMapCV
        """
        from pydiffmap.diffusion_map import DiffusionMap

        samples = np.asarray(samples, dtype=np.float64)
        if samples.ndim != 2:
            raise ValueError(f"samples must have shape (N, d), got {samples.shape}")
        if not np.all(np.isfinite(samples)):
            raise ValueError("samples contain NaN or inf")
        n_samples, dimension = samples.shape
        n_coords = int(n_coords)
        if n_coords < 1:
            raise ValueError(f"n_coords must be >= 1, got {n_coords}")
        if isinstance(epsilon, str):
            if epsilon not in ("bgh", "bgh_generous", "sweep"):
                raise ValueError(f"epsilon must be a positive number, 'bgh', "
                                 f"'bgh_generous' or 'sweep', got {epsilon!r}")
        elif not (np.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"epsilon must be positive, got {epsilon}")
        if sample_weights is not None:
            sample_weights = np.asarray(sample_weights, dtype=np.float64)
            if sample_weights.shape != (n_samples,) or np.any(sample_weights <= 0) \
                    or not np.all(np.isfinite(sample_weights)):
                raise ValueError("sample_weights must be N finite positive numbers")
        rng = np.random.default_rng(seed)
        if n_landmarks is None or n_landmarks >= n_samples:
            index = np.arange(n_samples)
        else:
            if n_landmarks < n_coords + 2:
                raise ValueError(f"n_landmarks must be >= n_coords + 2, got {n_landmarks}")
            index = np.sort(rng.choice(n_samples, size=int(n_landmarks), replace=False))
        if index.size < n_coords + 2:
            raise ValueError(f"need at least {n_coords + 2} samples, got {index.size}")

        if features is None:
            feature_map = None
            points = samples[index]
        else:
            if isinstance(features, str):
                if features != "pca":
                    raise ValueError(f"features must be None, 'pca' or a LinearFeatureMap, "
                                     f"got {features!r}")
                if n_features is None:
                    raise ValueError("features='pca' needs n_features")
                feature_map = LinearFeatureMap.pca(samples, n_features, weights=sample_weights)
            elif isinstance(features, LinearFeatureMap):
                feature_map = features
            else:
                raise TypeError("features must be None, 'pca' or a LinearFeatureMap")
            if feature_map.dimension != dimension:
                raise ValueError(f"feature map acts on dimension {feature_map.dimension}, "
                                 f"samples have {dimension}")
            points = feature_map(samples[index])
        points = np.ascontiguousarray(points, dtype=np.float64)
        n = points.shape[0]

        if isinstance(epsilon, str) and epsilon == "sweep":
            from thermo.analysis.diffusion_map import choose_epsilon
            epsilon, _ = choose_epsilon(points, k=min(64, n - 1))

        weight_fxn = None
        if sample_weights is not None:
            w = np.sqrt(sample_weights[index] / np.mean(sample_weights[index]))
            table = {points[j].tobytes(): w[j] for j in range(n)}

            def weight_fxn(x):
                return table[np.ascontiguousarray(x, dtype=np.float64).tobytes()]

        dmap = DiffusionMap.from_sklearn(alpha=alpha, k=n, epsilon=epsilon, n_evecs=n_coords,
                                         weight_fxn=weight_fxn)
        try:
            dmap.fit(points)
            if n <= DENSE_EIGEN_LIMIT:
                # ARPACK's start vector comes from a random stream that persists
                # across calls in a process: with close eigenvalues the result
                # then depends on what ran before.  The dense solver does not.
                _dense_eigenpairs(dmap, n_coords)
        except Exception as error:            # ARPACK did not converge: dense fallback
            from scipy.sparse.linalg import ArpackNoConvergence
            if not isinstance(error, ArpackNoConvergence):
                raise
            _dense_eigenpairs(dmap, n_coords)
        eps = float(dmap.epsilon_fitted)
        evals = np.asarray(dmap.evals, dtype=np.float64)
        if np.any(evals >= 0):
            raise ValueError("diffusion map has a non-negative eigenvalue besides the "
                             "stationary one (disconnected data? increase epsilon)")
        mu = 1.0 + eps * evals
        log_weight = np.log(np.asarray(dmap.right_norm_vec, dtype=np.float64).ravel())
        if dmap.weights is not None:
            log_weight = log_weight + np.log(np.asarray(dmap.weights, dtype=np.float64))
        coords, signs = _fix_sign(np.asarray(dmap.dmap, dtype=np.float64))
        if feature_map is None:
            projection = np.zeros((0, 0))
            centre = np.zeros(0)
        else:
            projection = feature_map.projection
            centre = feature_map.centre
        k = points.shape[1]
        data = DiffusionMapData(
            landmarks=points, log_weight=np.ascontiguousarray(log_weight),
            coords=np.ascontiguousarray(coords), inv_mu=1.0 / mu,
            inv_four_epsilon=1.0 / (4.0 * eps), scale=np.ones(n_coords),
            shift=np.zeros(n_coords), use_features=feature_map is not None,
            projection=projection, centre=centre, work_y=np.empty(k),
            work_p=np.empty(n), work_xbar=np.empty(k), work_u=np.empty(k),
            work_c=np.empty(n_coords))
        return cls(data, dimension, names=names, epsilon=eps, alpha=alpha,
                   eigenvalues=evals, feature_map=feature_map, dmap=dmap, signs=signs)

    def transformed(self, scale=None, shift=None):
        """A copy with s_l = a_l ψ_l + b_l (fresh work arrays, shared fit)."""
        scale = np.ones(self.n_coords) if scale is None else np.asarray(scale, float)
        shift = np.zeros(self.n_coords) if shift is None else np.asarray(shift, float)
        if scale.shape != (self.n_coords,) or shift.shape != (self.n_coords,):
            raise ValueError(f"scale and shift must have shape ({self.n_coords},)")
        if not (np.all(np.isfinite(scale)) and np.all(scale != 0) and np.all(np.isfinite(shift))):
            raise ValueError("scale must be finite and non-zero, shift finite")
        old = self.kernel_data
        data = old._replace(scale=scale.copy(), shift=shift.copy(),
                            work_y=np.empty_like(old.work_y), work_p=np.empty_like(old.work_p),
                            work_xbar=np.empty_like(old.work_xbar),
                            work_u=np.empty_like(old.work_u), work_c=np.empty_like(old.work_c))
        return DiffusionMapCV(data, self.dimension, names=self.names, epsilon=self.epsilon,
                              alpha=self.alpha, eigenvalues=self.eigenvalues,
                              feature_map=self.feature_map, dmap=self.dmap, signs=self.signs)

    def aligned_to(self, reference, samples, weights=None, min_correlation=0.0,
                   preference=None, min_relative_preference=None):
        """A copy whose coordinates match ``reference``'s on ``samples``.

        This CV's coordinates are *candidates*: it may have more of them than
        ``reference`` (fit with extra coordinates, e.g. ``n_coords + 3``, when
        refitting on a biased ensemble, where the leading new coordinate need
        not be the slow variable the reference tracked).  For the m reference
        coordinates, the m distinct candidates with the largest total
        |correlation| (weighted, on ``samples``) are chosen, reference
        coordinate b paired with candidate a_b (an injective assignment; ties
        go to the leading candidates).  Each chosen ψ_{a_b} is then mapped to
        a ψ + b' with sign(a) that of the correlation and |a|, b' matching the
        reference's (weighted) standard deviation and mean.  The result has
        exactly m coordinates, in the reference's order, and carries an
        ``alignment`` dict: ``candidates`` (a_b, 0-based candidate indices),
        ``correlations`` (the signed correlation of each chosen candidate with
        its reference coordinate) and ``candidate_correlations`` (the (C, m)
        table of all candidates) and ``matched`` (False when the fallback
        below was used).

        When the best match is poor — some chosen |correlation| below
        ``min_correlation``, i.e. no candidate resembles that reference
        coordinate, or some chosen candidate's ``preference`` below
        ``min_relative_preference`` times the largest — continuity is not
        trusted and the m candidates ranked highest by ``preference``
        (default: the leading ones) are kept instead, still assigned to the
        reference coordinates by correlation and aligned in sign, scale and
        shift.

        Parameters
        ----------
        reference : CV
            The CV to align to (m ≤ this CV's number of coordinates).
        samples : array_like, shape (N, d)
        weights : array_like, shape (N,), optional
            Sample weights (e.g. reweighting factors).
        min_correlation : float
            Smallest acceptable |correlation| of a matched candidate (0: always
            match by correlation).
        preference : array_like, shape (C,), optional
            Score of each candidate for the fallback (higher first; ties to the
            leading candidates).  Default: the candidates' order.
        min_relative_preference : float, optional
            With ``preference``: a correlation match is accepted only if each
            matched candidate's preference is at least this fraction of the
            largest preference.

        Returns
        -------
        DiffusionMapCV
            m coordinates, aligned; ``.alignment`` describes the match.

        Examples
        --------
        Samples spread most along x, then along y; the reference CV is −y,
        which the third candidate follows (the first is x, the second a
        harmonic of x):

        >>> from thermo.cv import Linear
        >>> rng = np.random.default_rng(0)
        >>> samples = rng.normal(size=(300, 2)) * [1.0, 0.6]
        >>> candidates = DiffusionMapCV.fit(samples, n_coords=3, epsilon=0.5,
        ...                                 n_landmarks=None)
        >>> picked = candidates.aligned_to(Linear([[0.0, -1.0]]), samples)
        >>> picked.n_coords, picked.alignment["candidates"]
        (1, (2,))
        >>> bool(abs(picked.alignment["correlations"][0]) > 0.9)
        True
        >>> s = picked(samples)[:, 0]          # same mean and spread as −y
        >>> bool(np.isclose(s.mean(), -samples[:, 1].mean()))
        True
        """
        m = reference.n_coords
        n_candidates = self.n_coords
        if m > n_candidates:
            raise ValueError(f"reference CV has {m} coordinates, this CV only "
                             f"{n_candidates} candidates")
        samples = np.asarray(samples, dtype=np.float64)
        old = np.asarray(reference(samples))
        base = self.transformed()
        new = np.asarray(base(samples))
        w = np.ones(len(samples)) if weights is None else np.asarray(weights, float)
        w = w / w.sum()

        def moments(x):
            mean = w @ x
            centred = x - mean
            return mean, centred, np.sqrt(w @ centred ** 2)

        corr = np.empty((n_candidates, m))
        stats_new = [moments(new[:, a]) for a in range(n_candidates)]
        stats_old = [moments(old[:, b]) for b in range(m)]
        for a in range(n_candidates):
            for b in range(m):
                denominator = stats_new[a][2] * stats_old[b][2]
                corr[a, b] = (w @ (stats_new[a][1] * stats_old[b][1])) / denominator \
                    if denominator > 0 else 0.0
        import itertools
        # permutations come in lexicographic order and max keeps the first
        # maximum: ties go to the leading candidates
        best = max(itertools.permutations(range(n_candidates), m),
                   key=lambda perm: sum(abs(corr[perm[b], b]) for b in range(m)))
        if preference is not None:
            preference = np.asarray(preference, dtype=float)
            if preference.shape != (n_candidates,):
                raise ValueError(f"preference must have shape ({n_candidates},)")
        matched = all(abs(corr[a, b]) >= min_correlation for b, a in enumerate(best))
        if matched and preference is not None and min_relative_preference is not None:
            floor = min_relative_preference * preference.max()
            matched = all(preference[a] >= floor for a in best)
        if not matched:
            if preference is None:
                preference = -np.arange(n_candidates, dtype=float)
            kept = sorted(np.argsort(-preference, kind="stable")[:m].tolist())
            best = max(itertools.permutations(kept, m),
                       key=lambda perm: sum(abs(corr[perm[b], b]) for b in range(m)))
        scale = np.empty(m)
        shift = np.empty(m)
        order = list(best)
        for b, a in enumerate(order):
            sign = 1.0 if corr[a, b] >= 0 else -1.0
            if stats_new[a][2] > 0 and stats_old[b][2] > 0:
                factor = sign * stats_old[b][2] / stats_new[a][2]
            else:
                factor = sign
            scale[b] = factor
            shift[b] = stats_old[b][0] - factor * stats_new[a][0]
        data = base.kernel_data
        # Keep the chosen coordinates, so that new coordinate b follows reference b.
        data = data._replace(coords=np.ascontiguousarray(data.coords[:, order]),
                             inv_mu=data.inv_mu[order].copy(), scale=scale, shift=shift,
                             work_c=np.empty(m))
        aligned = DiffusionMapCV(data, self.dimension, names=reference.names,
                                 epsilon=self.epsilon, alpha=self.alpha,
                                 eigenvalues=self.eigenvalues[order],
                                 feature_map=self.feature_map, dmap=self.dmap,
                                 signs=self.signs[order])
        aligned.alignment = {"candidates": tuple(int(a) for a in order),
                             "correlations": np.array([corr[a, b] for b, a in enumerate(order)]),
                             "candidate_correlations": corr, "matched": bool(matched)}
        return aligned
