"""Stochastic gradient Langevin dynamics (Welling & Teh 2011), Euler–Maruyama form.

    θ_{n+1} = θ_n - h ∇U(θ_n) + sqrt(2h/β) ξ_n,   ξ_n ~ N(0, I),

with U the total energy (∇U the minibatch estimate for stochastic potentials,
plus the bias gradient ∇V).  Targets exp(-β (U+V)) with O(h) bias.  β = ∞
gives plain (stochastic) gradient descent with learning rate h.

One gradient evaluation per step: ∇U(θ_{n+1}) is computed at the end of step
n and cached in the state.  No momentum, so kinetic observables are not
defined; ``noise_norm`` is |sqrt(2h/β) ξ_n|.  ``friction`` is ignored.
Shares its kernel with :mod:`thermo.samplers.overdamped`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from thermo.samplers._framework import ChunkResult, register_sampler, reject_unknown_options
from thermo.samplers._solvers import initial_force
from thermo.samplers.overdamped import overdamped_kernel

__all__ = ["SGLDState", "init", "validate", "run_chunk"]

OBSERVABLES = ("step", "energy", "bias_energy", "configurational_temperature", "virial",
               "gradient_norm", "noise_norm", "bias_weight_log")


class SGLDState(NamedTuple):
    """State after step ``step``: θ_n, the cached ∇(U+V)(θ_n), U(θ_n) as used,
    V(θ_n), the step count, RNG and minibatch state."""
    theta: np.ndarray
    gradient: np.ndarray
    energy: float
    bias_energy: float
    step: int
    rng_state: object = None
    minibatch_state: object = None


def init(potential, theta0, rng, bias, parameters):
    """State at θ0 (one force evaluation)."""
    energy, bias_energy, gradient = initial_force(potential, bias, theta0, rng)
    return SGLDState(theta0, gradient, energy, bias_energy, 0)


def validate(parameters, options, potential):
    """No options; friction is not used."""
    reject_unknown_options("sgld", options, ())
    return {"step_size": parameters["step_size"], "beta": parameters["beta"]}


def run_chunk(potential, bias, state, rng, n_steps, parameters, recording):
    """Advance ``state`` by up to ``n_steps`` SGLD steps (driver interface)."""
    unused = np.empty(0, dtype=state.theta.dtype)
    theta, gradient, _, energy, bias_energy, done, rows, diverged = overdamped_kernel(
        potential.kernel_data, bias.kernel_data, state.theta, state.gradient, unused,
        float(state.energy), float(state.bias_energy), int(state.step), int(n_steps),
        parameters["step_size"], parameters["beta"], False, rng, recording.records,
        recording.trajectory, recording.record_every, recording.record_accuracy,
        recording.record_full_energy)
    new_state = state._replace(theta=theta, gradient=gradient, energy=float(energy),
                               bias_energy=float(bias_energy), step=state.step + int(done))
    return ChunkResult(new_state, int(done), int(rows), bool(diverged))


register_sampler("sgld", init=init, validate=validate, run_chunk=run_chunk,
                 state_class=SGLDState, observables=OBSERVABLES,
                 description="stochastic gradient Langevin dynamics (Euler–Maruyama)")
