"""Warnings about dubious settings, issued before a run starts.

The main check estimates the largest curvature λ_max of U at the start
point (power iteration on finite differences of the exact gradient) and
compares the step size with the stability limit of the scheme:

* Langevin splitting schemes (BAOAB, OBABO, GLA, CCAdL, HMC's leapfrog):
  the Verlet part is stable for h < 2/√λ_max (unit masses);
* first-order schemes (SGLD, overdamped Langevin, gradient descent):
  h < 2/λ_max.

The estimate is local (at θ₀) and for one minibatch-free gradient, so the
message is a warning, never an error.
"""
from __future__ import annotations

import math

__all__ = ["largest_curvature", "step_size_limit", "check_step_size"]

FIRST_ORDER = ("sgld", "overdamped", "gd", "sgd", "bb")


def largest_curvature(potential, theta, iterations=8, seed=0):
    """Estimate the largest Hessian eigenvalue of U at θ.

    Parameters
    ----------
    potential : thermo.potentials.Potential
    theta : ndarray
    iterations : int
        Power iterations (each one exact gradient evaluation).
    seed : int
        Seed of the random start vector.

    Returns
    -------
    float
        λ_max estimate (NaN when it cannot be computed).
    """
    import numpy as np

    theta = np.asarray(theta, dtype=np.float64)
    rng = np.random.default_rng(seed)
    try:
        _, g0 = potential.energy_and_gradient(theta.astype(potential.dtype), full=True)
    except (ValueError, TypeError, FloatingPointError):
        return math.nan
    g0 = g0.astype(np.float64)
    v = rng.standard_normal(theta.shape[0])
    v /= np.linalg.norm(v)
    scale = max(1.0, float(np.linalg.norm(theta)))
    epsilon = 1e-4 * scale if potential.dtype == np.float64 else 1e-2 * scale
    estimate = math.nan
    for _ in range(int(iterations)):
        shifted = (theta + epsilon * v).astype(potential.dtype)
        _, g1 = potential.energy_and_gradient(shifted, full=True)
        hv = (g1.astype(np.float64) - g0) / epsilon
        norm = float(np.linalg.norm(hv))
        if not math.isfinite(norm) or norm == 0.0:
            break
        estimate = float(v @ hv)
        v = hv / norm
    return abs(estimate) if math.isfinite(estimate) else math.nan


def step_size_limit(method, curvature):
    """Stability limit of the step size for a curvature λ.

    Parameters
    ----------
    method : str
    curvature : float

    Returns
    -------
    float
        ``inf`` when the curvature is not positive.
    """
    if not curvature > 0:
        return math.inf
    if method in FIRST_ORDER:
        return 2.0 / curvature
    return 2.0 / math.sqrt(curvature)


def check_step_size(context, potential, theta, method, step_size, name="--step-size"):
    """Warn when the step size exceeds ~the stability limit at θ.

    Parameters
    ----------
    context : thermo.cli.common.Context
    potential : thermo.potentials.Potential
    theta : ndarray
    method : str
    step_size : float
    name : str
        Flag named in the message.

    Returns
    -------
    float
        The curvature estimate.
    """
    curvature = largest_curvature(potential, theta)
    limit = step_size_limit(method, curvature)
    if math.isfinite(limit) and step_size > 0.9 * limit:
        context.warn(f"{name} {step_size:g} is at or above the stability limit {limit:.3g} "
                     f"of {method} for the curvature λ_max ≈ {curvature:.3g} estimated at "
                     "the start point; expect divergence")
    return curvature
