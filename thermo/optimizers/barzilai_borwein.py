"""Barzilai–Borwein gradient descent with a safeguard (full batch).

Update equations (Barzilai & Borwein 1988; globalised as in Raydan 1997,
"The Barzilai and Borwein gradient method for the large scale unconstrained
minimization problem")::

    g_k = ∇U(θ_k)                                   (exact gradient)
    θ_{k+1} = θ_k - α g_k
    s_k = θ_{k+1} - θ_k,   y_k = g_{k+1} - g_k
    α_{k+1} = clip(s_kᵀ s_k / s_kᵀ y_k, α_min, α_max)      (α_max if s_kᵀ y_k <= 0)

The trial step ``α = α_k`` is accepted when it satisfies the *non-monotone*
Armijo condition of Grippo, Lampariello and Lucidi (1986)::

    U(θ_k - α g_k) <= max_{0 <= j < M} U(θ_{k-j}) - c α |g_k|²

(``M`` the memory, default 10, ``c = 1e-4``); otherwise α is halved until it
does (non-finite trial energies count as failures).  BB steps are usually
accepted at once, so the method keeps its fast, non-monotone convergence, while
the fallback makes it converge on non-quadratic potentials.  When 60 halvings
find no admissible step (typically at the limit of floating point precision)
the run stops and reports it (``run.converged`` False, ``run.message``).

The first step uses ``α_0 = learning_rate``.  U is the *total* energy, the
gradient always the exact one (``full_energy_gradient``): BB is not meant for
minibatch gradients.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)
from thermo.optimizers.gd import (CONVERGED, DIVERGED, RUNNING, STALLED, _norm,
                                  _record)
from thermo.potentials.base import full_energy_gradient

__all__ = ["barzilai_borwein_kernel"]

ARMIJO = 1e-4
BACKTRACK = 0.5
MAX_BACKTRACKS = 60


@njit(cache=True)
def barzilai_borwein_kernel(data, theta, gradient, energy, step_size, step_min,
                            step_max, history, history_count, history_position,
                            n_steps, step0, record_every, tolerance,
                            record_trajectory, rec_step, rec_energy,
                            rec_gradient_norm, rec_step_size, rec_theta,
                            n_records, trial, trial_gradient):
    """Run up to ``n_steps`` safeguarded BB steps in place.

    Parameters
    ----------
    data : NamedTuple
        Kernel data of the potential.
    theta, gradient : ndarray
        θ_k and ∇U(θ_k); updated in place.
    energy : float
        U(θ_k).
    step_size : float
        α_k, the next trial step.
    step_min, step_max : float
        Clipping range of the BB step.
    history : ndarray
        Ring buffer (length M) of the last accepted energies;
        ``history_count`` entries valid, next write at ``history_position``.
    n_steps, step0, record_every, tolerance, record_trajectory :
        As in :func:`thermo.optimizers.gd.heavy_ball_kernel`.
    rec_* : ndarray
        Record buffers filled from ``n_records``; ``rec_step_size`` holds the
        accepted α of the step.
    trial, trial_gradient : ndarray
        Work arrays of θ's shape.

    Returns
    -------
    status, steps_done, n_records, energy, step_size, history_count,
    history_position
    """
    d = theta.size
    memory = history.size
    if tolerance >= 0.0 and _norm(gradient) <= tolerance:
        return (CONVERGED, 0, n_records, energy, step_size, history_count,
                history_position)
    for i in range(n_steps):
        gradient_sq = 0.0
        for j in range(d):
            gradient_sq += float(gradient[j]) * float(gradient[j])
        reference = history[0]
        for j in range(1, history_count):
            if history[j] > reference:
                reference = history[j]
        alpha = step_size
        accepted = False
        trial_energy = np.nan
        for _ in range(MAX_BACKTRACKS):
            for j in range(d):
                trial[j] = theta[j] - alpha * gradient[j]
            trial_energy = full_energy_gradient(data, trial, trial_gradient)
            if (np.isfinite(trial_energy)
                    and trial_energy <= reference - ARMIJO * alpha * gradient_sq):
                accepted = True
                break
            alpha *= BACKTRACK
        if not accepted:
            return (STALLED, i, n_records, energy, step_size, history_count,
                    history_position)
        for j in range(d):
            if not np.isfinite(trial_gradient[j]):
                return (DIVERGED, i, n_records, energy, step_size, history_count,
                        history_position)
        ss = 0.0
        sy = 0.0
        for j in range(d):
            s = float(trial[j]) - float(theta[j])
            y = float(trial_gradient[j]) - float(gradient[j])
            ss += s * s
            sy += s * y
        if sy > 0.0:
            step_size = ss / sy
        else:
            step_size = step_max
        step_size = min(max(step_size, step_min), step_max)
        theta[:] = trial
        gradient[:] = trial_gradient
        energy = trial_energy
        history[history_position] = energy
        history_position = (history_position + 1) % memory
        history_count = min(history_count + 1, memory)
        step = step0 + i + 1
        gradient_norm = _norm(gradient)
        converged = tolerance >= 0.0 and gradient_norm <= tolerance
        if step % record_every == 0 or converged:
            rec_step_size[n_records] = alpha
            _record(n_records, step, energy, gradient_norm, theta,
                    record_trajectory, rec_step, rec_energy, rec_gradient_norm,
                    rec_theta)
            n_records += 1
        if converged:
            return (CONVERGED, i + 1, n_records, energy, step_size, history_count,
                    history_position)
    return (RUNNING, n_steps, n_records, energy, step_size, history_count,
            history_position)
