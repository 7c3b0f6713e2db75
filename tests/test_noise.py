"""Blocked noise vectors (thermo.samplers.noise): exact, thread-independent, N(0, I).

The blocked path (d ≥ BLOCKED_FROM) replaces one Generator call per entry by
NOISE_BLOCKS inline SFC64 streams seeded from the Generator.  Checked here:
bit-identity with the NumPy-only reference, independence of the thread
count, the distribution (KS, moments, no correlation between blocks or
calls, with a negative control that a shared seed would fail), and a
sampler on a high-dimensional Gaussian matching its exact discrete
stationary variance.
"""
from typing import NamedTuple

import numba
import numpy as np
import pytest
from numba import njit
from scipy import stats

import thermo
from thermo.potentials import Potential, register
from thermo.samplers import noise
from thermo.samplers.noise import (BLOCKED_FROM, LANES, NOISE_BLOCKS, PARALLEL_FROM,
                                   reference_standard_normals, standard_normals)

from test_samplers_helpers import discrete_covariance


@pytest.mark.parametrize("size", [1, 7, BLOCKED_FROM - 1, BLOCKED_FROM, BLOCKED_FROM + 1,
                                  BLOCKED_FROM + 3, 7850, PARALLEL_FROM - 1, PARALLEL_FROM,
                                  79_510])
def test_kernel_equals_numpy_reference(size):
    kernel_rng = np.random.default_rng(size)
    reference_rng = np.random.default_rng(size)
    out = np.empty(size)
    for _ in range(3):                      # successive calls stay in step
        standard_normals(kernel_rng, out)
        expected = reference_standard_normals(reference_rng, size)
        assert np.array_equal(out, expected)
        assert kernel_rng.bit_generator.state == reference_rng.bit_generator.state


def test_serial_and_parallel_block_filling_agree():
    seeds = np.random.default_rng(3).integers(0, 2**63 - 1, LANES * NOISE_BLOCKS).astype(np.uint64)
    for size in (BLOCKED_FROM, 7850, 50_001):
        serial = np.empty(size)
        parallel = np.empty(size)
        noise._fill_blocks_serial(serial, seeds)
        noise._fill_blocks(parallel, seeds)
        assert np.array_equal(serial, parallel)


def test_short_vectors_are_the_generators_own_draws():
    out = np.empty(BLOCKED_FROM - 1)
    standard_normals(np.random.default_rng(5), out)
    assert np.array_equal(out, np.random.default_rng(5).standard_normal(out.size))


def test_blocked_draws_do_not_depend_on_the_thread_count():
    size = 50_000
    results = []
    previous = numba.get_num_threads()
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            out = np.empty(size)
            standard_normals(np.random.default_rng(9), out)
            results.append(out)
    finally:
        numba.set_num_threads(previous)
    assert all(np.array_equal(results[0], other) for other in results[1:])


def test_blocked_draws_are_standard_normal_and_uncorrelated():
    size = NOISE_BLOCKS * 10_000
    rng = np.random.default_rng(2024)
    first = np.empty(size)
    second = np.empty(size)
    standard_normals(rng, first)
    standard_normals(rng, second)
    both = np.concatenate([first, second])
    assert stats.kstest(both, "norm").pvalue > 1e-4
    n = both.size
    assert abs(both.mean()) < 4.0 / np.sqrt(n)
    assert abs(both.var() - 1.0) < 4.0 * np.sqrt(2.0 / n)
    # blocks of one vector, and the same block in two calls: |corr| ~ 1/sqrt(10,000)
    blocks = first.reshape(NOISE_BLOCKS, -1)
    correlation = np.corrcoef(blocks)[np.triu_indices(NOISE_BLOCKS, 1)]
    bound = 5.0 / np.sqrt(blocks.shape[1])
    assert np.max(np.abs(correlation)) < bound
    assert abs(np.corrcoef(first, second)[0, 1]) < 5.0 / np.sqrt(size)
    # the four lanes of a block interleave (lane j at positions j, j + 4, ...):
    # neighbours come from different lanes and must not be correlated
    for lag in range(1, 2 * LANES + 1):
        assert abs(np.corrcoef(first[:-lag], first[lag:])[0, 1]) < 5.0 / np.sqrt(size)


def test_lag_check_catches_lanes_sharing_a_stream():
    # negative control: four lanes drawing the same stream would repeat each
    # draw four times in a row, which the lag-1 check above fails
    draws = np.repeat(np.random.default_rng(1).standard_normal(NOISE_BLOCKS * 2_500), LANES)
    assert abs(np.corrcoef(draws[:-1], draws[1:])[0, 1]) > 5.0 / np.sqrt(draws.size)


def test_correlation_check_catches_shared_seeds():
    # negative control: streams sharing one state (the bug the per-block
    # seeds prevent) are perfectly correlated and fail the bound above
    size = NOISE_BLOCKS * 10_000
    rng = np.random.default_rng(2024)
    block = reference_standard_normals(rng, size)[: size // NOISE_BLOCKS]
    blocks = np.tile(block, (NOISE_BLOCKS, 1))
    correlation = np.corrcoef(blocks)[np.triu_indices(NOISE_BLOCKS, 1)]
    assert np.max(np.abs(correlation)) > 5.0 / np.sqrt(blocks.shape[1])


class _DiagonalData(NamedTuple):
    stiffness: np.ndarray


def _diagonal_energy_gradient(data, theta, gradient, rng):
    energy = 0.0
    for i in range(theta.size):
        gradient[i] = data.stiffness[i] * theta[i]
        energy += 0.5 * data.stiffness[i] * theta[i] * theta[i]
    return energy


register(_DiagonalData, _diagonal_energy_gradient)


class _Diagonal(Potential):
    """U = Σ k_i θ_i² / 2: d independent 1-D Gaussians, one check per component."""

    def __init__(self, stiffness):
        stiffness = np.ascontiguousarray(stiffness, dtype=np.float64)
        super().__init__(stiffness.size, _DiagonalData(stiffness))


@pytest.mark.parametrize("method", ["baoab", "sgld",
                                    pytest.param("gla2", marks=pytest.mark.slow),
                                    pytest.param("overdamped", marks=pytest.mark.slow)])
def test_high_dimensional_gaussian_matches_discrete_variance(method):
    # d = 8192 ≥ BLOCKED_FROM: the blocked noise path.  Stiffness 1 and 4 on
    # alternating components, so every block holds both.  Each component's
    # time average of θ² is one replica; 4096 replicas per stiffness give a
    # z-test of the exact discrete stationary variance of the scheme.
    d = 8192
    stiffness = np.where(np.arange(d) % 2 == 0, 1.0, 4.0)
    beta, step_size, friction = 2.0, 0.2, 1.0
    run = thermo.sample(_Diagonal(stiffness), method, theta0=np.zeros(d), n_steps=6000,
                        step_size=step_size, beta=beta, friction=friction, seed=3,
                        record_every=10, record_trajectory=True)
    squares = run.trajectory[100:] ** 2            # burn-in of 1000 steps
    per_component = squares.mean(axis=0)
    for k in (1.0, 4.0):
        reference, _ = discrete_covariance(method, np.array([[k]]), step_size, beta, friction)
        values = per_component[stiffness == k]
        z = (values.mean() - reference[0, 0]) / (values.std(ddof=1) / np.sqrt(values.size))
        print(f"{method} k={k}: {values.mean():.5f} vs {reference[0, 0]:.5f}, z = {z:.2f}")
        assert abs(z) < 4.0
        if method == "sgld":
            # power: SGLD's O(h) bias is visible against the continuous target 1/(βk)
            z_continuous = ((values.mean() - 1.0 / (beta * k))
                            / (values.std(ddof=1) / np.sqrt(values.size)))
            assert abs(z_continuous) > 8.0


@njit(cache=True)
def _draw_many(rng, out, n):
    for _ in range(n):
        standard_normals(rng, out)


def test_standard_normals_can_be_called_from_jitted_code():
    rng = np.random.default_rng(1)
    out = np.empty(BLOCKED_FROM)
    _draw_many(rng, out, 3)
    reference_rng = np.random.default_rng(1)
    for _ in range(3):
        expected = reference_standard_normals(reference_rng, out.size)
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("method", ["baoab", "sgld"])
def test_blocked_noise_runs_resume_and_rechunk_bit_for_bit(method):
    # the Generator is the only random state: resuming from run.state and
    # other chunk sizes continue the same trajectory on the blocked path
    d = 8192
    potential = _Diagonal(np.linspace(1.0, 4.0, d))
    options = dict(step_size=0.1, beta=1.0, friction=1.0)
    whole = thermo.sample(potential, method, theta0=np.zeros(d), n_steps=40, seed=7, **options)
    half = thermo.sample(potential, method, theta0=np.zeros(d), n_steps=20, seed=7, **options)
    resumed = thermo.sample(potential, method, state=half.state, n_steps=20, **options)
    rechunked = thermo.sample(potential, method, theta0=np.zeros(d), n_steps=40, seed=7,
                              chunk_steps=7, **options)
    assert np.array_equal(whole.state.theta, resumed.state.theta)
    assert np.array_equal(whole.state.theta, rechunked.state.theta)
    assert whole.state.rng_state == resumed.state.rng_state
    other_seed = thermo.sample(potential, method, theta0=np.zeros(d), n_steps=40, seed=8,
                               **options)
    assert not np.array_equal(whole.state.theta, other_seed.state.theta)
