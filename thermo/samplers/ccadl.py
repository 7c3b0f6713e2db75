"""Covariance-controlled adaptive Langevin (CCAdL) thermostat.

Shang, Zhu, Leimkuhler & Storkey (2015), "Covariance-controlled adaptive
Langevin thermostat for large-scale Bayesian sampling", NeurIPS.

Dynamics (unit masses, d = dim θ, target exp(-β (U+V))):

    dθ = p dt
    dp = -∇Ũ(θ) dt - (h/2) β Σ(θ) p dt - ξ p dt + sqrt(2γ/β) dW
    dξ = μ⁻¹ (pᵀp - d/β) dt

∇Ũ is the stochastic (minibatch) gradient of the total energy U (plus the
exact ∇V of the bias), Σ(θ) the covariance of the ∇Ũ estimator, here its
diagonal from ``energy_gradient_variance`` (the "diagonal approximation").
Why (h/2) β Σ: the kick -h ∇Ũ carries noise of covariance h² Σ per step,
i.e. a diffusion h Σ per unit time; by fluctuation–dissipation it is
balanced by the friction (h/2) β Σ, which CCAdL subtracts explicitly.  What
the estimate misses (off-diagonal parts, estimation error) is absorbed by
the Nosé–Hoover-like thermostat ξ, which drives the kinetic temperature
|p|²/d to 1/β.  γ (``friction``) sets the additive noise strength; μ
(``thermostat_mass``) the thermostat inertia.

Discretisation: the paper's Euler-type scheme (its Algorithm 1) with step h,
one gradient evaluation per step:

    θ_{n+1} = θ_n + h p_n
    p_{n+1} = p_n - h ∇Ũ(θ_{n+1}) - h [(h/2) β Σ(θ_{n+1}) + ξ_n] p_n
              + sqrt(2γh/β) η_n,                      η_n ~ N(0, I)
    ξ_{n+1} = ξ_n + (h/μ) (|p_{n+1}|² - d/β)

(the paper's form has β = 1, μ = d: ξ_{n+1} = ξ_n + h (|p|²/d - 1)).
Because ξ is stationary only if ⟨|p_{n+1}|²⟩ = d/β, the kinetic temperature
|p_{n+1}|²/d averages to 1/β exactly at stationarity, even with noisy
gradients.  K and the kinetic temperature are measured at p_{n+1} (after
the noise is added, the last update of p in a step); ``thermostat`` records
ξ_{n+1}; ``noise_norm`` is |sqrt(2γh/β) η_n|.

Options
-------
thermostat_mass : float, default d
    μ > 0.
initial_thermostat : float, default γ
    ξ_0 (the paper starts at ξ_0 = A = γ).
covariance_correction : bool, default True
    False drops the -(h/2) β Σ p term (adaptive Langevin, Ad-Langevin).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)
from thermo.bias.base import bias_energy_gradient, bias_update
from thermo.potentials.base import energy_gradient_variance
from thermo.samplers._framework import ChunkResult, register_sampler, reject_unknown_options
from thermo.samplers._solvers import (initial_force, initial_momentum, record_bias_weight_log,
                                      record_observables)
from thermo.samplers.noise import standard_normals

__all__ = ["CCAdLState", "init", "validate", "run_chunk", "ccadl_kernel"]

OBSERVABLES = ("step", "energy", "bias_energy", "kinetic_energy", "kinetic_temperature",
               "configurational_temperature", "virial", "gradient_norm", "noise_norm",
               "thermostat", "bias_weight_log")


class CCAdLState(NamedTuple):
    """State after step ``step``: θ_n, p_n, ∇(U+V)(θ_n) as used, the estimator
    variance Σ(θ_n) (diagonal), U(θ_n) as used, V(θ_n), ξ_n (``thermostat``),
    the step count, RNG and minibatch state."""
    theta: np.ndarray
    momentum: np.ndarray
    gradient: np.ndarray
    variance: np.ndarray
    energy: float
    bias_energy: float
    thermostat: float
    step: int
    rng_state: object = None
    minibatch_state: object = None


@njit(cache=True)
def ccadl_kernel(potential_data, bias_data, theta, momentum, gradient, variance, energy,
                 bias_energy, thermostat, first_step, n_steps, step_size, beta, friction,
                 thermostat_mass, covariance_correction, rng, records, trajectory,
                 record_every, record_accuracy, record_full_energy):
    """``n_steps`` CCAdL steps (module docstring) from step ``first_step``.

    A step is computed into second buffers and swapped in only when θ, p, U,
    V and ξ are finite.  Returns (theta, momentum, gradient, variance,
    energy, bias_energy, thermostat, steps_done, rows_written, diverged).
    """
    d = theta.size
    h = step_size
    sigma = math.sqrt(2.0 * friction * h / beta)
    correction = 0.5 * h * beta if covariance_correction else 0.0
    target = d / beta
    theta_new = np.empty_like(theta)
    momentum_new = np.empty_like(momentum)
    gradient_new = np.empty_like(gradient)
    variance_new = np.empty_like(variance)
    xi = np.empty(d)
    scratch = np.empty(d if record_full_energy else 0, dtype=theta.dtype)
    rows = 0
    done = 0
    diverged = False
    for n in range(n_steps):
        for i in range(d):
            theta_new[i] = theta[i] + h * momentum[i]
        new_energy = energy_gradient_variance(potential_data, theta_new, gradient_new,
                                              variance_new, rng)
        new_bias_energy = bias_energy_gradient(bias_data, theta_new, gradient_new)
        momentum_squared = 0.0
        noise_squared = 0.0
        check = new_energy + new_bias_energy
        standard_normals(rng, xi)
        for i in range(d):
            noise = sigma * xi[i]
            damping = correction * variance_new[i] + thermostat
            p = momentum[i] - h * gradient_new[i] - h * damping * momentum[i] + noise
            momentum_new[i] = p
            momentum_squared += p * p
            noise_squared += noise * noise
            check += theta_new[i]
        new_thermostat = thermostat + (h / thermostat_mass) * (momentum_squared - target)
        check += momentum_squared + new_thermostat
        if not np.isfinite(check):
            diverged = True
            break
        theta, theta_new = theta_new, theta
        momentum, momentum_new = momentum_new, momentum
        gradient, gradient_new = gradient_new, gradient
        variance, variance_new = variance_new, variance
        energy = new_energy
        bias_energy = new_bias_energy
        thermostat = new_thermostat
        done += 1
        step = first_step + done
        bias_update(bias_data, theta, step)
        if step % record_every == 0:
            record_observables(records, trajectory, rows, potential_data, theta, gradient,
                               step, energy, bias_energy, momentum_squared, noise_squared,
                               thermostat, np.nan, record_accuracy, record_full_energy,
                               scratch)
            record_bias_weight_log(records, rows, bias_data)
            rows += 1
    return (theta, momentum, gradient, variance, energy, bias_energy, thermostat, done,
            rows, diverged)


def init(potential, theta0, rng, bias, parameters):
    """State at θ0: p ~ N(0, I/β) from ``rng``, ξ_0 = initial_thermostat, one
    force evaluation (for the recorded observables; the first step evaluates
    the gradient at θ_1)."""
    momentum = initial_momentum(rng, theta0.size, parameters["beta"], theta0.dtype)
    energy, bias_energy, gradient = initial_force(potential, bias, theta0, rng)
    variance = np.zeros_like(theta0)
    return CCAdLState(theta0, momentum, gradient, variance, energy, bias_energy,
                      float(parameters["initial_thermostat"]), 0)


def validate(parameters, options, potential):
    """Check β finite, μ > 0; defaults μ = d, ξ_0 = γ, covariance_correction=True."""
    options = dict(options)
    if math.isinf(parameters["beta"]):
        raise ValueError("ccadl needs a finite beta (its thermostat targets |p|²/d = 1/β)")
    mass = options.pop("thermostat_mass", None)
    mass = float(potential.dimension) if mass is None else float(mass)
    if not (mass > 0.0 and math.isfinite(mass)):
        raise ValueError(f"thermostat_mass must be finite and > 0, got {mass}")
    initial = options.pop("initial_thermostat", None)
    initial = parameters["friction"] if initial is None else float(initial)
    if not math.isfinite(initial):
        raise ValueError(f"initial_thermostat must be finite, got {initial}")
    correction = options.pop("covariance_correction", True)
    if not isinstance(correction, (bool, np.bool_)):
        raise TypeError(f"covariance_correction must be a bool, got {correction!r}")
    reject_unknown_options("ccadl", options,
                           ("thermostat_mass", "initial_thermostat", "covariance_correction"))
    result = dict(parameters)
    result.update(thermostat_mass=mass, initial_thermostat=initial,
                  covariance_correction=bool(correction))
    return result


def run_chunk(potential, bias, state, rng, n_steps, parameters, recording):
    """Advance ``state`` by up to ``n_steps`` CCAdL steps (driver interface)."""
    (theta, momentum, gradient, variance, energy, bias_energy, thermostat, done, rows,
     diverged) = ccadl_kernel(
        potential.kernel_data, bias.kernel_data, state.theta, state.momentum,
        state.gradient, state.variance, float(state.energy), float(state.bias_energy),
        float(state.thermostat), int(state.step), int(n_steps), parameters["step_size"],
        parameters["beta"], parameters["friction"], parameters["thermostat_mass"],
        parameters["covariance_correction"], rng, recording.records, recording.trajectory,
        recording.record_every, recording.record_accuracy, recording.record_full_energy)
    new_state = state._replace(theta=theta, momentum=momentum, gradient=gradient,
                               variance=variance, energy=float(energy),
                               bias_energy=float(bias_energy), thermostat=float(thermostat),
                               step=state.step + int(done))
    return ChunkResult(new_state, int(done), int(rows), bool(diverged))


register_sampler("ccadl", init=init, validate=validate, run_chunk=run_chunk,
                 state_class=CCAdLState, observables=OBSERVABLES,
                 description="covariance-controlled adaptive Langevin (Shang et al. 2015)")
