"""Linear collective variables and linear feature maps.

A linear CV projects θ on given directions,

.. math:: s_k(θ) = \\sum_l A_{kl} (θ_l - c_l), \\qquad
          \\frac{\\partial s_k}{\\partial θ_l} = A_{kl},

with A (m × d) the directions and c an optional centre.  The same map used as
a *feature map* y = A(θ − c) lets a nonlinear CV (the diffusion map) work in
k ≪ d dimensions, e.g. on the coordinates along the top-k eigenvectors of
the sample covariance (:meth:`LinearFeatureMap.pca`).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)
from thermo.cv.base import CV, register_cv

__all__ = ["Linear", "LinearFeatureMap"]


class LinearData(NamedTuple):
    """Kernel data of :class:`Linear`: ``directions`` (m, d), ``centre`` (d,)."""
    directions: np.ndarray
    centre: np.ndarray


def linear_value_gradient(data, theta, values_out, jacobian_out):
    """s = A(θ − c), ∂s/∂θ = A (kernel-side, see :mod:`thermo.cv.base`)."""
    m, d = data.directions.shape
    for k in range(m):
        values_out[k] = _centred_dot(data.directions[k], theta, data.centre)
        for l in range(d):
            jacobian_out[k, l] = data.directions[k, l]


@njit(cache=True)
def _centred_dot(row, theta, centre):
    """row · (θ − c) with four independent accumulators combined in a fixed
    order: deterministic, and not bound by the latency of one running sum."""
    d = theta.size
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    l = 0
    while l + 4 <= d:
        a0 += row[l] * (theta[l] - centre[l])
        a1 += row[l + 1] * (theta[l + 1] - centre[l + 1])
        a2 += row[l + 2] * (theta[l + 2] - centre[l + 2])
        a3 += row[l + 3] * (theta[l + 3] - centre[l + 3])
        l += 4
    total = (a0 + a1) + (a2 + a3)
    while l < d:
        total += row[l] * (theta[l] - centre[l])
        l += 1
    return total


def linear_value(data, theta, values_out):
    """s = A(θ − c) (kernel-side fast path)."""
    for k in range(data.directions.shape[0]):
        values_out[k] = _centred_dot(data.directions[k], theta, data.centre)


def linear_add_vjp(data, theta, cotangent, gradient):
    """gradient += Aᵀ c (kernel-side; same loop order as the Jacobian path)."""
    m, d = data.directions.shape
    for k in range(m):
        ck = cotangent[k]
        if ck != 0.0:
            for l in range(d):
                gradient[l] += ck * data.directions[k, l]


register_cv(LinearData, linear_value_gradient, value=linear_value, add_vjp=linear_add_vjp)


def _as_matrix(directions, dimension=None, name="directions"):
    directions = np.asarray(directions, dtype=np.float64)
    if directions.ndim == 1:
        directions = directions[None, :]
    if directions.ndim != 2 or directions.shape[0] < 1 or directions.shape[1] < 1:
        raise ValueError(f"{name} must have shape (m, d), got {directions.shape}")
    if dimension is not None and directions.shape[1] != dimension:
        raise ValueError(f"{name} must have {dimension} columns, got {directions.shape[1]}")
    if not np.all(np.isfinite(directions)):
        raise ValueError(f"{name} contains NaN or inf")
    return np.ascontiguousarray(directions)


def _as_centre(centre, dimension):
    if centre is None:
        return np.zeros(dimension)
    centre = np.asarray(centre, dtype=np.float64)
    if centre.shape != (dimension,):
        raise ValueError(f"centre must have shape ({dimension},), got {centre.shape}")
    if not np.all(np.isfinite(centre)):
        raise ValueError("centre contains NaN or inf")
    return np.ascontiguousarray(centre)


class Linear(CV):
    """Projections of θ on given directions: s_k(θ) = Σ_l A_kl (θ_l − c_l).

    Parameters
    ----------
    directions : array_like, shape (m, d) or (d,)
        Rows are the directions A_k (not normalised by this class).
    centre : array_like, shape (d,), optional
        c; zero by default.
    names : sequence of str, optional
        Component names.

    Examples
    --------
    >>> cv = Linear([[1.0, 0.0]])           # s = θ_0
    >>> float(cv(np.array([0.3, -2.0]))[0])
    0.3
    """

    def __init__(self, directions, centre=None, names=None):
        directions = _as_matrix(directions)
        centre = _as_centre(centre, directions.shape[1])
        super().__init__(LinearData(directions, centre), directions.shape[1],
                         directions.shape[0], names=names)

    @property
    def directions(self):
        """A, shape (m, d)."""
        return self.kernel_data.directions

    @property
    def centre(self):
        """c, shape (d,)."""
        return self.kernel_data.centre


class LinearFeatureMap:
    """Linear feature map y = A(θ − c), A of shape (k, d).

    Used by :class:`thermo.cv.DiffusionMapCV` to evaluate its kernel in k
    dimensions; the CV's gradient follows by the chain rule
    ∇_θ s = Aᵀ ∇_y s.

    Parameters
    ----------
    projection : array_like, shape (k, d)
        A.
    centre : array_like, shape (d,), optional
        c; zero by default.

    Examples
    --------
    >>> features = LinearFeatureMap([[1.0, 1.0, 0.0]], centre=[0.0, 0.0, 1.0])
    >>> features.n_features, features.dimension
    (1, 3)
    >>> features(np.array([1.0, 2.0, 3.0])).tolist()
    [3.0]

    From samples that spread mostly along θ_1:

    >>> rng = np.random.default_rng(0)
    >>> samples = rng.normal(size=(500, 3)) * [0.1, 3.0, 1.0]
    >>> pca = LinearFeatureMap.pca(samples, n_features=1)
    >>> int(np.argmax(np.abs(pca.projection[0]))), bool(pca.projection[0, 1] > 0.99)
    (1, True)
    >>> pca(samples).shape
    (500, 1)
    """

    def __init__(self, projection, centre=None):
        self.projection = _as_matrix(projection, name="projection")
        self.centre = _as_centre(centre, self.projection.shape[1])

    @property
    def dimension(self):
        """d, the length of θ."""
        return self.projection.shape[1]

    @property
    def n_features(self):
        """k, the number of features."""
        return self.projection.shape[0]

    def __call__(self, theta):
        """y = A(θ − c) for θ of shape (d,) or (n, d)."""
        theta = np.asarray(theta, dtype=np.float64)
        return (theta - self.centre) @ self.projection.T

    transform = __call__

    @classmethod
    def pca(cls, samples, n_features, weights=None):
        """Coordinates on the top-``n_features`` eigenvectors of the covariance.

        With samples θ_n (rows of ``samples``) and optional weights w_n, the
        centre is the weighted mean θ̄ = Σ w_n θ_n / Σ w_n and the rows of A are
        the leading eigenvectors v_k of C = Σ w_n (θ_n − θ̄)(θ_n − θ̄)ᵀ / Σ w_n
        (computed from the SVD of the weighted, centred sample matrix; the sign
        of each v_k is fixed so that its largest-magnitude entry is positive).

        Parameters
        ----------
        samples : array_like, shape (n, d)
        n_features : int
            k ≤ min(n, d).
        weights : array_like, shape (n,), optional
            Non-negative sample weights (e.g. metadynamics reweighting factors).
        """
        samples = np.asarray(samples, dtype=np.float64)
        if samples.ndim != 2:
            raise ValueError(f"samples must have shape (n, d), got {samples.shape}")
        n, d = samples.shape
        n_features = int(n_features)
        if not 1 <= n_features <= min(n, d):
            raise ValueError(f"n_features must be in [1, {min(n, d)}], got {n_features}")
        if weights is None:
            weights = np.ones(n)
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (n,) or np.any(weights < 0) or not np.all(np.isfinite(weights)) \
                or weights.sum() <= 0:
            raise ValueError("weights must be n finite non-negative numbers, not all zero")
        weights = weights / weights.sum()
        mean = weights @ samples
        centred = (samples - mean) * np.sqrt(weights)[:, None]
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        projection = vt[:n_features].copy()
        for k in range(n_features):
            if projection[k, np.argmax(np.abs(projection[k]))] < 0:
                projection[k] *= -1.0
        return cls(projection, mean)
