"""Walker ensembles: independent walkers, or ensemble quasi-Newton (EQN) preconditioning.

:func:`sample_ensemble` runs ``n_walkers`` copies of a sampler for
``π(θ) ∝ exp(-β U(θ))`` (U the total energy, β the inverse temperature, h the
step size, γ the friction).

Independent walkers (``preconditioning=None``)
----------------------------------------------
Walker i is exactly ``thermo.sample(potential, method, theta0[i],
seed=walker_seeds[i], ...)``: any registered method, bit-identical to the
separate single run with that seed.  ``seed`` may be a sequence of
``n_walkers`` integers (used as given) or one integer / None, from which the
walker seeds are derived as ``np.random.SeedSequence(seed).generate_state(
n_walkers, dtype=np.uint64)`` (exposed as ``run.walker_seeds``).

Ensemble quasi-Newton preconditioning (``preconditioning="eqn"``)
------------------------------------------------------------------
Following Matthews, Weare & Leimkuhler, "Ensemble preconditioning for Markov
chain Monte Carlo simulation" (Stat. Comput. 28, 2018), walker i moves with a
preconditioner built from the *other* walkers, over the full θ::

    C_i = Cov_{j≠i}(θ_j)        (sample covariance, divisor n-2)
    M_i = I + η C_i = B_i B_iᵀ,  B_i = chol(M_i) (lower triangular)

with η = ``eqn_strength``.  The preconditioned Langevin dynamics of walker i,
for fixed B_i::

    dθ = B p dt,   dp = -Bᵀ ∇U(θ) dt - γ p dt + sqrt(2γ/β) dW

(and overdamped ``dθ = -M ∇U dt + sqrt(2/β) B dW``) leave exp(-β U(θ) - β|p|²/2)
invariant: the Hamiltonian part conserves H = U + |p|²/2 and is
divergence-free, and no divergence (``∇·M``) correction term arises because
B_i does not depend on θ_i.  Here B_i is recomputed from the current positions
every k = ``eqn_every`` steps (at every step whose 0-based total count is a
multiple of k) and *held fixed* in between, so within a block each walker is
an ordinary constant-B scheme and needs no correction either.  The
discretisations (ξ ~ N(0, I), c = exp(-γh), σ = sqrt((1 - c²)/β),
``F = ∇U`` the force the sampler sees, a minibatch estimate for stochastic
potentials):

* ``"baoab"``::

      p ← p - (h/2) Bᵀ F(θ);  θ ← θ + (h/2) B p;  p ← c p + σ ξ;
      θ ← θ + (h/2) B p;      p ← p - (h/2) Bᵀ F(θ)

  (plain BAOAB in the coordinates z = B⁻¹θ, so Gaussian θ-marginals are
  exact for any stable h, as for BAOAB).
* ``"gla2"`` (B A B O)::

      p ← p - (h/2) Bᵀ F(θ);  θ ← θ + h B p;  p ← p - (h/2) Bᵀ F(θ);  p ← c p + σ ξ

* ``"sgld"`` (Euler–Maruyama of the overdamped dynamics)::

      θ ← θ - h B Bᵀ F(θ) + sqrt(2h/β) B ξ

With η = 0 these are BAOAB, GLA2 and SGLD.  All walkers move simultaneously,
each with the B_i of the block start.  Conditional on the other walkers'
block-start positions every walker's block is π-invariant; the joint product
measure π^⊗n is invariant exactly in the limit of continuously updated B
(MWL), while refreshing B every k steps from positions that then keep moving
couples the walkers weakly: a walker's start of block enters both its own
move and the others' factors, so π^⊗n is then not exactly invariant (the
effect vanishes as k h → 0 and shrinks as the number of walkers grows, since
one walker's weight in Cov_{j≠i} is ~1/n; it was not detectable in the tests'
z-tests).  ``eqn_scheme="split"`` removes
that coupling: the walkers are split into two halves (even and odd index)
that take turns block by block (block b = step // k moves the half of parity
b % 2); the moving walkers use ``B = chol(I + η Cov(frozen half))``
(divisor m-1) while the frozen half keeps its whole state (θ, p, cached
force).  Each block then is a π-invariant kernel for the moving half given
the frozen one, so π^⊗n (with Maxwellian momenta) is exactly invariant, up
to the integrator's own step-size bias — the ensemble analogue of a Gibbs
sweep (as in Goodman & Weare's split ensemble).  It moves half the walkers
per step.  TATi applied the preconditioning
per layer and inconsistently; here it is over the full θ for every walker.

Cost: O(n d²) per step and O(n d³) per refresh, memory n d² (the factors).
All walkers draw from one generator (walker by walker, each step).  A
stochastic potential's minibatch state is shared by the walkers.

Results
-------
:class:`EnsembleRun` with ``theta`` (n_walkers, d), ``trajectory``
(n_walkers, n_records, d) or None, ``observables`` (``step`` (n_records,),
every other name (n_walkers, n_records)), ``state`` and ``walker_seeds``
(independent walkers).  Records follow :func:`thermo.sample`: after every step
whose total count is a multiple of ``record_every``.  Chunked equals whole:
``sample_ensemble(..., state=run.state)`` continues bit for bit.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)
from thermo.potentials.base import Potential, energy_gradient
from thermo.samplers._framework import DivergenceError, sample
from thermo.samplers._solvers import ornstein_uhlenbeck_coefficients

__all__ = ["sample_ensemble", "EnsembleRun", "EQNState", "walker_seeds",
           "leave_one_out_factors", "EQN_METHODS"]

EQN_METHODS = {"baoab": 0, "gla2": 1, "sgld": 2}
EQN_OBSERVABLES = ("energy", "kinetic_energy", "kinetic_temperature", "gradient_norm")


class EQNState(NamedTuple):
    """State of an EQN ensemble after ``step`` steps.

    Attributes
    ----------
    method : str
        "baoab", "gla2" or "sgld".
    theta, momentum, gradient : ndarray, shape (n_walkers, d)
        Positions, momenta and cached gradients ∇U(θ_i) as used.
    energy : ndarray, shape (n_walkers,)
        U(θ_i) as used.
    factors : ndarray, shape (n_walkers, d, d)
        The current lower-triangular B_i.
    kinetic : ndarray, shape (n_walkers,)
        |p_i|² right after walker i's last O step (what frozen walkers of the
        split scheme report).
    step : int
        Total completed steps.
    rng_state : dict
        State of the ensemble's generator.
    minibatch_state : object
        The potential's minibatch state (None for deterministic potentials).

    Examples
    --------
    >>> from thermo.potentials import Gaussian
    >>> run = sample_ensemble(Gaussian(np.zeros(2)), "baoab", theta0=np.zeros((4, 2)),
    ...                       n_steps=10, step_size=0.1, seed=0, preconditioning="eqn")
    >>> state = run.state
    >>> type(state).__name__, state.step, state.factors.shape
    ('EQNState', 10, (4, 2, 2))
    """
    method: str
    theta: np.ndarray
    momentum: np.ndarray
    gradient: np.ndarray
    energy: np.ndarray
    factors: np.ndarray
    kinetic: np.ndarray
    step: int
    rng_state: object = None
    minibatch_state: object = None


@dataclass
class EnsembleRun:
    """Result of :func:`sample_ensemble` (see the module docstring).

    Attributes
    ----------
    method : str
        The sampler.
    preconditioning : None or str
        None (independent walkers) or "eqn".
    trajectory : ndarray, shape (n_walkers, n_records, d), or None
        θ of every walker at every record (``record_trajectory=True``).
    observables : dict of str -> ndarray
        ``step`` (n_records,), every other name (n_walkers, n_records).
    state : tuple of walker states or EQNState
        Pass as ``state=`` to continue bit for bit.
    parameters : dict
        The run's parameters.
    walker_seeds : tuple of int or None
        Seeds of independent walkers (:func:`walker_seeds`).
    runs : list of Run or None
        The walkers' single runs (independent walkers).

    Examples
    --------
    >>> from thermo.potentials import Gaussian
    >>> run = sample_ensemble(Gaussian(np.zeros(2)), "sgld", theta0=np.zeros((3, 2)),
    ...                       n_steps=100, step_size=0.01, seed=1, record_every=50)
    >>> run.n_walkers, run.theta.shape, run.observables["energy"].shape
    (3, (3, 2), (3, 2))
    """
    method: str
    preconditioning: object
    trajectory: np.ndarray | None
    observables: dict
    state: object
    parameters: dict
    walker_seeds: tuple | None = None
    runs: list | None = None

    @property
    def theta(self):
        """(n_walkers, d) positions after the last step."""
        if isinstance(self.state, EQNState):
            return self.state.theta
        return np.stack([s.theta for s in self.state])

    @property
    def n_walkers(self):
        return self.theta.shape[0]


def walker_seeds(seed, n_walkers):
    """Integer seeds of the walkers: ``SeedSequence(seed).generate_state(n, uint64)``.

    Parameters
    ----------
    seed : int or None
        Seed of the ensemble (None: fresh entropy).
    n_walkers : int
        Number of walkers.

    Returns
    -------
    tuple of int
        One seed per walker, as :func:`sample_ensemble` derives them.

    Examples
    --------
    >>> walker_seeds(0, 3)
    (15793235383387715774, 12390638538380655177, 2361836109651742017)
    """
    states = np.random.SeedSequence(seed).generate_state(n_walkers, dtype=np.uint64)
    return tuple(int(s) for s in states)


# ------------------------------------------------------------------ kernels
@njit(cache=True)
def leave_one_out_factors(theta, strength, factors):
    """B_i = chol(I + η Cov_{j≠i}(θ_j)) for every walker i, written into ``factors``.

    With y_j = θ_j - mean_all and S = Σ_j y_j y_jᵀ the leave-one-out
    covariance (divisor n-2) is ``(S - n/(n-1) y_i y_iᵀ)/(n-2)``.

    Parameters
    ----------
    theta : ndarray, shape (n_walkers, d), float64
        Positions of the walkers (n_walkers >= 3).
    strength : float
        η >= 0.
    factors : ndarray, shape (n_walkers, d, d), float64
        Output: the lower-triangular B_i.

    Examples
    --------
    >>> theta = np.random.default_rng(0).standard_normal((5, 2))
    >>> factors = np.zeros((5, 2, 2))
    >>> leave_one_out_factors(theta, 1.0, factors)
    >>> others = np.delete(theta, 0, axis=0)
    >>> expected = np.eye(2) + np.cov(others, rowvar=False)
    >>> np.allclose(factors[0] @ factors[0].T, expected)
    True
    """
    n, d = theta.shape
    mean = np.zeros(d)
    for j in range(n):
        for a in range(d):
            mean[a] += theta[j, a]
    mean /= n
    centred = np.empty((n, d))
    for j in range(n):
        for a in range(d):
            centred[j, a] = theta[j, a] - mean[a]
    scatter = centred.T @ centred
    matrix = np.empty((d, d))
    weight = n / (n - 1.0)
    for i in range(n):
        for a in range(d):
            for b in range(d):
                cov = (scatter[a, b] - weight * centred[i, a] * centred[i, b]) / (n - 2.0)
                matrix[a, b] = strength * cov
            matrix[a, a] += 1.0
        factor = np.linalg.cholesky(matrix)
        for a in range(d):
            for b in range(d):
                factors[i, a, b] = factor[a, b]


@njit(cache=True)
def split_factors(theta, strength, factors, moving):
    """B = chol(I + η Cov(θ_j : j % 2 != moving)) for every walker i with i % 2 == moving.

    The "split" scheme: the moving half is preconditioned with the sample
    covariance (divisor m-1) of the other, frozen half.
    """
    n, d = theta.shape
    count = 0
    mean = np.zeros(d)
    for j in range(n):
        if j % 2 != moving:
            count += 1
            for a in range(d):
                mean[a] += theta[j, a]
    mean /= count
    matrix = np.zeros((d, d))
    for j in range(n):
        if j % 2 != moving:
            for a in range(d):
                ya = theta[j, a] - mean[a]
                for b in range(d):
                    matrix[a, b] += ya * (theta[j, b] - mean[b])
    for a in range(d):
        for b in range(d):
            matrix[a, b] *= strength / (count - 1.0)
        matrix[a, a] += 1.0
    factor = np.linalg.cholesky(matrix)
    for i in range(n):
        if i % 2 == moving:
            for a in range(d):
                for b in range(d):
                    factors[i, a, b] = factor[a, b]


@njit(cache=True)
def _lower(factor, x, out):
    """out = B x, B lower triangular."""
    d = x.size
    for a in range(d):
        total = 0.0
        for b in range(a + 1):
            total += factor[a, b] * x[b]
        out[a] = total


@njit(cache=True)
def _lower_transpose(factor, x, out):
    """out = Bᵀ x, B lower triangular."""
    d = x.size
    for a in range(d):
        total = 0.0
        for b in range(a, d):
            total += factor[b, a] * x[b]
        out[a] = total


@njit(cache=True)
def eqn_kernel(potential_data, theta, momentum, gradient, energy, factors, kinetic,
               first_step,
               n_steps, scheme, step_size, beta, friction, strength, every, split, rng,
               records, trajectory, record_every):
    """``n_steps`` EQN steps of all walkers (equations in the module docstring).

    ``theta``, ``momentum``, ``gradient`` (n, d), ``energy``, ``kinetic`` (n,)
    and ``factors`` (n, d, d) are the state (not modified; the new state is
    returned).  ``records`` (rows, n, 4) receives energy, kinetic energy,
    kinetic temperature (after the O step; NaN for SGLD) and |∇U|;
    ``trajectory`` (rows or 0, n, d) θ.  ``split``: only the walkers of
    parity ``(step // every) % 2`` move, preconditioned by the other half.  A step is accepted only when every
    walker's θ, p, U and ∇U are finite.

    Returns (theta, momentum, gradient, energy, factors, kinetic, steps_done,
    rows_written, diverged).
    """
    n, d = theta.shape
    h = step_size
    half = 0.5 * h
    c, sigma = ornstein_uhlenbeck_coefficients(friction, step_size, beta)
    sgld_noise = 0.0 if math.isinf(beta) else math.sqrt(2.0 * h / beta)
    theta = theta.copy()
    momentum = momentum.copy()
    gradient = gradient.copy()
    energy = energy.copy()
    factors = factors.copy()
    kinetic = kinetic.copy()
    theta_new = np.empty_like(theta)
    momentum_new = np.empty_like(momentum)
    gradient_new = np.empty_like(gradient)
    energy_new = np.empty_like(energy)
    force = np.empty(d)
    velocity = np.empty(d)
    noise = np.empty(d)
    kinetic_new = kinetic.copy()
    rows = 0
    done = 0
    diverged = False
    for s in range(n_steps):
        moving = ((first_step + s) // every) % 2
        if (first_step + s) % every == 0:
            if split:
                split_factors(theta, strength, factors, moving)
            else:
                leave_one_out_factors(theta, strength, factors)
        finite = True
        for i in range(n):
            if split and i % 2 != moving:       # frozen half: state unchanged
                for a in range(d):
                    theta_new[i, a] = theta[i, a]
                    momentum_new[i, a] = momentum[i, a]
                    gradient_new[i, a] = gradient[i, a]
                energy_new[i] = energy[i]
                kinetic_new[i] = kinetic[i]
                continue
            factor = factors[i]
            p = momentum_new[i]
            q = theta_new[i]
            g = gradient_new[i]
            if scheme == 0:                                    # BAOAB
                _lower_transpose(factor, gradient[i], force)
                for a in range(d):
                    p[a] = momentum[i, a] - half * force[a]    # B
                _lower(factor, p, velocity)
                for a in range(d):
                    q[a] = theta[i, a] + half * velocity[a]    # A
                squared = 0.0
                for a in range(d):
                    p[a] = c * p[a] + sigma * rng.standard_normal()   # O
                    squared += p[a] * p[a]
                kinetic_new[i] = squared
                _lower(factor, p, velocity)
                for a in range(d):
                    q[a] += half * velocity[a]                 # A
                energy_new[i] = energy_gradient(potential_data, q, g, rng)
                _lower_transpose(factor, g, force)
                for a in range(d):
                    p[a] -= half * force[a]                    # B
            elif scheme == 1:                                  # GLA2: B A B O
                _lower_transpose(factor, gradient[i], force)
                for a in range(d):
                    p[a] = momentum[i, a] - half * force[a]    # B
                _lower(factor, p, velocity)
                for a in range(d):
                    q[a] = theta[i, a] + h * velocity[a]       # A
                energy_new[i] = energy_gradient(potential_data, q, g, rng)
                _lower_transpose(factor, g, force)
                squared = 0.0
                for a in range(d):
                    p[a] -= half * force[a]                    # B
                    p[a] = c * p[a] + sigma * rng.standard_normal()   # O
                    squared += p[a] * p[a]
                kinetic_new[i] = squared
            else:                                              # SGLD
                _lower_transpose(factor, gradient[i], force)
                for a in range(d):
                    noise[a] = sgld_noise * rng.standard_normal()
                    force[a] = h * force[a] - noise[a]         # Bᵀ(hF) - sqrt(2h/β) ξ
                _lower(factor, force, velocity)
                for a in range(d):
                    q[a] = theta[i, a] - velocity[a]
                    p[a] = 0.0
                energy_new[i] = energy_gradient(potential_data, q, g, rng)
                kinetic_new[i] = np.nan
            if not np.isfinite(energy_new[i]):
                finite = False
            for a in range(d):
                if not (np.isfinite(q[a]) and np.isfinite(g[a]) and np.isfinite(p[a])):
                    finite = False
        if not finite:
            diverged = True
            break
        theta, theta_new = theta_new, theta
        momentum, momentum_new = momentum_new, momentum
        gradient, gradient_new = gradient_new, gradient
        energy, energy_new = energy_new, energy
        kinetic, kinetic_new = kinetic_new, kinetic
        done += 1
        step = first_step + done
        if step % record_every == 0:
            for i in range(n):
                norm = 0.0
                for a in range(d):
                    norm += gradient[i, a] * gradient[i, a]
                records[rows, i, 0] = energy[i]
                records[rows, i, 1] = 0.5 * kinetic[i]
                records[rows, i, 2] = kinetic[i] / d
                records[rows, i, 3] = math.sqrt(norm)
                if trajectory.shape[0] > 0:
                    for a in range(d):
                        trajectory[rows, i, a] = theta[i, a]
            rows += 1
    return theta, momentum, gradient, energy, factors, kinetic, done, rows, diverged


# ------------------------------------------------------------------ driver
def _check_walkers(potential, theta0):
    theta0 = np.asarray(theta0)
    if theta0.ndim != 2:
        raise ValueError(f"theta0 must have shape (n_walkers, d), got {theta0.shape}")
    return np.stack([potential.check_theta(row, f"theta0[{i}]")
                     for i, row in enumerate(theta0)])


def sample_ensemble(potential, method, theta0=None, *, n_steps, step_size, beta=1.0,
                    friction=1.0, seed=None, record_every=1, record_trajectory=False,
                    preconditioning=None, eqn_strength=1.0, eqn_every=1,
                    eqn_scheme="simultaneous", state=None, **options):
    """Sample exp(-β U) with an ensemble of walkers (see the module docstring).

    Parameters
    ----------
    potential : thermo.potentials.Potential
        U(θ), the total energy.
    method : str
        Any registered sampler for independent walkers; "baoab", "gla2" or
        "sgld" with ``preconditioning="eqn"``.
    theta0 : array_like, shape (n_walkers, d)
        Start points (not with ``state``).
    n_steps : int
        Steps of every walker.
    step_size, beta, friction : float
        h, β, γ (γ unused by "sgld").
    seed : int, sequence of ints or None
        Independent walkers: a sequence gives each walker's seed; an int
        (or None) derives them (:func:`walker_seeds`).  EQN: the seed of the
        one generator of the ensemble.
    record_every : int
        Record after every step whose total count is a multiple of it.
    record_trajectory : bool
        Keep θ of every walker at every record.
    preconditioning : None or "eqn"
        Independent walkers or ensemble quasi-Newton preconditioning.
    eqn_strength : float
        η >= 0 in ``M_i = I + η Cov_{j≠i}``.
    eqn_every : int
        k, steps between recomputations of the factors B_i.
    eqn_scheme : {"simultaneous", "split"}
        All walkers move with B_i from Cov_{j≠i} (default), or the exact
        split-ensemble variant: the halves (even / odd walker index) take
        turns, block by block, the moving half preconditioned by the frozen
        half's covariance (see the module docstring).
    state : state of an earlier ensemble run
        ``run.state`` (a tuple of walker states, or an :class:`EQNState`).
    **options
        Passed to :func:`thermo.sample` for independent walkers (e.g.
        ``n_leapfrog`` for HMC); none for EQN.

    Returns
    -------
    EnsembleRun

    Examples
    --------
    Three independent SGLD walkers, each identical to its own single run:

    >>> import thermo
    >>> from thermo.potentials import Gaussian
    >>> target = Gaussian(np.zeros(2))
    >>> run = sample_ensemble(target, "sgld", theta0=np.zeros((3, 2)), n_steps=100,
    ...                       step_size=0.01, seed=1, record_every=50)
    >>> run.observables["step"], run.theta.shape
    (array([ 50, 100]), (3, 2))
    >>> single = thermo.sample(target, "sgld", theta0=np.zeros(2), n_steps=100,
    ...                        step_size=0.01, seed=run.walker_seeds[1])
    >>> np.array_equal(single.theta, run.theta[1])
    True

    Raises
    ------
    ValueError, TypeError
        Bad input, before any step.
    thermo.DivergenceError
        A walker became non-finite (EQN: ``.step`` names the step,
        ``.last_good_state`` the ensemble state before it; independent
        walkers: the walker's own error, with ``.walker`` set).
    """
    if not isinstance(potential, Potential):
        raise TypeError(f"potential must be a thermo Potential, got {type(potential).__name__}")
    if "bias" in options:
        raise ValueError("sample_ensemble does not support a bias (a stateful bias would be "
                         "shared by the walkers); run thermo.sample per walker instead")
    if preconditioning is None:
        return _independent(potential, method, theta0, n_steps, step_size, beta, friction,
                            seed, record_every, record_trajectory, state, options)
    if preconditioning != "eqn":
        raise ValueError(f"preconditioning must be None or 'eqn', got {preconditioning!r}")
    return _eqn(potential, method, theta0, n_steps, step_size, beta, friction, seed,
                record_every, record_trajectory, eqn_strength, eqn_every, eqn_scheme,
                state, options)


def _independent(potential, method, theta0, n_steps, step_size, beta, friction, seed,
                 record_every, record_trajectory, state, options):
    if state is None:
        if theta0 is None:
            raise ValueError("theta0 (n_walkers, d) is required (or state= to continue)")
        start = _check_walkers(potential, theta0)
        n_walkers = start.shape[0]
        if isinstance(seed, (list, tuple, np.ndarray)):
            seeds = tuple(int(s) for s in seed)
            if len(seeds) != n_walkers:
                raise ValueError(f"seed has {len(seeds)} entries for {n_walkers} walkers")
        else:
            seeds = walker_seeds(seed, n_walkers)
        starts = [dict(theta0=start[i], seed=seeds[i]) for i in range(n_walkers)]
    else:
        if theta0 is not None or seed is not None:
            raise ValueError("give either theta0/seed or state, not both")
        if not isinstance(state, tuple) or isinstance(state, EQNState):
            raise TypeError("state of independent walkers must be the tuple run.state")
        seeds = None
        starts = [dict(state=s) for s in state]
    runs = []
    for i, start_kwargs in enumerate(starts):
        try:
            runs.append(sample(potential, method, n_steps=n_steps, step_size=step_size,
                               beta=beta, friction=friction, record_every=record_every,
                               record_trajectory=record_trajectory, **start_kwargs,
                               **options))
        except DivergenceError as error:
            error.walker = i
            raise
    observables = {"step": runs[0].observables["step"]}
    for name in runs[0].observables:
        if name != "step":
            observables[name] = np.stack([r.observables[name] for r in runs])
    trajectory = (np.stack([r.trajectory for r in runs]) if record_trajectory else None)
    parameters = dict(runs[0].parameters)
    parameters.pop("seed", None)
    return EnsembleRun(method, None, trajectory, observables,
                       tuple(r.state for r in runs), parameters, seeds, runs)


def _eqn(potential, method, theta0, n_steps, step_size, beta, friction, seed, record_every,
         record_trajectory, strength, every, scheme, state, options):
    if scheme not in ("simultaneous", "split"):
        raise ValueError(f"eqn_scheme must be 'simultaneous' or 'split', got {scheme!r}")
    split = scheme == "split"
    if method not in EQN_METHODS:
        raise ValueError(f"EQN preconditioning is defined for {sorted(EQN_METHODS)}, "
                         f"not {method!r}")
    if options:
        raise TypeError(f"unknown option(s) {sorted(options)} for EQN ensembles")
    for name, value in (("n_steps", n_steps), ("record_every", record_every),
                        ("eqn_every", every)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {value!r}")
    if n_steps < 0 or record_every < 1 or every < 1:
        raise ValueError("need n_steps >= 0, record_every >= 1, eqn_every >= 1")
    step_size, beta, friction, strength = (float(step_size), float(beta), float(friction),
                                           float(strength))
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be finite and > 0, got {step_size}")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if not (math.isfinite(friction) and friction >= 0):
        raise ValueError(f"friction must be finite and >= 0, got {friction}")
    if method in ("baoab", "gla2") and not friction > 0:
        raise ValueError(f"friction must be > 0 for {method!r}")
    if not (math.isfinite(strength) and strength >= 0):
        raise ValueError(f"eqn_strength must be finite and >= 0, got {strength}")
    dtype = potential.dtype
    if state is None:
        if theta0 is None:
            raise ValueError("theta0 (n_walkers, d) is required (or state= to continue)")
        if isinstance(seed, (list, tuple, np.ndarray)):
            raise TypeError("EQN ensembles use one generator: seed must be an int or None")
        theta = _check_walkers(potential, theta0)
        n_walkers, d = theta.shape
        if n_walkers < (4 if split else 3):
            raise ValueError(f"EQN needs at least {4 if split else 3} walkers (covariance "
                             f"of the others), got {n_walkers}")
        rng = np.random.default_rng(seed)
        if hasattr(potential, "reset_minibatch_state"):
            potential.reset_minibatch_state()
        scale = 0.0 if math.isinf(beta) else 1.0 / math.sqrt(beta)
        momentum = np.zeros((n_walkers, d), dtype=dtype)
        if method != "sgld":
            momentum[:] = rng.standard_normal((n_walkers, d)) * scale
        gradient = np.empty_like(theta)
        energy = np.empty(n_walkers)
        for i in range(n_walkers):
            energy[i], gradient[i] = potential.energy_and_gradient(theta[i], full=False,
                                                                   rng=rng)
        if not np.all(np.isfinite(energy)):
            raise ValueError("U(theta0) is not finite for some walker")
        factors = np.zeros((n_walkers, d, d))
        kinetic = (np.full(n_walkers, np.nan) if method == "sgld"
                   else np.sum(momentum.astype(np.float64) ** 2, axis=1))
        state = EQNState(method, theta, momentum, gradient, energy, factors, kinetic, 0)
    else:
        if theta0 is not None or seed is not None:
            raise ValueError("give either theta0/seed or state, not both")
        if not isinstance(state, EQNState):
            raise TypeError("state must be the EQNState of an EQN ensemble run")
        if state.method != method:
            raise ValueError(f"state comes from method {state.method!r}, not {method!r}")
        rng = np.random.default_rng()
        rng.bit_generator.state = copy.deepcopy(state.rng_state)
        if state.minibatch_state is not None and hasattr(potential, "set_minibatch_state"):
            potential.set_minibatch_state(copy.deepcopy(state.minibatch_state))
        n_walkers, d = state.theta.shape
    first = int(state.step)
    n_rows = (first + n_steps) // record_every - first // record_every
    records = np.full((n_rows, n_walkers, len(EQN_OBSERVABLES)), np.nan)
    trajectory = np.zeros((n_rows if record_trajectory else 0, n_walkers, d), dtype=dtype)
    (theta, momentum, gradient, energy, factors, kinetic, done, rows,
     diverged) = eqn_kernel(
        potential.kernel_data, state.theta, state.momentum, state.gradient, state.energy,
        state.factors, state.kinetic, first, int(n_steps), EQN_METHODS[method], step_size, beta,
        friction, strength, int(every), split, rng, records, trajectory,
        int(record_every))
    minibatch_state = (copy.deepcopy(potential.minibatch_state())
                       if hasattr(potential, "minibatch_state") else None)
    new_state = EQNState(method, theta, momentum, gradient, energy, factors, kinetic,
                         first + int(done), copy.deepcopy(rng.bit_generator.state),
                         minibatch_state)
    steps = (np.arange(first // record_every + 1, first // record_every + rows + 1,
                       dtype=np.int64) * record_every)
    observables = {"step": steps}
    for k, name in enumerate(EQN_OBSERVABLES):
        if method == "sgld" and name in ("kinetic_energy", "kinetic_temperature"):
            continue
        observables[name] = np.ascontiguousarray(records[:rows, :, k].T)
    traj = (np.ascontiguousarray(trajectory[:rows].transpose(1, 0, 2))
            if record_trajectory else None)
    parameters = {"step_size": step_size, "beta": beta, "friction": friction,
                  "eqn_strength": strength, "eqn_every": int(every), "eqn_scheme": scheme,
                  "record_every": record_every, "seed": seed}
    run = EnsembleRun(method, "eqn", traj, observables, new_state, parameters)
    if diverged:
        raise DivergenceError(
            f"EQN {method} diverged at step {new_state.step + 1}: non-finite θ, energy or "
            f"force of some walker (step_size={step_size} may be too large); the last good "
            f"state is step {new_state.step}", new_state.step + 1, new_state, run)
    return run
