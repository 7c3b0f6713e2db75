"""Hybrid (Hamiltonian) Monte Carlo, registered as ``"hmc"``.

Target ``π(θ) ∝ exp(-β (U(θ) + V(θ)))`` (U the total energy, V an optional
bias), extended with momenta p at the same β:
``π(θ, p) ∝ exp(-β H)``, ``H = U + V + K``, ``K = |p|²/2`` (unit masses).

One HMC *step* (the unit of ``n_steps``, ``record_every`` and ``state.step``)
is one full transition from θ_n:

1. Momentum refresh: ``p_0 = ξ / sqrt(β)``, ξ ~ N(0, I) (d draws).
2. Trajectory length: ``L = n_leapfrog`` (fixed) or ``L`` uniform on the
   integers ``[L_min, L_max]`` when ``n_leapfrog=(L_min, L_max)`` (one draw;
   randomising L avoids periodic orbits).
3. L steps of the integrator with step size h from (θ_0, p_0) = (θ_n, p_0),
   ``F = ∇(U + V)``:

   * ``"leapfrog"`` (velocity Verlet, B A B)::

         p ← p - (h/2) F(θ);   θ ← θ + h p;   p ← p - (h/2) F(θ)

   * ``"symplectic_euler"`` (first order).  Symplectic Euler is not
     time-reversible, so each trajectory uses, with probability ½ each (one
     uniform draw), the kick–drift map Φ = A∘B (``p ← p - h F(θ)`` then
     ``θ ← θ + h p``) or its adjoint Φ* = B∘A (drift then kick).  Since
     ``F Φ F = (Φ*)⁻¹`` with F the momentum flip, this random choice makes the
     proposal reversible and volume preserving, so the Metropolis step below
     is exact for it too.

4. Metropolis: with ``ΔH = H(θ_L, p_L) - H(θ_n, p_0)`` accept θ_{n+1} = θ_L
   with probability ``min(1, exp(-β ΔH))`` (one uniform draw); otherwise
   θ_{n+1} = θ_n.  A trajectory that reaches a non-finite energy or gradient
   is cut short and rejected (so HMC never raises ``DivergenceError``; a
   too-large h shows as acceptance → 0).

Energies and gradients
----------------------
The accept step uses the *exact* energies (``full_energy_gradient``); U and
∇U of the current point are cached in the state, so a transition costs L
gradient evaluations.  The bias V and ∇V are evaluated afresh at the current
point at the start of every transition, so H before and after the trajectory
use the same bias even when ``bias_update`` (called after every transition)
changed it: each transition is exact for the bias of that
moment.  With ``gradient="full"`` (default) the trajectory uses exact
gradients too and the chain is exact: π is invariant for any h.  With
``gradient="minibatch"`` the trajectory uses the potential's minibatch
gradients (``energy_gradient``, drawing from the run's generator) and the
endpoint energy is computed exactly (one extra full evaluation per
transition); the proposal is then no longer reversible and volume
preserving, so the chain is only approximate (bias shrinking with the
gradient noise).  For deterministic potentials both are identical.

Observables (per record, after the record's transition)
-------------------------------------------------------
``energy`` exact U(θ_{n+1}); ``bias_energy`` V(θ_{n+1}); ``kinetic_energy``,
``kinetic_temperature``: K and |p_0|²/d of the *refreshed* momentum (the
refresh is the O step of HMC, γ = ∞); ``noise_norm`` |p_0|;
``gradient_norm``, ``virial``, ``configurational_temperature`` of
∇(U+V) at θ_{n+1}, with the V the transition used (before its
``bias_update``);
``acceptance``: fraction of transitions accepted since the previous record
(``record_every`` transitions).  The state keeps the total in
``n_accepted``.  ``friction`` is ignored.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)
from thermo.bias.base import bias_energy_gradient, bias_update
from thermo.potentials.base import energy_gradient, full_energy_gradient
from thermo.samplers._framework import (ChunkResult, register_sampler,
                                        reject_unknown_options)
from thermo.samplers._solvers import record_observables
from thermo.samplers.noise import standard_normals

__all__ = ["HMCState", "init", "validate", "run_chunk", "hmc_kernel"]

LEAPFROG = 0
SYMPLECTIC_EULER = 1
INTEGRATORS = {"leapfrog": LEAPFROG, "symplectic_euler": SYMPLECTIC_EULER}

OBSERVABLES = ("step", "energy", "bias_energy", "kinetic_energy", "kinetic_temperature",
               "configurational_temperature", "virial", "gradient_norm", "noise_norm",
               "acceptance")


class HMCState(NamedTuple):
    """State of HMC after ``step`` transitions.

    theta : θ_n.
    gradient : exact ∇U(θ_n) (potential only; the bias part is evaluated
        afresh at the start of every transition).
    energy : exact U(θ_n).
    bias_energy : V(θ_n) as used by the last transition.
    step : total completed transitions.
    n_accepted : total accepted transitions.
    window_accepted : accepted transitions since the last record.
    rng_state, minibatch_state : filled in by the driver.
    """
    theta: np.ndarray
    gradient: np.ndarray
    energy: float
    bias_energy: float
    step: int
    n_accepted: int = 0
    window_accepted: int = 0
    rng_state: object = None
    minibatch_state: object = None


@njit(cache=True)
def _force(potential_data, bias_data, theta, potential_gradient, total_gradient, exact,
           rng):
    """U and V at θ: ∇U into ``potential_gradient``, ∇(U+V) into ``total_gradient``.

    ∇U is exact (``full_energy_gradient``) when ``exact``, else the
    potential's minibatch estimate (``energy_gradient``, drawing from rng).
    """
    if exact:
        energy = full_energy_gradient(potential_data, theta, potential_gradient)
    else:
        energy = energy_gradient(potential_data, theta, potential_gradient, rng)
    total_gradient[:] = potential_gradient
    bias_energy = bias_energy_gradient(bias_data, theta, total_gradient)
    return energy, bias_energy


@njit(cache=True)
def _finite(array):
    for i in range(array.size):
        if not np.isfinite(array[i]):
            return False
    return True


@njit(cache=True)
def hmc_kernel(potential_data, bias_data, theta, gradient, energy, bias_energy,
               first_step, n_steps, step_size, beta, l_min, l_max, integrator,
               minibatch, rng, records, trajectory, record_every, record_accuracy,
               record_full_energy, n_accepted, window_accepted):
    """Run ``n_steps`` HMC transitions (see the module docstring) from ``first_step``.

    Parameters
    ----------
    potential_data, bias_data : NamedTuple
        Kernel data of U and V.
    theta, gradient : ndarray
        θ_n and the exact ∇U(θ_n); not modified (results are returned).
    energy, bias_energy : float
        Exact U(θ_n); V(θ_n) of the last transition (recomputed here).
    first_step, n_steps : int
    step_size, beta : float
        h and β.
    l_min, l_max : int
        Range of the number of integrator steps per transition (equal: fixed).
    integrator : int
        LEAPFROG or SYMPLECTIC_EULER.
    minibatch : bool
        Minibatch gradients inside the trajectory (approximate HMC).
    rng : numpy.random.Generator
    records, trajectory, record_every, record_accuracy, record_full_energy :
        Recording buffers and flags (see :mod:`thermo.samplers._solvers`).
    n_accepted, window_accepted : int
        Running acceptance counters.

    Returns
    -------
    (theta, gradient, energy, bias_energy, steps_done, rows_written,
    n_accepted, window_accepted)
    """
    d = theta.size
    h = step_size
    half = 0.5 * h
    momentum_scale = 0.0 if math.isinf(beta) else 1.0 / math.sqrt(beta)
    current_theta = theta.copy()
    current_gradient = gradient.copy()           # ∇U(θ_n), exact
    current_total = np.empty_like(gradient)      # ∇(U+V)(θ_n), current bias
    proposal_theta = np.empty_like(theta)
    proposal_gradient = np.empty_like(gradient)
    proposal_total = np.empty_like(gradient)
    momentum = np.empty_like(theta)
    xi = np.empty(d)
    scratch = np.empty(d if record_full_energy else 0, dtype=theta.dtype)
    rows = 0
    for n in range(n_steps):
        # 0. the bias (possibly changed by bias_update) at the current point
        current_total[:] = current_gradient
        bias_energy = bias_energy_gradient(bias_data, current_theta, current_total)
        # 1. momentum refresh p_0 = ξ / sqrt(β)
        kinetic0 = 0.0
        standard_normals(rng, xi)
        for i in range(d):
            p = momentum_scale * xi[i]
            momentum[i] = p
            kinetic0 += p * p
        momentum_squared = kinetic0
        kinetic0 *= 0.5
        # 2. trajectory length
        n_leapfrog = l_min
        if l_max > l_min:
            n_leapfrog = rng.integers(l_min, l_max + 1)
        adjoint = False
        if integrator == SYMPLECTIC_EULER:
            adjoint = rng.random() < 0.5
        # 3. integrate from (θ_n, p_0)
        proposal_theta[:] = current_theta
        proposal_total[:] = current_total
        new_energy = energy
        new_bias_energy = bias_energy
        finite = True
        for _ in range(n_leapfrog):
            if integrator == LEAPFROG:
                for i in range(d):
                    momentum[i] -= half * proposal_total[i]
                    proposal_theta[i] += h * momentum[i]
                new_energy, new_bias_energy = _force(potential_data, bias_data,
                                                     proposal_theta, proposal_gradient,
                                                     proposal_total, not minibatch, rng)
                for i in range(d):
                    momentum[i] -= half * proposal_total[i]
            elif not adjoint:          # Φ = A∘B: kick then drift
                for i in range(d):
                    momentum[i] -= h * proposal_total[i]
                    proposal_theta[i] += h * momentum[i]
                new_energy, new_bias_energy = _force(potential_data, bias_data,
                                                     proposal_theta, proposal_gradient,
                                                     proposal_total, not minibatch, rng)
            else:                      # Φ* = B∘A: drift then kick
                for i in range(d):
                    proposal_theta[i] += h * momentum[i]
                new_energy, new_bias_energy = _force(potential_data, bias_data,
                                                     proposal_theta, proposal_gradient,
                                                     proposal_total, not minibatch, rng)
                for i in range(d):
                    momentum[i] -= h * proposal_total[i]
            if not (np.isfinite(new_energy) and np.isfinite(new_bias_energy)
                    and _finite(proposal_total) and _finite(momentum)):
                finite = False
                break
        if finite and minibatch:
            # exact energy (and ∇U, cached for the next transition) at θ_L
            new_energy, new_bias_energy = _force(potential_data, bias_data,
                                                 proposal_theta, proposal_gradient,
                                                 proposal_total, True, rng)
            finite = (np.isfinite(new_energy) and np.isfinite(new_bias_energy)
                      and _finite(proposal_total))
        # 4. Metropolis on the exact H = U + V + |p|²/2
        accept = False
        u = rng.random()
        if finite and _finite(proposal_theta):
            kinetic = 0.0
            for i in range(d):
                kinetic += momentum[i] * momentum[i]
            kinetic *= 0.5
            delta = (new_energy + new_bias_energy + kinetic) - (energy + bias_energy
                                                                  + kinetic0)
            if delta <= 0.0:
                accept = True
            elif np.isfinite(delta):
                accept = u < math.exp(-beta * delta)
        if accept:
            current_theta, proposal_theta = proposal_theta, current_theta
            current_gradient, proposal_gradient = proposal_gradient, current_gradient
            current_total, proposal_total = proposal_total, current_total
            energy = new_energy
            bias_energy = new_bias_energy
            n_accepted += 1
            window_accepted += 1
        step = first_step + n + 1
        bias_update(bias_data, current_theta, step)
        if step % record_every == 0:
            record_observables(records, trajectory, rows, potential_data, current_theta,
                               current_total, step, energy, bias_energy,
                               momentum_squared, momentum_squared, np.nan,
                               window_accepted / record_every, record_accuracy,
                               record_full_energy, scratch)
            rows += 1
            window_accepted = 0
    return (current_theta, current_gradient, energy, bias_energy, n_steps, rows,
            n_accepted, window_accepted)


def init(potential, theta0, rng, bias, parameters):
    """State at θ0: exact U, ∇U and V (no random draws)."""
    gradient = np.empty_like(theta0)
    total = np.empty_like(theta0)
    energy, bias_energy = _force(potential.kernel_data, bias.kernel_data, theta0,
                                 gradient, total, True, rng)
    return HMCState(theta0, gradient, float(energy), float(bias_energy), 0)


def validate(parameters, options, potential):
    """Check the HMC options ``n_leapfrog``, ``integrator``, ``gradient``.

    ``n_leapfrog`` : int >= 1 or a pair (L_min, L_max), 1 <= L_min <= L_max
    (default 10); ``integrator`` : "leapfrog" (default) or
    "symplectic_euler"; ``gradient`` : "full" (default, exact HMC) or
    "minibatch" (approximate, see the module docstring).
    """
    options = dict(options)
    n_leapfrog = options.pop("n_leapfrog", 10)
    integrator = options.pop("integrator", "leapfrog")
    gradient = options.pop("gradient", "full")
    reject_unknown_options("hmc", options, ("n_leapfrog", "integrator", "gradient"))
    if isinstance(n_leapfrog, (tuple, list)):
        if len(n_leapfrog) != 2:
            raise ValueError(f"n_leapfrog range must be (L_min, L_max), got {n_leapfrog!r}")
        l_min, l_max = n_leapfrog
    else:
        l_min = l_max = n_leapfrog
    for name, value in (("n_leapfrog", l_min), ("n_leapfrog", l_max)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer or a pair of integers, "
                            f"got {n_leapfrog!r}")
    l_min, l_max = int(l_min), int(l_max)
    if not 1 <= l_min <= l_max:
        raise ValueError(f"n_leapfrog must satisfy 1 <= L_min <= L_max, got {n_leapfrog!r}")
    if integrator not in INTEGRATORS:
        raise ValueError(f"integrator must be one of {sorted(INTEGRATORS)}, "
                         f"got {integrator!r}")
    if gradient not in ("full", "minibatch"):
        raise ValueError(f"gradient must be 'full' or 'minibatch', got {gradient!r}")
    result = dict(parameters)
    result.pop("friction", None)
    result.update(n_leapfrog=(l_min, l_max), integrator=integrator, gradient=gradient)
    return result


def run_chunk(potential, bias, state, rng, n_steps, parameters, recording):
    """Advance ``state`` by ``n_steps`` HMC transitions (driver interface)."""
    l_min, l_max = parameters["n_leapfrog"]
    (theta, gradient, energy, bias_energy, done, rows, n_accepted,
     window_accepted) = hmc_kernel(
        potential.kernel_data, bias.kernel_data, state.theta, state.gradient,
        float(state.energy), float(state.bias_energy), int(state.step), int(n_steps),
        parameters["step_size"], parameters["beta"], l_min, l_max,
        INTEGRATORS[parameters["integrator"]], parameters["gradient"] == "minibatch",
        rng, recording.records, recording.trajectory, recording.record_every,
        recording.record_accuracy, recording.record_full_energy, int(state.n_accepted),
        int(state.window_accepted))
    new_state = state._replace(theta=theta, gradient=gradient, energy=float(energy),
                               bias_energy=float(bias_energy), step=state.step + int(done),
                               n_accepted=int(n_accepted),
                               window_accepted=int(window_accepted))
    return ChunkResult(new_state, int(done), int(rows), False)


register_sampler("hmc", init=init, validate=validate, run_chunk=run_chunk,
                 state_class=HMCState, observables=OBSERVABLES,
                 description="Hybrid Monte Carlo (leapfrog or symplectic Euler, "
                             "exact Metropolis step)")
