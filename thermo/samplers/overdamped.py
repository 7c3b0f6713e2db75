"""Overdamped Langevin: the Leimkuhler–Matthews scheme (and the kernel SGLD shares).

Brownian dynamics dθ = -∇(U+V)(θ) dt + sqrt(2/β) dW targets exp(-β (U+V)).
The Leimkuhler–Matthews ("non-Markovian") discretisation with step h is

    θ_{n+1} = θ_n - h ∇U(θ_n) + sqrt(h/(2β)) (ξ_n + ξ_{n+1}),   ξ_k ~ N(0, I),

where ∇U is the force the sampler sees (minibatch estimate for stochastic
potentials) plus the bias gradient.  It is the γ → ∞ limit of BAOAB with
BAOAB step size sqrt(2h) (c = 0 makes the BAOAB momentum pure noise), and
has O(h²) bias in configurational averages (exact mean and covariance for
Gaussians up to O(h²)), against O(h) for Euler–Maruyama (SGLD).

ξ_n is part of the state (``noise``, drawn at ``init``); each step draws
ξ_{n+1} and evaluates the gradient once (at θ_{n+1}, cached for the next
step).  There is no momentum: kinetic observables are not defined;
``noise_norm`` is |sqrt(h/(2β)) (ξ_n + ξ_{n+1})|.  ``friction`` is ignored.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)
from thermo._sums import sum_of_squares
from thermo.bias.base import bias_update
from thermo.samplers._framework import ChunkResult, register_sampler, reject_unknown_options
from thermo.samplers._solvers import (evaluate_force, initial_force, pair_finite,
                                      record_bias_weight_log, record_observables)
from thermo.samplers.noise import standard_normals

__all__ = ["OverdampedState", "init", "validate", "run_chunk", "overdamped_kernel"]

OBSERVABLES = ("step", "energy", "bias_energy", "configurational_temperature", "virial",
               "gradient_norm", "noise_norm", "bias_weight_log")


class OverdampedState(NamedTuple):
    """State after step ``step``: θ_n, ξ_n (``noise``, standard normal), the cached
    ∇(U+V)(θ_n), U(θ_n) as used, V(θ_n), the step count, RNG and minibatch state."""
    theta: np.ndarray
    noise: np.ndarray
    gradient: np.ndarray
    energy: float
    bias_energy: float
    step: int
    rng_state: object = None
    minibatch_state: object = None


@njit(cache=True)
def _kick_squared(amplitude, previous, current):
    """``Σ (amplitude (previous_i + current_i))²`` in four interleaved sums."""
    n = current.size
    n4 = n - n % 4
    s0 = s1 = s2 = s3 = 0.0
    for i in range(0, n4, 4):
        a0 = amplitude * (previous[i] + current[i])
        a1 = amplitude * (previous[i + 1] + current[i + 1])
        a2 = amplitude * (previous[i + 2] + current[i + 2])
        a3 = amplitude * (previous[i + 3] + current[i + 3])
        s0 += a0 * a0
        s1 += a1 * a1
        s2 += a2 * a2
        s3 += a3 * a3
    for i in range(n4, n):
        a0 = amplitude * (previous[i] + current[i])
        s0 += a0 * a0
    return (s0 + s1) + (s2 + s3)


@njit(cache=True)
def overdamped_kernel(potential_data, bias_data, theta, gradient, noise, energy, bias_energy,
                      first_step, n_steps, step_size, beta, leimkuhler_matthews, rng, records,
                      trajectory, record_every, record_accuracy, record_full_energy):
    """``n_steps`` overdamped steps from step ``first_step``.

    ``leimkuhler_matthews=True``: θ ← θ - h∇U + sqrt(h/(2β)) (ξ_n + ξ_{n+1}),
    with ``noise`` holding ξ_n.  ``False`` (SGLD, Euler–Maruyama):
    θ ← θ - h∇U + sqrt(2h/β) ξ_n (``noise`` unused, may be empty).  β = ∞
    removes the noise (the normals are still drawn).  A step is computed
    into second buffers and swapped in only when θ, U and ∇U are finite.

    Returns (theta, gradient, noise, energy, bias_energy, steps_done,
    rows_written, diverged).
    """
    d = theta.size
    if math.isinf(beta):
        amplitude = 0.0
    elif leimkuhler_matthews:
        amplitude = math.sqrt(step_size / (2.0 * beta))
    else:
        amplitude = math.sqrt(2.0 * step_size / beta)
    theta_new = np.empty_like(theta)
    gradient_new = np.empty_like(gradient)
    noise_new = np.empty_like(noise)
    scratch = np.empty(d if record_full_energy else 0, dtype=theta.dtype)
    draws = np.empty(d)
    rows = 0
    done = 0
    diverged = False
    for n in range(n_steps):
        standard_normals(rng, draws)
        recorded = (first_step + done + 1) % record_every == 0
        noise_squared = np.nan
        if leimkuhler_matthews:
            for i in range(d):
                xi = draws[i]
                kick = amplitude * (noise[i] + xi)
                noise_new[i] = xi
                theta_new[i] = theta[i] - step_size * gradient[i] + kick
            if recorded:
                # |kick|² from θ's own change would round differently; the
                # kicks are recomputed, only for recorded steps
                noise_squared = _kick_squared(amplitude, noise, noise_new)
        else:
            for i in range(d):
                theta_new[i] = theta[i] - step_size * gradient[i] + amplitude * draws[i]
            if recorded:
                noise_squared = sum_of_squares(draws, amplitude)
        new_energy, new_bias_energy = evaluate_force(potential_data, bias_data, theta_new,
                                                     gradient_new, rng)
        if not (np.isfinite(new_energy + new_bias_energy)
                and pair_finite(theta_new, gradient_new)):
            diverged = True
            break
        theta, theta_new = theta_new, theta
        gradient, gradient_new = gradient_new, gradient
        noise, noise_new = noise_new, noise
        energy = new_energy
        bias_energy = new_bias_energy
        done += 1
        step = first_step + done
        bias_update(bias_data, theta, step)
        if step % record_every == 0:
            record_observables(records, trajectory, rows, potential_data, theta, gradient,
                               step, energy, bias_energy, np.nan, noise_squared, np.nan,
                               np.nan, record_accuracy, record_full_energy, scratch)
            record_bias_weight_log(records, rows, bias_data)
            rows += 1
    return theta, gradient, noise, energy, bias_energy, done, rows, diverged


def init(potential, theta0, rng, bias, parameters):
    """State at θ0: ξ_0 ~ N(0, I) from ``rng``, then one force evaluation."""
    noise = rng.standard_normal(theta0.size)
    energy, bias_energy, gradient = initial_force(potential, bias, theta0, rng)
    return OverdampedState(theta0, noise, gradient, energy, bias_energy, 0)


def validate(parameters, options, potential):
    """No options; friction is not used."""
    reject_unknown_options("overdamped", options, ())
    return {"step_size": parameters["step_size"], "beta": parameters["beta"]}


def run_chunk(potential, bias, state, rng, n_steps, parameters, recording):
    """Advance ``state`` by up to ``n_steps`` steps (driver interface)."""
    theta, gradient, noise, energy, bias_energy, done, rows, diverged = overdamped_kernel(
        potential.kernel_data, bias.kernel_data, state.theta, state.gradient, state.noise,
        float(state.energy), float(state.bias_energy), int(state.step), int(n_steps),
        parameters["step_size"], parameters["beta"], True, rng, recording.records,
        recording.trajectory, recording.record_every, recording.record_accuracy,
        recording.record_full_energy)
    new_state = state._replace(theta=theta, gradient=gradient, noise=noise,
                               energy=float(energy), bias_energy=float(bias_energy),
                               step=state.step + int(done))
    return ChunkResult(new_state, int(done), int(rows), bool(diverged))


register_sampler("overdamped", init=init, validate=validate, run_chunk=run_chunk,
                 state_class=OverdampedState, observables=OBSERVABLES,
                 description="overdamped Langevin, Leimkuhler–Matthews form")
