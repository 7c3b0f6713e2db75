"""Gradient descent kernels: full-batch GD and minibatch SGD with heavy-ball momentum.

Update equations (``h`` the learning rate, ``μ`` the momentum coefficient,
``g_k`` the gradient used at step k)::

    v_{k+1} = μ v_k - h g_k
    θ_{k+1} = θ_k + v_{k+1}

equivalently ``θ_{k+1} = θ_k - h g_k + μ (θ_k - θ_{k-1})`` (Polyak's heavy
ball).  ``μ = 0`` is plain (stochastic) gradient descent.  For ``"gd"`` the
gradient is exact, ``g_k = ∇U(θ_k)`` (``full_energy_gradient``); for
``"sgd"`` it is the potential's minibatch estimate (``energy_gradient``, the
indices drawn from the run's ``numpy.random.Generator``).  U is the *total*
energy (sum over the data plus prior), so ``h`` scales like 1/N for a network
posterior over N points.

On a quadratic ``U = ½ θᵀAθ`` plain GD contracts each eigendirection with
eigenvalue λ by ``|1 - hλ|`` per step; the error decays like
``max_λ |1 - hλ|^k`` (rate ``(κ-1)/(κ+1)`` at the optimal ``h = 2/(λ_min+λ_max)``).

The kernel runs many steps per call; :func:`thermo.optimize` orchestrates.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)
from thermo.potentials.base import energy_gradient, full_energy_gradient
from thermo.samplers._solvers import pair_finite

__all__ = ["heavy_ball_kernel"]

# Status codes shared by the optimizer kernels.
RUNNING = 0        # all requested steps done
CONVERGED = 1      # |∇U| <= tolerance
DIVERGED = 2       # non-finite θ, U or ∇U
STALLED = 3        # (BB) line search found no admissible step


@njit(cache=True)
def _norm(x):
    total = 0.0
    for i in range(x.size):
        total += float(x[i]) * float(x[i])
    return np.sqrt(total)


@njit(cache=True)
def _record(index, step, energy, gradient_norm, theta, record_trajectory,
            rec_step, rec_energy, rec_gradient_norm, rec_theta):
    rec_step[index] = step
    rec_energy[index] = energy
    rec_gradient_norm[index] = gradient_norm
    if record_trajectory:
        rec_theta[index, :] = theta


@njit(cache=True)
def heavy_ball_kernel(data, theta, velocity, gradient, energy, full, learning_rate,
                      momentum, n_steps, step0, record_every, tolerance, rng,
                      record_trajectory, rec_step, rec_energy, rec_gradient_norm,
                      rec_theta, n_records, last_good_theta, last_good_velocity,
                      last_good_gradient):
    """Run up to ``n_steps`` heavy-ball steps in place.

    Parameters
    ----------
    data : NamedTuple
        Kernel data of the potential.
    theta, velocity, gradient : ndarray
        Current θ_k, v_k and g_k (the gradient *at* θ_k, already computed);
        updated in place.
    energy : float
        U at θ_k (minibatch estimate for SGD).
    full : bool
        Exact gradients (GD) when True, minibatch estimates (SGD) otherwise.
    learning_rate, momentum : float
        h and μ.
    n_steps, step0 : int
        Number of steps to do; total steps done before this call.
    record_every : int
        Record after every step whose total count is a multiple of it.
    tolerance : float
        Stop as soon as |g| <= tolerance (checked on entry and after every
        step; the converged point is always recorded); negative disables.
    rng : numpy.random.Generator
        Minibatch draws.
    record_trajectory : bool
    rec_step, rec_energy, rec_gradient_norm, rec_theta : ndarray
        Record buffers, filled from index ``n_records``.
    last_good_theta, last_good_velocity, last_good_gradient : ndarray
        On divergence hold θ, v, g before the failing step.

    Returns
    -------
    status : int
        RUNNING (all steps done), CONVERGED or DIVERGED.
    steps_done : int
        Steps completed in this call (the failing step excluded).
    n_records : int
    energy : float
        U at the final θ (at the last good θ on divergence).
    """
    d = theta.size
    if tolerance >= 0.0 and _norm(gradient) <= tolerance:
        return CONVERGED, 0, n_records, energy
    for i in range(n_steps):
        last_good_theta[:] = theta
        last_good_velocity[:] = velocity
        last_good_gradient[:] = gradient
        last_good_energy = energy
        for j in range(d):
            velocity[j] = momentum * velocity[j] - learning_rate * gradient[j]
            theta[j] = theta[j] + velocity[j]
        if full:
            energy = full_energy_gradient(data, theta, gradient)
        else:
            energy = energy_gradient(data, theta, gradient, rng)
        if not (np.isfinite(energy) and pair_finite(theta, gradient)):
            return DIVERGED, i, n_records, last_good_energy
        step = step0 + i + 1
        gradient_norm = _norm(gradient)
        converged = tolerance >= 0.0 and gradient_norm <= tolerance
        if step % record_every == 0 or converged:
            _record(n_records, step, energy, gradient_norm, theta,
                    record_trajectory, rec_step, rec_energy, rec_gradient_norm,
                    rec_theta)
            n_records += 1
        if converged:
            return CONVERGED, i + 1, n_records, energy
    return RUNNING, n_steps, n_records, energy
