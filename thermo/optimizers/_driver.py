"""Python driver of the optimizers: validation, records, state, errors.

See :func:`optimize`.  The kernels live in :mod:`thermo.optimizers.gd` and
:mod:`thermo.optimizers.barzilai_borwein`.
"""
from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from thermo.optimizers.barzilai_borwein import barzilai_borwein_kernel
from thermo.optimizers.gd import (CONVERGED, DIVERGED, STALLED,
                                  heavy_ball_kernel)
from thermo.potentials.base import Potential
from thermo.samplers._framework import DivergenceError

__all__ = ["optimize", "OptimizationRun", "OptimizerState", "METHODS"]

METHODS = ("gd", "sgd", "bb")


class OptimizerState(NamedTuple):
    """Everything needed to continue an optimisation bit for bit.

    ``gradient``/``energy`` are the (minibatch, for SGD) values at ``theta``;
    ``velocity`` is the heavy-ball v_k (zeros for BB); ``step_size``,
    ``history``, ``history_count``, ``history_position`` the BB step and
    non-monotone energy memory (unused by GD/SGD); ``rng_state`` the
    ``bit_generator.state`` dict; ``minibatch_state`` the potential's
    minibatch (epoch) state when it has one.

    Attributes
    ----------
    method : str
        "gd", "sgd" or "bb".
    theta, gradient : ndarray, shape (d,)
        Current point and the gradient in use there.
    energy : float
        U(θ) (a minibatch estimate for SGD).
    velocity : ndarray, shape (d,)
        Heavy-ball velocity (zeros for BB).
    step_size : float
        Current BB step α.
    history : ndarray
        Past energies of the non-monotone BB condition.
    history_count, history_position : int
        Fill level and write position of ``history``.
    step : int
        Total steps done.
    rng_state : dict
        ``bit_generator.state`` of the minibatch generator.
    minibatch_state : object
        The potential's minibatch state, or None.

    Examples
    --------
    >>> from thermo.potentials import Gaussian
    >>> run = optimize(Gaussian(np.ones(2)), "gd", theta0=np.zeros(2), n_steps=5,
    ...                learning_rate=0.5)
    >>> state = run.state
    >>> state.method, state.step, np.round(state.theta, 4)
    ('gd', 5, array([0.9688, 0.9688]))
    """
    method: str
    theta: np.ndarray
    gradient: np.ndarray
    energy: float
    velocity: np.ndarray
    step_size: float
    history: np.ndarray
    history_count: int
    history_position: int
    step: int
    rng_state: dict
    minibatch_state: object = None


@dataclass
class OptimizationRun:
    """Result of :func:`thermo.optimize`.

    Attributes
    ----------
    theta : ndarray
        Final point.
    trajectory : ndarray or None
        Recorded θ, shape (n_records, d), when ``record_trajectory``.
    observables : dict
        ``step``, ``energy`` (U, a minibatch estimate for SGD),
        ``gradient_norm`` (|∇U|, of the gradient used), ``step_size`` (BB:
        accepted α of the recorded step), one entry per record.
    state : OptimizerState
        Pass as ``state=`` to continue.
    converged : bool
        |∇U| <= tolerance was reached.
    message : str
        Why the run stopped.
    n_steps : int
        Steps done in this call.
    parameters : dict
        learning_rate, momentum, full_batch, tolerance, record_every, seed.

    Examples
    --------
    >>> from thermo.potentials import Gaussian
    >>> run = optimize(Gaussian(np.ones(2)), "gd", theta0=np.zeros(2), n_steps=200,
    ...                learning_rate=0.5, tolerance=1e-8)
    >>> run.converged, run.n_steps, run.theta
    (True, 28, array([1., 1.]))
    >>> sorted(run.observables)
    ['energy', 'gradient_norm', 'step']
    """
    theta: np.ndarray
    trajectory: np.ndarray | None
    observables: dict
    state: OptimizerState
    method: str
    converged: bool = False
    message: str = ""
    n_steps: int = 0
    parameters: dict = field(default_factory=dict)


def _check_positive_int(value, name, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return int(value)


def _check_float(value, name, low=None, low_inclusive=True, high=None,
                 high_inclusive=False):
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        raise ValueError(f"{name} must be {'>=' if low_inclusive else '>'} {low}, got {value}")
    if high is not None and (value > high or (value == high and not high_inclusive)):
        raise ValueError(f"{name} must be {'<=' if high_inclusive else '<'} {high}, got {value}")
    return value


def optimize(potential, method, theta0=None, n_steps=1000, learning_rate=1e-3,
             momentum=0.0, seed=0, record_every=1, record_trajectory=False,
             tolerance=None, full_batch=None, state=None, step_range=(1e-10, 1e10),
             memory=10):
    """Minimise U(θ) by gradient descent ("gd", "sgd") or Barzilai–Borwein ("bb").

    Update equations (h = ``learning_rate``, μ = ``momentum``)::

        gd, sgd:  v_{k+1} = μ v_k - h g_k,   θ_{k+1} = θ_k + v_{k+1}
        bb:       θ_{k+1} = θ_k - α_k ∇U(θ_k),
                  α_{k+1} = clip(sᵀs / sᵀy, *step_range),  α_0 = h,
                  with a non-monotone backtracking safeguard
                  (see :mod:`thermo.optimizers.barzilai_borwein`).

    ``g_k`` is the exact gradient ∇U(θ_k) for "gd" and "bb" and the
    potential's minibatch estimate for "sgd" (``full_batch`` overrides this
    for "gd"/"sgd").  U is the *total* energy (sum of per-example losses plus
    prior), so for a posterior over N points ``h`` ~ 1/(N·curvature).

    Parameters
    ----------
    potential : thermo.potentials.Potential
    method : {"gd", "sgd", "bb"}
    theta0 : array_like, shape (d,)
        Starting point (not needed when ``state`` is given).
    n_steps : int
        Maximum number of steps in this call.
    learning_rate : float
        h (> 0); for "bb" the first trial step α_0.
    momentum : float
        μ in [0, 1) (heavy ball); "gd"/"sgd" only.
    seed : int
        Seed of the ``numpy.random.Generator`` drawing minibatches.
    record_every : int
        Records are taken at step 0 (fresh start only), at every step that is
        a multiple of ``record_every``, and at the converged point.
    record_trajectory : bool
        Also record θ.
    tolerance : float, optional
        Stop as soon as |g_k| <= tolerance (the gradient in use: a minibatch
        estimate for "sgd").
    full_batch : bool, optional
        Exact (True) or minibatch (False) gradients; default True for "gd"
        and "bb", False for "sgd".  "bb" requires exact gradients.
    state : OptimizerState, optional
        Continue a previous run (``run.state``); ``theta0`` and ``seed`` are
        then ignored and the continuation equals one longer run bit for bit.
    step_range : (float, float)
        (α_min, α_max), clipping range of the BB step.
    memory : int
        M, number of past energies in the non-monotone BB condition.

    Returns
    -------
    OptimizationRun
        ``.theta`` (final point), ``.trajectory``, ``.observables`` (step,
        energy, gradient_norm[, step_size]), ``.state``, ``.converged``.

    Raises
    ------
    thermo.DivergenceError
        θ, U or ∇U became non-finite; the message and ``.step`` name the
        step, ``.last_good_state`` is the state after the step before it (its
        generator state is that after the failed step's draws) and
        ``.partial_run`` holds the records so far.

    Examples
    --------
    Gradient descent to the minimum of ``U = |θ - 1|²/2``, then a continuation:

    >>> from thermo.potentials import Gaussian
    >>> target = Gaussian(np.ones(2))
    >>> run = optimize(target, "gd", theta0=np.zeros(2), n_steps=10, learning_rate=0.5)
    >>> energy = run.observables["energy"]
    >>> float(energy[0]), bool(energy[-1] < 1e-5)
    (1.0, True)
    >>> more = optimize(target, "gd", state=run.state, n_steps=10, learning_rate=0.5)
    >>> more.state.step, bool(np.allclose(more.theta, 1.0))
    (20, True)

    Barzilai–Borwein finds the minimum of a quadratic in a few steps:

    >>> optimize(target, "bb", theta0=np.zeros(2), learning_rate=0.1, tolerance=1e-10).n_steps
    2
    """
    if not isinstance(potential, Potential):
        raise TypeError(f"potential must be a thermo Potential, got {type(potential).__name__}")
    if method not in METHODS:
        raise ValueError(f"unknown optimizer {method!r}; choose one of {METHODS}")
    n_steps = _check_positive_int(n_steps, "n_steps", allow_zero=True)
    record_every = _check_positive_int(record_every, "record_every")
    learning_rate = _check_float(learning_rate, "learning_rate", low=0.0, low_inclusive=False)
    momentum = _check_float(momentum, "momentum", low=0.0, high=1.0)
    if method == "bb" and momentum != 0.0:
        raise ValueError("momentum is not defined for the Barzilai-Borwein method")
    if tolerance is None:
        tolerance_value = -1.0
    else:
        tolerance_value = _check_float(tolerance, "tolerance", low=0.0)
    if full_batch is None:
        full = method != "sgd"
    elif not isinstance(full_batch, (bool, np.bool_)):
        raise TypeError(f"full_batch must be True, False or None, got {full_batch!r}")
    else:
        full = bool(full_batch)
    if method == "bb" and not full:
        raise ValueError("the Barzilai-Borwein method needs exact gradients (full_batch=True)")
    step_min = _check_float(step_range[0], "step_range[0]", low=0.0, low_inclusive=False)
    step_max = _check_float(step_range[1], "step_range[1]", low=step_min)
    memory = _check_positive_int(memory, "memory")
    record_trajectory = bool(record_trajectory)
    dtype = potential.dtype
    d = potential.dimension

    fresh = state is None
    if fresh:
        if theta0 is None:
            raise ValueError("give theta0 (or state= to continue a run)")
        theta = potential.check_theta(theta0, "theta0").copy()
        rng = np.random.default_rng(seed)
        if hasattr(potential, "reset_minibatch_state"):
            potential.reset_minibatch_state()
        energy, gradient = potential.energy_and_gradient(theta, full=full, rng=rng)
        if not (math.isfinite(energy) and np.all(np.isfinite(gradient))):
            raise ValueError("U or its gradient is not finite at theta0")
        velocity = np.zeros(d, dtype=dtype)
        step_size = learning_rate
        history = np.full(memory, -np.inf)
        history[0] = energy
        history_count, history_position, step0 = 1, 1 % memory, 0
    else:
        if not isinstance(state, OptimizerState):
            raise TypeError(f"state must be an OptimizerState, got {type(state).__name__}")
        if state.method != method:
            raise ValueError(f"state comes from method {state.method!r}, not {method!r}")
        theta = potential.check_theta(state.theta, "state.theta").copy()
        gradient = np.array(state.gradient, dtype=dtype)
        velocity = np.array(state.velocity, dtype=dtype)
        energy = float(state.energy)
        step_size = float(state.step_size)
        history = np.array(state.history, dtype=np.float64)
        if history.size != memory:
            raise ValueError(f"state has BB memory {history.size}, not {memory}")
        history_count, history_position = int(state.history_count), int(state.history_position)
        step0 = int(state.step)
        rng = np.random.default_rng()
        rng.bit_generator.state = copy.deepcopy(state.rng_state)
        if state.minibatch_state is not None and hasattr(potential, "set_minibatch_state"):
            potential.set_minibatch_state(copy.deepcopy(state.minibatch_state))

    capacity = n_steps // record_every + 2
    rec_step = np.zeros(capacity, dtype=np.int64)
    rec_energy = np.zeros(capacity)
    rec_gradient_norm = np.zeros(capacity)
    rec_step_size = np.full(capacity, np.nan)
    rec_theta = np.zeros((capacity if record_trajectory else 0, d), dtype=dtype)
    n_records = 0
    if fresh:
        rec_step[0], rec_energy[0] = 0, energy
        rec_gradient_norm[0] = float(np.linalg.norm(gradient.astype(np.float64)))
        if record_trajectory:
            rec_theta[0] = theta
        n_records = 1

    data = potential.kernel_data
    last_good_theta = theta.copy()
    last_good_velocity = velocity.copy()
    last_good_gradient = gradient.copy()
    if method == "bb":
        trial = np.empty_like(theta)
        trial_gradient = np.empty_like(theta)
        (status, steps_done, n_records, energy, step_size, history_count,
         history_position) = barzilai_borwein_kernel(
            data, theta, gradient, energy, step_size, step_min, step_max,
            history, history_count, history_position, n_steps, step0,
            record_every, tolerance_value, record_trajectory, rec_step,
            rec_energy, rec_gradient_norm, rec_step_size, rec_theta, n_records,
            trial, trial_gradient)
    else:
        status, steps_done, n_records, energy = heavy_ball_kernel(
            data, theta, velocity, gradient, energy, full, learning_rate,
            momentum, n_steps, step0, record_every, tolerance_value, rng,
            record_trajectory, rec_step, rec_energy, rec_gradient_norm,
            rec_theta, n_records, last_good_theta, last_good_velocity,
            last_good_gradient)
    energy = float(energy)

    observables = {"step": rec_step[:n_records].copy(),
                   "energy": rec_energy[:n_records].copy(),
                   "gradient_norm": rec_gradient_norm[:n_records].copy()}
    if method == "bb":
        observables["step_size"] = rec_step_size[:n_records].copy()
    trajectory = rec_theta[:n_records].copy() if record_trajectory else None
    parameters = {"learning_rate": learning_rate, "momentum": momentum,
                  "full_batch": full, "tolerance": tolerance,
                  "record_every": record_every, "seed": seed if fresh else None}
    step = step0 + steps_done

    if status == DIVERGED:
        # BB never moves to a non-finite point (the line search rejects it), only
        # its gradient can be bad; GD/SGD keep copies of the last good step.
        if method != "bb":
            theta, velocity, gradient = last_good_theta, last_good_velocity, last_good_gradient
        good_state = OptimizerState(method, theta.copy(), gradient.copy(), energy,
                                    velocity.copy(), float(step_size), history.copy(),
                                    int(history_count), int(history_position), step,
                                    copy.deepcopy(rng.bit_generator.state),
                                    _minibatch_state(potential))
        partial = OptimizationRun(theta.copy(), trajectory, observables, good_state,
                                  method, False, f"diverged at step {step + 1}",
                                  steps_done, parameters)
        raise DivergenceError(
            f"{method} diverged at step {step + 1}: non-finite theta, energy or gradient "
            f"(learning_rate={learning_rate} may be too large); the last good state is "
            f"step {step}", step + 1, good_state, partial)

    new_state = OptimizerState(method, theta.copy(), gradient.copy(), energy,
                               velocity.copy(), float(step_size), history.copy(),
                               int(history_count), int(history_position), step,
                               copy.deepcopy(rng.bit_generator.state),
                               _minibatch_state(potential))
    converged = status == CONVERGED
    if converged:
        message = f"converged: |grad U| <= {tolerance} at step {step}"
    elif status == STALLED:
        message = (f"stalled at step {step}: the line search found no decrease "
                   f"(|grad U| = {np.linalg.norm(gradient):.3e})")
        warnings.warn(f"bb {message}", RuntimeWarning, stacklevel=2)
    else:
        message = f"done {steps_done} steps"
    return OptimizationRun(theta.copy(), trajectory, observables, new_state, method,
                           converged, message, steps_done, parameters)


def _minibatch_state(potential):
    if hasattr(potential, "minibatch_state"):
        return copy.deepcopy(potential.minibatch_state())
    return None
