"""BAOAB Langevin integrator (Leimkuhler & Matthews 2013), one gradient per step.

Underdamped Langevin dynamics for π(θ) ∝ exp(-β (U + V)), unit masses:

    dθ = p dt,   dp = -∇(U+V)(θ) dt - γ p dt + sqrt(2γ/β) dW.

One step of size h (U the total energy, ∇U the force the sampler sees, i.e.
the minibatch estimate for stochastic potentials, plus ∇V of the bias):

    B:  p'   = p_n - (h/2) ∇U(θ_n)
    A:  θ'   = θ_n + (h/2) p'
    O:  p''  = c p' + sqrt((1 - c²)/β) ξ_n,    c = exp(-γ h),  ξ_n ~ N(0, I)
    A:  θ_{n+1} = θ' + (h/2) p''
    B:  p_{n+1} = p'' - (h/2) ∇U(θ_{n+1})

∇U(θ_{n+1}) is cached in the state and reused by the next step's first B, so
every step costs exactly one ``energy_gradient`` call.  For Gaussian targets
the θ-marginal of the invariant measure is exact for every stable h; for
smooth U configurational averages have O(h²) bias.

Kinetic energy K = |p''|²/2 and kinetic temperature |p''|²/d are measured
with p'' (right after the O step); ``noise_norm`` is |sqrt((1-c²)/β) ξ_n|.
The state's ``momentum`` is p_{n+1} (after the final B).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)
from thermo._sums import sum_of_squares
from thermo.bias.base import bias_update
from thermo.samplers._framework import (ChunkResult, register_sampler,
                                        reject_unknown_options, require_positive_friction)
from thermo.samplers._solvers import (evaluate_force, initial_force, initial_momentum,
                                      ornstein_uhlenbeck_coefficients, pair_finite,
                                      record_bias_weight_log, record_observables)
from thermo.samplers.noise import standard_normals

__all__ = ["BAOABState", "init", "validate", "run_chunk"]


class BAOABState(NamedTuple):
    """State of BAOAB after step ``step``.

    theta, momentum : θ_n, p_n (p_n after the final B half step).
    gradient : ∇(U+V)(θ_n) as used (cached force).
    energy, bias_energy : U(θ_n) (minibatch estimate as used), V(θ_n).
    step : total completed steps.
    rng_state : ``bit_generator.state`` of the run's Generator.
    minibatch_state : the potential's minibatch state, if it has one.
    """
    theta: np.ndarray
    momentum: np.ndarray
    gradient: np.ndarray
    energy: float
    bias_energy: float
    step: int
    rng_state: object = None
    minibatch_state: object = None


OBSERVABLES = ("step", "energy", "bias_energy", "kinetic_energy", "kinetic_temperature",
               "configurational_temperature", "virial", "gradient_norm", "noise_norm", "bias_weight_log")


def init(potential, theta0, rng, bias, parameters):
    """State at θ0: momentum ~ N(0, I/β) from ``rng``, then one force evaluation."""
    momentum = initial_momentum(rng, theta0.size, parameters["beta"], theta0.dtype)
    energy, bias_energy, gradient = initial_force(potential, bias, theta0, rng)
    return BAOABState(theta0, momentum, gradient, energy, bias_energy, 0)


def validate(parameters, options, potential):
    """BAOAB needs γ > 0 and has no options of its own."""
    require_positive_friction("baoab", parameters)
    reject_unknown_options("baoab", options, ())
    return dict(parameters)


@njit(cache=True)
def baoab_kernel(potential_data, bias_data, theta, momentum, gradient, energy, bias_energy,
                 first_step, n_steps, step_size, beta, friction, rng, records, trajectory,
                 record_every, record_accuracy, record_full_energy):
    """Run ``n_steps`` BAOAB steps (see module docstring) from step ``first_step``.

    Works on double buffers: a step is written into the second set of arrays
    and swapped in only when θ, U, V and p are finite, so on divergence the
    returned arrays are those of the last good step.

    Returns (theta, momentum, gradient, energy, bias_energy, steps_done,
    rows_written, diverged).
    """
    d = theta.size
    half = 0.5 * step_size
    c, sigma = ornstein_uhlenbeck_coefficients(friction, step_size, beta)
    theta_new = np.empty_like(theta)
    momentum_new = np.empty_like(momentum)
    gradient_new = np.empty_like(gradient)
    scratch = np.empty(d if record_full_energy else 0, dtype=theta.dtype)
    xi = np.empty(d)
    rows = 0
    done = 0
    diverged = False
    for n in range(n_steps):
        standard_normals(rng, xi)
        for i in range(d):
            p = momentum[i] - half * gradient[i]          # B
            q = theta[i] + half * p                       # A
            p = c * p + sigma * xi[i]                     # O
            theta_new[i] = q + half * p                   # A
            momentum_new[i] = p
        # |p''|² and the noise norm only for a step that is recorded (serial
        # sums in the update loop cost ~15 % of an MNIST perceptron step)
        momentum_squared = np.nan
        noise_squared = np.nan
        if (first_step + done + 1) % record_every == 0:
            momentum_squared = sum_of_squares(momentum_new, 1.0)
            noise_squared = sum_of_squares(xi, sigma)
        new_energy, new_bias_energy = evaluate_force(potential_data, bias_data, theta_new,
                                                     gradient_new, rng)
        for i in range(d):
            momentum_new[i] -= half * gradient_new[i]     # B
        if not (np.isfinite(new_energy + new_bias_energy)
                and pair_finite(theta_new, momentum_new)):
            diverged = True
            break
        theta, theta_new = theta_new, theta
        momentum, momentum_new = momentum_new, momentum
        gradient, gradient_new = gradient_new, gradient
        energy = new_energy
        bias_energy = new_bias_energy
        done += 1
        step = first_step + done
        bias_update(bias_data, theta, step)
        if step % record_every == 0:
            record_observables(records, trajectory, rows, potential_data, theta, gradient,
                               step, energy, bias_energy, momentum_squared, noise_squared,
                               np.nan, np.nan, record_accuracy, record_full_energy, scratch)
            record_bias_weight_log(records, rows, bias_data)
            rows += 1
    return theta, momentum, gradient, energy, bias_energy, done, rows, diverged


def run_chunk(potential, bias, state, rng, n_steps, parameters, recording):
    """Advance ``state`` by up to ``n_steps`` BAOAB steps (driver interface)."""
    (theta, momentum, gradient, energy, bias_energy, done, rows,
     diverged) = baoab_kernel(
        potential.kernel_data, bias.kernel_data, state.theta, state.momentum,
        state.gradient, float(state.energy), float(state.bias_energy), int(state.step),
        int(n_steps), parameters["step_size"], parameters["beta"], parameters["friction"],
        rng, recording.records, recording.trajectory, recording.record_every,
        recording.record_accuracy, recording.record_full_energy)
    new_state = state._replace(theta=theta, momentum=momentum, gradient=gradient,
                               energy=float(energy), bias_energy=float(bias_energy),
                               step=state.step + int(done))
    return ChunkResult(new_state, int(done), int(rows), bool(diverged))


register_sampler("baoab", init=init, validate=validate, run_chunk=run_chunk,
                 state_class=BAOABState, observables=OBSERVABLES,
                 description="BAOAB Langevin splitting (Leimkuhler–Matthews)")
