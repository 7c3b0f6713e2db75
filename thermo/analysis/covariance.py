"""Covariance of sampled parameters: streaming, from arrays, eigenvectors, projections.

The covariance of θ sampled from ``exp(-β U)`` is, near a minimum θ*, the
inverse Hessian over β: its *leading* eigenvectors are the *flattest*
directions of the loss.  Loss landscapes drawn along them
(:func:`thermo.analysis.landscape`) show how wide the minimum is.

.. warning:: **Flat directions without a prior.**  Unregularised softmax
   regression (the MNIST "perceptron", 784·10 + 10 = 7850 parameters) has an
   exactly flat subspace of at least 785 dimensions: adding the same vector to
   the weights of all ten classes (and the same number to all biases) leaves
   every softmax probability unchanged (shift invariance, 784 + 1 directions).
   Pixels that are zero in every training image (the MNIST border) add more
   exactly flat directions.  Along these the posterior is improper and a sampler
   performs a free random walk, so the sample covariance grows linearly with
   the run length and its leading eigenvectors measure *diffusion time, not
   curvature*.  A Gaussian prior ``(λ/2)|θ|²`` (``Posterior(...,
   prior_precision=λ)``) makes every direction confining with curvature at
   least λ and fixes this; the flat directions then show up as eigenvalues
   ``≈ 1/(β λ)``.

Streaming accumulation uses Welford's update generalised to batches (Chan,
Golub & LeVeque 1979): accumulators hold ``(n, mean, M2)`` with
``M2 = Σ (x - mean)(x - mean)ᵀ``, never the samples, and two accumulators merge
exactly.  Memory is one ``d × d`` matrix (490 MB for d = 7850 in float64).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla

__all__ = [
    "CovarianceAccumulator",
    "Eigenpairs",
    "covariance",
    "eigendecomposition",
    "principal_components",
    "project",
]


def _as_samples(x, name="trajectory", dimension=None):
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real numeric array, got dtype {x.dtype}")
    if x.ndim == 1 and dimension is not None:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (n_samples, dimension), got {x.shape}")
    if dimension is not None and x.shape[1] != dimension:
        raise ValueError(f"{name} has dimension {x.shape[1]}, expected {dimension}")
    x = x.astype(np.float64, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    return x


class CovarianceAccumulator:
    """Streaming, mergeable mean and covariance of vectors (no samples kept).

    Parameters
    ----------
    dimension : int
        Length of each sample vector.

    Examples
    --------
    >>> acc = CovarianceAccumulator(3)
    >>> rng = np.random.default_rng(0)
    >>> for chunk in np.array_split(rng.standard_normal((1000, 3)), 7):
    ...     _ = acc.update(chunk)
    >>> acc.count
    1000
    >>> acc.covariance().shape
    (3, 3)
    """

    def __init__(self, dimension):
        dimension = int(dimension)
        if dimension < 1:
            raise ValueError(f"dimension must be >= 1, got {dimension}")
        self.dimension = dimension
        self.count = 0
        self._mean = np.zeros(dimension)
        self._m2 = np.zeros((dimension, dimension))

    def _combine(self, n_b, mean_b, m2_b):
        n_a = self.count
        if n_b == 0:
            return
        if n_a == 0:
            self.count, self._mean, self._m2 = n_b, mean_b.copy(), m2_b.copy()
            return
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean += delta * (n_b / n)
        self._m2 += m2_b
        self._m2 += np.outer(delta, delta) * (n_a * n_b / n)
        self.count = n

    def update(self, samples):
        """Add one sample ``(d,)`` or a batch ``(m, d)``.

        Returns
        -------
        CovarianceAccumulator
            ``self``, so calls chain.
        """
        x = _as_samples(samples, "samples", self.dimension)
        if x.shape[0] == 0:
            return self
        mean_b = x.mean(axis=0)
        centred = x - mean_b
        self._combine(x.shape[0], mean_b, centred.T @ centred)
        return self

    def merge(self, other):
        """Fold another accumulator into this one (exact, order independent).

        Returns
        -------
        CovarianceAccumulator
            ``self``.
        """
        if not isinstance(other, CovarianceAccumulator):
            raise TypeError(f"can only merge a CovarianceAccumulator, got {type(other).__name__}")
        if other.dimension != self.dimension:
            raise ValueError(f"dimensions differ: {self.dimension} and {other.dimension}")
        self._combine(other.count, other._mean, other._m2)
        return self

    def __add__(self, other):
        result = self.copy()
        return result.merge(other)

    def copy(self):
        """Independent copy."""
        new = CovarianceAccumulator(self.dimension)
        new.count, new._mean, new._m2 = self.count, self._mean.copy(), self._m2.copy()
        return new

    @property
    def mean(self):
        """Mean of the samples seen so far."""
        if self.count == 0:
            raise ValueError("no samples accumulated yet")
        return self._mean.copy()

    def covariance(self, ddof=1):
        """Sample covariance ``M2 / (n - ddof)`` (``ddof=1`` matches ``np.cov``)."""
        if self.count - ddof <= 0:
            raise ValueError(f"need more than {ddof} samples for a covariance, have {self.count}")
        return self._m2 / (self.count - ddof)

    def __repr__(self):
        return f"CovarianceAccumulator(dimension={self.dimension}, count={self.count})"


def covariance(trajectory, ddof=1, accumulator=False):
    """Covariance matrix of stored samples.

    Parameters
    ----------
    trajectory : array_like, shape (n_samples, d)
        One sample per row (``run.trajectory``).
    ddof : int, optional
        Delta degrees of freedom (1: unbiased, as ``np.cov``).
    accumulator : bool, optional
        Return a :class:`CovarianceAccumulator` holding the samples' statistics
        instead of the matrix (to be merged with later chunks).

    Returns
    -------
    ndarray, shape (d, d) or CovarianceAccumulator

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal((500, 2))
    >>> np.allclose(covariance(x), np.cov(x, rowvar=False))
    True
    >>> acc = covariance(x[:200], accumulator=True).update(x[200:])
    >>> np.allclose(acc.covariance(), covariance(x))
    True
    """
    x = _as_samples(trajectory)
    acc = CovarianceAccumulator(x.shape[1]).update(x)
    return acc if accumulator else acc.covariance(ddof)


class Eigenpairs(NamedTuple):
    """Eigenvalues in descending order and eigenvectors as columns.

    Parameters
    ----------
    values : ndarray, shape (k,)
        Eigenvalues, largest first.
    vectors : ndarray, shape (d, k)
        Unit eigenvectors as columns, ``vectors[:, i]`` belonging to ``values[i]``.

    Examples
    --------
    >>> values, vectors = eigendecomposition(np.diag([1.0, 3.0]))
    >>> values
    array([3., 1.])
    >>> vectors
    array([[0., 1.],
           [1., 0.]])
    """

    values: np.ndarray
    vectors: np.ndarray


def _check_k(k, d):
    if k is None:
        return None
    k = int(k)
    if not 1 <= k <= d:
        raise ValueError(f"k must be in [1, {d}], got {k}")
    return k


def eigendecomposition(matrix, k=None, method="auto", seed=0):
    """Eigenpairs of a symmetric matrix (a covariance or Hessian), largest first.

    Parameters
    ----------
    matrix : array_like, shape (d, d) or scipy.sparse.linalg.LinearOperator
        Symmetric matrix, or an operator computing ``M v``.
    k : int, optional
        Number of leading eigenpairs; all when omitted.
    method : {"auto", "eigh", "lanczos"}, optional
        ``"eigh"``: dense LAPACK (fine up to d ≈ 10⁴, a few minutes at 7850 on
        two cores); ``"lanczos"``: ARPACK's implicitly restarted Lanczos
        (``scipy.sparse.linalg.eigsh``), for ``k << d`` or operators.
        ``"auto"`` uses Lanczos when ``k < d / 10`` or for operators.
    seed : int, optional
        Seed of Lanczos' start vector (makes results reproducible).

    Returns
    -------
    Eigenpairs
        ``values`` (k,), ``vectors`` (d, k); each vector's sign is fixed so that
        its largest-magnitude component is positive.

    Examples
    --------
    >>> matrix = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> pairs = eigendecomposition(matrix)
    >>> pairs.values
    array([3., 1.])
    >>> np.round(pairs.vectors[:, 0], 4)
    array([0.7071, 0.7071])
    >>> eigendecomposition(np.diag(np.arange(1.0, 31.0)), k=2).values  # Lanczos
    array([30., 29.])
    """
    if method not in ("auto", "eigh", "lanczos"):
        raise ValueError(f"method must be 'auto', 'eigh' or 'lanczos', got {method!r}")
    is_operator = isinstance(matrix, spla.LinearOperator)
    if not is_operator:
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"matrix must be square, got shape {matrix.shape}")
        if not np.all(np.isfinite(matrix)):
            raise ValueError("matrix contains NaN or inf")
    d = matrix.shape[0]
    k = _check_k(k, d)
    if method == "auto":
        method = "lanczos" if is_operator or (k is not None and k < d / 10) else "eigh"
    if method == "eigh":
        if is_operator:
            raise ValueError("method='eigh' needs an explicit matrix, not a LinearOperator")
        if k is None:
            values, vectors = np.linalg.eigh(matrix)
        else:
            values, vectors = scipy.linalg.eigh(matrix, subset_by_index=(d - k, d - 1))
    else:
        if k is None or k >= d - 1:
            raise ValueError(f"Lanczos needs k < d - 1 = {d - 1}; use method='eigh'")
        v0 = np.random.default_rng(seed).standard_normal(d)
        values, vectors = spla.eigsh(matrix, k=k, which="LA", v0=v0)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    index = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[index, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return Eigenpairs(values, vectors * signs)


def principal_components(trajectory, k=None, method="auto", ddof=1, seed=0):
    """Leading eigenpairs of the covariance of stored samples.

    Parameters
    ----------
    trajectory : array_like, shape (n, d)
        Samples, one per row.
    k : int, optional
        Number of eigenpairs (all ``min(n, d)`` meaningful ones when omitted
        with ``method="svd"``, all ``d`` with ``"eigh"``).
    method : {"auto", "svd", "eigh", "lanczos"}, optional
        ``"svd"``: thin SVD of the centred samples, exact and cheap when
        ``n < d`` (the covariance then has rank ≤ n - 1); ``"eigh"``: dense
        decomposition of the d × d matrix; ``"lanczos"``: ``eigsh`` on the
        operator ``v ↦ Xcᵀ (Xc v) / (n - ddof)`` without forming the matrix.
        ``"auto"`` picks ``"svd"`` when ``n <= d`` and ``"eigh"`` otherwise.
    ddof : int, optional
        As in :func:`covariance`.
    seed : int, optional
        Lanczos start vector seed.

    Returns
    -------
    Eigenpairs
        Covariance eigenvalues (descending) and eigenvectors (columns).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2000, 3)) * np.array([3.0, 1.0, 0.1])
    >>> pairs = principal_components(x)
    >>> np.round(pairs.values, 1)
    array([9.2, 1. , 0. ])
    >>> int(np.abs(pairs.vectors[:, 0]).argmax())  # the widest axis
    0
    """
    x = _as_samples(trajectory)
    n, d = x.shape
    if n - ddof <= 0:
        raise ValueError(f"need more than {ddof} samples, have {n}")
    if method not in ("auto", "svd", "eigh", "lanczos"):
        raise ValueError(f"method must be 'auto', 'svd', 'eigh' or 'lanczos', got {method!r}")
    if method == "auto":
        method = "svd" if n <= d else "eigh"
    centred = x - x.mean(axis=0)
    if method == "svd":
        rank = min(n, d)
        k = rank if k is None else _check_k(k, d)
        if k > rank:
            raise ValueError(f"only {rank} eigenpairs from {n} samples in {d} dimensions, "
                             f"asked {k}")
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        values, vectors = s[:k] ** 2 / (n - ddof), vt[:k].T.copy()
        index = np.argmax(np.abs(vectors), axis=0)
        signs = np.sign(vectors[index, np.arange(k)])
        signs[signs == 0] = 1.0
        return Eigenpairs(values, vectors * signs)
    if method == "eigh":
        return eigendecomposition(centred.T @ centred / (n - ddof), k=k, method="eigh")
    scale = 1.0 / (n - ddof)
    operator = spla.LinearOperator(
        (d, d), matvec=lambda v: centred.T @ (centred @ np.ravel(v)) * scale, dtype=np.float64)
    return eigendecomposition(operator, k=k, method="lanczos", seed=seed)


def project(trajectory, vectors, centre=None, residual=False):
    """Coordinates of samples along (orthonormal) directions.

    Parameters
    ----------
    trajectory : array_like, shape (n, d) or (d,)
        Points to project.
    vectors : array_like, shape (d, k) or (d,)
        Directions as columns (e.g. ``Eigenpairs.vectors[:, [0, 63]]``).  They
        need not be normalised; coordinates are along ``v / |v|`` when the
        columns are orthogonal, and least-squares coefficients otherwise.
    centre : array_like, shape (d,), optional
        Origin (e.g. the minimum θ* or the sample mean); default zero.
    residual : bool, optional
        Also return the distance of each point from the affine subspace
        ``centre + span(vectors)``.

    Returns
    -------
    coordinates : ndarray, shape (n, k)
        Coordinates ``c`` with ``x ≈ centre + V c``.
    distance : ndarray, shape (n,)
        Only with ``residual=True``.

    Examples
    --------
    >>> points = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]])
    >>> project(points, np.eye(3)[:, :2])
    array([[ 1.,  2.],
           [ 0., -1.]])
    >>> coords, distance = project(points, [0.0, 0.0, 2.0], residual=True)
    >>> coords.ravel(), np.round(distance, 4)
    (array([1.5 , 0.25]), array([2.2361, 1.    ]))
    """
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2:
        raise ValueError(f"vectors must have shape (d, k), got {v.shape}")
    x = _as_samples(trajectory, "trajectory", v.shape[0])
    if centre is not None:
        centre = np.asarray(centre, dtype=np.float64)
        if centre.shape != (v.shape[0],):
            raise ValueError(f"centre must have shape ({v.shape[0]},), got {centre.shape}")
        x = x - centre
    gram = v.T @ v
    coords = np.linalg.solve(gram, v.T @ x.T).T
    if not residual:
        return coords
    distance = np.linalg.norm(x - coords @ v.T, axis=1)
    return coords, distance
