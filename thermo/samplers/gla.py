"""Geometric Langevin algorithms GLA1 and GLA2 (Bou-Rabee & Owhadi 2010), as in TATi.

Underdamped Langevin dynamics, unit masses, friction γ, inverse temperature β:

    dθ = p dt,   dp = -∇(U+V)(θ) dt - γ p dt + sqrt(2γ/β) dW.

The O step is the exact Ornstein–Uhlenbeck flow over h,
p ← c p + sqrt((1 - c²)/β) ξ with c = exp(-γ h), ξ ~ N(0, I).  ∇U is the
force the sampler sees (minibatch estimate for stochastic potentials) plus ∇V.

GLA1 ("gla1", splitting B A O, first order in configurational averages):

    p'      = p_n - h ∇U(θ_n)                        B (full step)
    θ_{n+1} = θ_n + h p'                              A
    p_{n+1} = c p' + sqrt((1 - c²)/β) ξ_n             O

GLA2 ("gla2", splitting B A B O, second order — the OBABO family):

    p'      = p_n - (h/2) ∇U(θ_n)                    B
    θ_{n+1} = θ_n + h p'                              A
    p''     = p' - (h/2) ∇U(θ_{n+1})                 B
    p_{n+1} = c p'' + sqrt((1 - c²)/β) ξ_n            O

Both evaluate the gradient once per step, at θ_{n+1}, and cache it for the
next step.  The kinetic energy K = |p_{n+1}|²/2 and kinetic temperature
|p_{n+1}|²/d are measured with p_{n+1}, i.e. right after the O step (which
ends the step); ``noise_norm`` is |sqrt((1-c²)/β) ξ_n|.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)
from thermo.bias.base import bias_update
from thermo.samplers._framework import (ChunkResult, register_sampler,
                                        reject_unknown_options, require_positive_friction)
from thermo.samplers._solvers import (evaluate_force, initial_force, initial_momentum,
                                      ornstein_uhlenbeck_coefficients, record_bias_weight_log,
                                      record_observables)
from thermo.samplers.noise import standard_normals

__all__ = ["GLAState", "init", "gla_kernel"]

OBSERVABLES = ("step", "energy", "bias_energy", "kinetic_energy", "kinetic_temperature",
               "configurational_temperature", "virial", "gradient_norm", "noise_norm", "bias_weight_log")


class GLAState(NamedTuple):
    """State after step ``step``: θ_n, p_n (right after the O step), the cached
    ∇(U+V)(θ_n), U(θ_n) as used, V(θ_n), the step count, RNG and minibatch state."""
    theta: np.ndarray
    momentum: np.ndarray
    gradient: np.ndarray
    energy: float
    bias_energy: float
    step: int
    rng_state: object = None
    minibatch_state: object = None


@njit(cache=True)
def gla_kernel(potential_data, bias_data, theta, momentum, gradient, energy, bias_energy,
               first_step, n_steps, step_size, beta, friction, second_order, rng, records,
               trajectory, record_every, record_accuracy, record_full_energy):
    """``n_steps`` GLA1 (``second_order=False``) or GLA2 steps from ``first_step``.

    See the module docstring for the update equations.  A step is computed
    into second buffers and swapped in only when θ, p, U and V are finite.

    Returns (theta, momentum, gradient, energy, bias_energy, steps_done,
    rows_written, diverged).
    """
    d = theta.size
    h = step_size
    half = 0.5 * h
    c, sigma = ornstein_uhlenbeck_coefficients(friction, step_size, beta)
    theta_new = np.empty_like(theta)
    momentum_new = np.empty_like(momentum)
    gradient_new = np.empty_like(gradient)
    xi = np.empty(d)
    scratch = np.empty(d if record_full_energy else 0, dtype=theta.dtype)
    rows = 0
    done = 0
    diverged = False
    for n in range(n_steps):
        momentum_squared = 0.0
        noise_squared = 0.0
        check = 0.0
        if second_order:
            for i in range(d):
                p = momentum[i] - half * gradient[i]              # B
                momentum_new[i] = p
                theta_new[i] = theta[i] + h * p                   # A
            new_energy, new_bias_energy = evaluate_force(potential_data, bias_data,
                                                         theta_new, gradient_new, rng)
            standard_normals(rng, xi)
            for i in range(d):
                p = momentum_new[i] - half * gradient_new[i]      # B
                noise = sigma * xi[i]
                p = c * p + noise                                 # O
                momentum_new[i] = p
                momentum_squared += p * p
                noise_squared += noise * noise
                check += theta_new[i]
        else:
            standard_normals(rng, xi)
            for i in range(d):
                p = momentum[i] - h * gradient[i]                 # B
                theta_new[i] = theta[i] + h * p                   # A
                noise = sigma * xi[i]
                p = c * p + noise                                 # O
                momentum_new[i] = p
                momentum_squared += p * p
                noise_squared += noise * noise
                check += theta_new[i]
            new_energy, new_bias_energy = evaluate_force(potential_data, bias_data,
                                                         theta_new, gradient_new, rng)
        check += new_energy + new_bias_energy + momentum_squared
        if not np.isfinite(check):
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


def init(potential, theta0, rng, bias, parameters):
    """State at θ0: momentum ~ N(0, I/β) from ``rng``, then one force evaluation."""
    momentum = initial_momentum(rng, theta0.size, parameters["beta"], theta0.dtype)
    energy, bias_energy, gradient = initial_force(potential, bias, theta0, rng)
    return GLAState(theta0, momentum, gradient, energy, bias_energy, 0)


def _make_validate(name):
    def validate(parameters, options, potential):
        """GLA needs γ > 0 and has no options of its own."""
        require_positive_friction(name, parameters)
        reject_unknown_options(name, options, ())
        return dict(parameters)
    return validate


def _make_run_chunk(second_order):
    def run_chunk(potential, bias, state, rng, n_steps, parameters, recording):
        """Advance ``state`` by up to ``n_steps`` GLA steps (driver interface)."""
        (theta, momentum, gradient, energy, bias_energy, done, rows,
         diverged) = gla_kernel(
            potential.kernel_data, bias.kernel_data, state.theta, state.momentum,
            state.gradient, float(state.energy), float(state.bias_energy), int(state.step),
            int(n_steps), parameters["step_size"], parameters["beta"],
            parameters["friction"], second_order, rng, recording.records,
            recording.trajectory, recording.record_every, recording.record_accuracy,
            recording.record_full_energy)
        new_state = state._replace(theta=theta, momentum=momentum, gradient=gradient,
                                   energy=float(energy), bias_energy=float(bias_energy),
                                   step=state.step + int(done))
        return ChunkResult(new_state, int(done), int(rows), bool(diverged))
    return run_chunk


register_sampler("gla1", init=init, validate=_make_validate("gla1"),
                 run_chunk=_make_run_chunk(False), state_class=GLAState,
                 observables=OBSERVABLES, description="geometric Langevin, B A O (first order)")
register_sampler("gla2", init=init, validate=_make_validate("gla2"),
                 run_chunk=_make_run_chunk(True), state_class=GLAState,
                 observables=OBSERVABLES,
                 description="geometric Langevin, B A B O (second order)")
