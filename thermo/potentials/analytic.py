"""Analytic test potentials: Gaussian, double well, Müller–Brown.

All are deterministic (exact gradients), float64, and register a Laplacian
(:func:`thermo.samplers._solvers.register_laplacian`) so that samplers can
record the configurational temperature ⟨|∇U|²⟩/⟨∇²U⟩.  Samplers target
exp(-β U).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)
from thermo.potentials.base import Potential, register
from thermo.samplers._solvers import register_laplacian

__all__ = ["Gaussian", "NoisyGaussian", "DoubleWell", "MuellerBrown"]


# --- Gaussian

class GaussianData(NamedTuple):
    mean: np.ndarray        # (d,)
    precision: np.ndarray   # (d, d), symmetric positive definite


@njit(cache=True)
def _quadratic(mean, precision, theta, gradient):
    """½ (θ-m)ᵀ P (θ-m); writes P (θ-m) into ``gradient``."""
    d = theta.size
    energy = 0.0
    for i in range(d):
        total = 0.0
        for j in range(d):
            total += precision[i, j] * (theta[j] - mean[j])
        gradient[i] = total
        energy += 0.5 * (theta[i] - mean[i]) * total
    return energy


def _gaussian_energy_gradient(data, theta, gradient, rng):
    return _quadratic(data.mean, data.precision, theta, gradient)


def _gaussian_laplacian(data, theta):
    total = 0.0
    for i in range(theta.size):
        total += data.precision[i, i]
    return total


register(GaussianData, _gaussian_energy_gradient)
register_laplacian(GaussianData, _gaussian_laplacian)


class Gaussian(Potential):
    """U(θ) = ½ (θ - m)ᵀ Σ⁻¹ (θ - m).

    Sampled at inverse temperature β the θ-distribution is N(m, Σ/β).

    Parameters
    ----------
    mean : array_like, shape (d,)
    covariance : array_like, shape (d, d) or (d,) or scalar, optional
        Σ, symmetric positive definite (a vector means a diagonal matrix, a
        scalar a multiple of the identity).  Default identity.
    precision : array_like, optional
        Σ⁻¹ instead of ``covariance`` (give at most one).

    Examples
    --------
    >>> import numpy as np
    >>> from thermo.potentials import Gaussian
    >>> Gaussian([0.0, 0.0], [[1.0, 0.5], [0.5, 2.0]]).energy(np.array([1.0, 0.0]))
    0.571428...
    """

    def __init__(self, mean, covariance=None, precision=None):
        mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        if mean.ndim != 1 or not np.all(np.isfinite(mean)):
            raise ValueError("mean must be a finite 1-D array")
        d = mean.size
        if covariance is not None and precision is not None:
            raise ValueError("give covariance or precision, not both")
        given = covariance if precision is None else precision
        name = "covariance" if precision is None else "precision"
        if given is None:
            matrix = np.eye(d)
        else:
            matrix = np.asarray(given, dtype=np.float64)
            if matrix.ndim == 0:
                matrix = float(matrix) * np.eye(d)
            elif matrix.ndim == 1:
                if matrix.size != d:
                    raise ValueError(f"{name} has {matrix.size} entries, mean has {d}")
                matrix = np.diag(matrix)
            if matrix.shape != (d, d):
                raise ValueError(f"{name} must have shape ({d}, {d}), got {matrix.shape}")
        if not np.all(np.isfinite(matrix)) or not np.allclose(matrix, matrix.T):
            raise ValueError(f"{name} must be finite and symmetric")
        try:
            np.linalg.cholesky(matrix)
        except np.linalg.LinAlgError:
            raise ValueError(f"{name} must be positive definite") from None
        matrix = 0.5 * (matrix + matrix.T)
        if precision is None:
            self.covariance = matrix
            self.precision = np.linalg.inv(matrix)
            self.precision = 0.5 * (self.precision + self.precision.T)
        else:
            self.precision = matrix
            self.covariance = np.linalg.inv(matrix)
        self.mean = mean
        super().__init__(d, GaussianData(np.ascontiguousarray(mean),
                                         np.ascontiguousarray(self.precision)))

    def __repr__(self):
        return f"Gaussian(dimension={self.dimension})"


# --- Gaussian with noisy gradients (a model of minibatch noise)

class NoisyGaussianData(NamedTuple):
    mean: np.ndarray
    precision: np.ndarray
    gradient_noise: np.ndarray   # (d,) standard deviation of the added gradient noise


def _noisy_gaussian_full_energy_gradient(data, theta, gradient):
    return _quadratic(data.mean, data.precision, theta, gradient)


def _noisy_gaussian_energy_gradient(data, theta, gradient, rng):
    energy = _quadratic(data.mean, data.precision, theta, gradient)
    for i in range(theta.size):
        gradient[i] += data.gradient_noise[i] * rng.standard_normal()
    return energy


def _noisy_gaussian_energy_gradient_variance(data, theta, gradient, variance, rng):
    energy = _quadratic(data.mean, data.precision, theta, gradient)
    for i in range(theta.size):
        gradient[i] += data.gradient_noise[i] * rng.standard_normal()
        variance[i] = data.gradient_noise[i] * data.gradient_noise[i]
    return energy


register(NoisyGaussianData, _noisy_gaussian_energy_gradient,
         full_energy_gradient=_noisy_gaussian_full_energy_gradient,
         energy_gradient_variance=_noisy_gaussian_energy_gradient_variance)
register_laplacian(NoisyGaussianData, _gaussian_laplacian)


class NoisyGaussian(Gaussian):
    """Gaussian U whose sampler-side gradient carries known Gaussian noise.

    ``energy_gradient`` returns the exact U(θ) and ∇U(θ) + s ⊙ η with
    η ~ N(0, I) drawn from the sampler's generator; ``energy_gradient_variance``
    reports s² per coordinate; ``full_energy_gradient`` is exact.  A
    controllable model of minibatch noise for testing stochastic-gradient
    thermostats (e.g. CCAdL, which should stay at kinetic temperature 1/β
    where BAOAB overheats).

    Parameters
    ----------
    mean, covariance, precision
        As for :class:`Gaussian`.
    gradient_noise : float or array_like (d,)
        s >= 0, the standard deviation of the noise added to each gradient
        component.

    Examples
    --------
    >>> import numpy as np
    >>> from thermo.potentials import NoisyGaussian
    >>> target = NoisyGaussian(np.zeros(2), gradient_noise=0.5)
    >>> target.gradient(np.ones(2))  # exact (full) gradient
    array([1., 1.])
    >>> energy, noisy, variance = target.energy_gradient_variance(
    ...     np.ones(2), rng=np.random.default_rng(0))
    >>> energy, variance
    (1.0, array([0.25, 0.25]))
    """

    stochastic = True

    def __init__(self, mean, covariance=None, precision=None, gradient_noise=1.0):
        super().__init__(mean, covariance=covariance, precision=precision)
        noise = np.broadcast_to(np.asarray(gradient_noise, dtype=np.float64),
                                (self.dimension,)).copy()
        if not np.all(np.isfinite(noise)) or np.any(noise < 0):
            raise ValueError("gradient_noise must be finite and >= 0")
        self.gradient_noise = noise
        self.kernel_data = NoisyGaussianData(self.kernel_data.mean,
                                             self.kernel_data.precision, noise)

    def __repr__(self):
        return f"NoisyGaussian(dimension={self.dimension})"


# --- double well

class DoubleWellData(NamedTuple):
    a: float                      # barrier height at b = 0
    b: float                      # tilt
    transverse_stiffness: float   # κ of the harmonic y direction (2-D blocks)
    block: int                    # 1: (x), 2: (x, y) per copy


def _double_well_energy_gradient(data, theta, gradient, rng):
    energy = 0.0
    block = data.block
    for k in range(theta.size // block):
        x = theta[k * block]
        s = x * x - 1.0
        energy += data.a * s * s + data.b * x
        gradient[k * block] = 4.0 * data.a * x * s + data.b
        if block == 2:
            y = theta[k * block + 1]
            energy += 0.5 * data.transverse_stiffness * y * y
            gradient[k * block + 1] = data.transverse_stiffness * y
    return energy


def _double_well_laplacian(data, theta):
    total = 0.0
    block = data.block
    for k in range(theta.size // block):
        x = theta[k * block]
        total += data.a * (12.0 * x * x - 4.0)
        if block == 2:
            total += data.transverse_stiffness
    return total


register(DoubleWellData, _double_well_energy_gradient)
register_laplacian(DoubleWellData, _double_well_laplacian)


class DoubleWell(Potential):
    """Double well U(x) = a (x² - 1)² + b x, optionally with a harmonic y.

    * ``transverse_stiffness=None`` (default): 1-D, θ = (x,).
    * ``transverse_stiffness=κ``: 2-D, θ = (x, y),
      U(x, y) = a (x² - 1)² + b x + (κ/2) y².

    ``copies=n`` sums n independent copies (θ = (x_1, [y_1,] x_2, ...)), which
    gives n independent chains in one sampler run.

    Parameters
    ----------
    a : float
        Barrier height (> 0); minima near x = ±1.
    b : float
        Linear tilt.
    transverse_stiffness : float, optional
        κ > 0 of the harmonic transverse direction.
    copies : int

    Examples
    --------
    >>> import numpy as np
    >>> from thermo.potentials import DoubleWell
    >>> DoubleWell(a=1.0).energy(np.array([0.0]))
    1.0
    >>> DoubleWell(transverse_stiffness=2.0, copies=3).dimension
    6
    """

    def __init__(self, a=1.0, b=0.0, transverse_stiffness=None, copies=1):
        a = float(a)
        b = float(b)
        if not (a > 0.0 and math.isfinite(a)):
            raise ValueError(f"a must be finite and > 0, got {a}")
        if not math.isfinite(b):
            raise ValueError(f"b must be finite, got {b}")
        copies = int(copies)
        if copies < 1:
            raise ValueError(f"copies must be >= 1, got {copies}")
        if transverse_stiffness is None:
            block, kappa = 1, 0.0
        else:
            kappa = float(transverse_stiffness)
            if not (kappa > 0.0 and math.isfinite(kappa)):
                raise ValueError(f"transverse_stiffness must be > 0, got {kappa}")
            block = 2
        self.a, self.b, self.transverse_stiffness, self.copies = a, b, transverse_stiffness, copies
        super().__init__(block * copies, DoubleWellData(a, b, kappa, block))

    def __repr__(self):
        return (f"DoubleWell(a={self.a}, b={self.b}, "
                f"transverse_stiffness={self.transverse_stiffness}, copies={self.copies})")


# --- Müller–Brown

class MuellerBrownData(NamedTuple):
    A: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    x0: np.ndarray
    y0: np.ndarray
    scale: float


def _mueller_brown_energy_gradient(data, theta, gradient, rng):
    x = theta[0]
    y = theta[1]
    energy = 0.0
    gx = 0.0
    gy = 0.0
    for k in range(4):
        dx = x - data.x0[k]
        dy = y - data.y0[k]
        term = data.A[k] * math.exp(data.a[k] * dx * dx + data.b[k] * dx * dy
                                    + data.c[k] * dy * dy)
        energy += term
        gx += term * (2.0 * data.a[k] * dx + data.b[k] * dy)
        gy += term * (data.b[k] * dx + 2.0 * data.c[k] * dy)
    gradient[0] = gx / data.scale
    gradient[1] = gy / data.scale
    return energy / data.scale


def _mueller_brown_laplacian(data, theta):
    x = theta[0]
    y = theta[1]
    total = 0.0
    for k in range(4):
        dx = x - data.x0[k]
        dy = y - data.y0[k]
        term = data.A[k] * math.exp(data.a[k] * dx * dx + data.b[k] * dx * dy
                                    + data.c[k] * dy * dy)
        fx = 2.0 * data.a[k] * dx + data.b[k] * dy
        fy = data.b[k] * dx + 2.0 * data.c[k] * dy
        total += term * (fx * fx + 2.0 * data.a[k] + fy * fy + 2.0 * data.c[k])
    return total / data.scale


register(MuellerBrownData, _mueller_brown_energy_gradient)
register_laplacian(MuellerBrownData, _mueller_brown_laplacian)


class MuellerBrown(Potential):
    """Müller–Brown potential (Müller & Brown 1979), standard parameters.

    U(x, y) = (1/scale) Σ_k A_k exp(a_k (x - x0_k)² + b_k (x - x0_k)(y - y0_k)
    + c_k (y - y0_k)²) with A = (-200, -100, -170, 15), a = (-1, -1, -6.5, 0.7),
    b = (0, 0, 11, 0.6), c = (-10, -10, -6.5, 0.7), x0 = (1, 0, -0.5, -1),
    y0 = (0, 0.5, 1.5, 1).  Minima near (-0.558, 1.442), (0.623, 0.028),
    (-0.050, 0.467).

    Parameters
    ----------
    scale : float
        Divides all energies (> 0); e.g. 20 brings barriers to a few units.

    Examples
    --------
    >>> from thermo.potentials import MuellerBrown
    >>> round(MuellerBrown().energy(MuellerBrown.MINIMA[0]), 2)
    -146.7
    """

    MINIMA = np.array([[-0.558224, 1.441726], [0.623499, 0.028038], [-0.050011, 0.466694]])

    def __init__(self, scale=1.0):
        scale = float(scale)
        if not (scale > 0.0 and math.isfinite(scale)):
            raise ValueError(f"scale must be finite and > 0, got {scale}")
        self.scale = scale
        super().__init__(2, MuellerBrownData(
            np.array([-200.0, -100.0, -170.0, 15.0]), np.array([-1.0, -1.0, -6.5, 0.7]),
            np.array([0.0, 0.0, 11.0, 0.6]), np.array([-10.0, -10.0, -6.5, 0.7]),
            np.array([1.0, 0.0, -0.5, -1.0]), np.array([0.0, 0.5, 1.5, 1.0]), scale))

    def __repr__(self):
        return f"MuellerBrown(scale={self.scale})"
