"""Exact Gaussian references for the Langevin samplers.

For U = ½ θᵀPθ every scheme is a linear map z ← M z + noise, whose
stationary covariance solves a discrete Lyapunov equation
(``test_samplers_helpers.discrete_covariance``).  BAOAB's is exactly the
target P⁻¹/β in θ; SGLD, GLA1, GLA2 and the overdamped scheme have their own
h-dependent covariances (the overdamped Leimkuhler–Matthews scheme is
exact too, as BAOAB's high-friction limit), which the long-run sample covariance must match.
z-scores use Monte-Carlo errors from the integrated autocorrelation time.
The entries of one run are strongly correlated (a slow fluctuation moves
many at once), so each independent replica is one test at the 99% level
(family-wise: Bonferroni over its m entries), and across replicas at most
max(1, R/20) of the R replicas may fail.
"""
import numpy as np
import pytest
from scipy.stats import norm

import thermo
from thermo.potentials.analytic import Gaussian, NoisyGaussian
from thermo.samplers import register_sampler
from thermo.samplers._framework import ChunkResult
from thermo.samplers import sgld as sgld_module
from thermo.samplers.overdamped import overdamped_kernel

from test_samplers_helpers import (Z99, correlated_covariance, discrete_covariance,
                                   mean_and_error, second_moment_z_scores)

BETA = 2.0
FRICTION = 1.0
COVARIANCE_2 = np.array([[1.0, 0.6], [0.6, 2.0]])
COVARIANCE_10 = correlated_covariance(10, seed=3)
SEEDS = (11, 12, 13, 14)


def allowed_failures(n_replicas):
    return max(1, n_replicas // 20)


def replica_fails(scores, level=0.99):
    """Family-wise test of one replica's m z-scores at ``level`` (Bonferroni)."""
    critical = norm.ppf(1.0 - (1.0 - level) / (2 * len(scores)))
    return bool(np.max(np.abs(scores)) > critical)


def covariance_z_scores(method, covariance, step_size, seed, n_steps, record_every=5,
                        burn_in=2000, reference=None):
    potential = Gaussian(np.zeros(len(covariance)), covariance)
    run = thermo.sample(potential, method, theta0=np.zeros(potential.dimension),
                        n_steps=n_steps, step_size=step_size, beta=BETA, friction=FRICTION,
                        seed=seed, record_every=record_every, record_trajectory=True)
    if reference is None:
        reference, _ = discrete_covariance(method, potential.precision, step_size, BETA,
                                           FRICTION)
    return second_moment_z_scores(run.trajectory[burn_in:], 0.0, reference)


def test_discrete_references_are_meaningful():
    precision = np.linalg.inv(COVARIANCE_10)
    target = COVARIANCE_10 / BETA
    for method in ("baoab", "overdamped"):
        # BAOAB, and its γ → ∞ limit, are exact in θ for Gaussians
        exact, _ = discrete_covariance(method, precision, 0.2, BETA, FRICTION)
        np.testing.assert_allclose(exact, target, atol=1e-10)
    for method in ("sgld", "gla1", "gla2"):
        reference, _ = discrete_covariance(method, precision, 0.2, BETA, FRICTION)
        assert np.max(np.abs(reference - target)) > 1e-3, method


@pytest.mark.parametrize("method", ["baoab", "sgld", "gla1", "gla2", "overdamped"])
@pytest.mark.parametrize("dimension", [2, 10])
def test_covariance_matches_discrete_stationary_covariance(method, dimension):
    covariance = COVARIANCE_2 if dimension == 2 else COVARIANCE_10
    replicas = [covariance_z_scores(method, covariance, 0.2, seed, 200_000) for seed in SEEDS]
    failures = sum(replica_fails(scores) for scores in replicas)
    print(f"{method} d={dimension}: max |z| per replica "
          f"{[round(float(np.max(np.abs(z))), 2) for z in replicas]}, "
          f"{failures}/{len(replicas)} replicas fail")
    assert failures <= allowed_failures(len(replicas))


def test_first_order_schemes_differ_from_the_continuous_target():
    # The same data and test reject the continuous-time covariance for SGLD:
    # the test resolves discretisation errors of this size.
    target = COVARIANCE_2 / BETA
    replicas = [covariance_z_scores("sgld", COVARIANCE_2, 0.2, seed, 200_000, reference=target)
                for seed in SEEDS]
    assert sum(replica_fails(scores) for scores in replicas) > allowed_failures(len(replicas))


# --- negative control: a sampler with a 25% too large noise variance

def _broken_run_chunk(potential, bias, state, rng, n_steps, parameters, recording):
    theta, gradient, _, energy, bias_energy, done, rows, diverged = overdamped_kernel(
        potential.kernel_data, bias.kernel_data, state.theta, state.gradient,
        np.empty(0), float(state.energy), float(state.bias_energy), int(state.step),
        int(n_steps), parameters["step_size"], parameters["beta"] / 1.25, False, rng,
        recording.records, recording.trajectory, recording.record_every,
        recording.record_accuracy, recording.record_full_energy)
    new_state = state._replace(theta=theta, gradient=gradient, energy=energy,
                               bias_energy=bias_energy, step=state.step + done)
    return ChunkResult(new_state, done, rows, diverged)


register_sampler("test_broken_sgld", init=sgld_module.init, validate=sgld_module.validate,
                 run_chunk=_broken_run_chunk, state_class=sgld_module.SGLDState,
                 observables=sgld_module.OBSERVABLES, replace=True)


def test_broken_sampler_fails_the_covariance_test():
    precision = np.linalg.inv(COVARIANCE_10)
    reference, _ = discrete_covariance("sgld", precision, 0.2, BETA, FRICTION)
    replicas = [covariance_z_scores("test_broken_sgld", COVARIANCE_10, 0.2, seed, 200_000,
                                    reference=reference) for seed in SEEDS[:2]]
    print(f"broken sampler: max |z| per replica "
          f"{[round(float(np.max(np.abs(z))), 2) for z in replicas]}")
    assert all(replica_fails(scores) for scores in replicas)


# --- kinetic temperature

@pytest.mark.parametrize("method,step_size", [("baoab", 0.2), ("gla2", 0.2), ("gla1", 0.05),
                                              ("ccadl", 0.05)])
def test_kinetic_temperature(method, step_size):
    potential = Gaussian(np.zeros(10), COVARIANCE_10)
    expected = 1.0 / BETA
    if method != "ccadl":
        _, expected = discrete_covariance(method, potential.precision, step_size, BETA,
                                          FRICTION)
        # after the O step BAOAB and GLA2 are exact, GLA1 is O(h) off
        assert abs(expected - 1.0 / BETA) < (1e-12 if method != "gla1" else 1e-3)
    scores = []
    for seed in SEEDS:
        run = thermo.sample(potential, method, theta0=np.zeros(10), n_steps=200_000,
                            step_size=step_size, beta=BETA, friction=FRICTION, seed=seed,
                            record_every=2)
        mean, error = mean_and_error(run.observables["kinetic_temperature"][1000:])
        scores.append((mean - expected) / error)
        print(f"{method}: kinetic temperature {mean:.5f} ± {error:.5f} (expected {expected})")
    assert np.sum(np.abs(scores) > Z99) <= 1


def test_ccadl_controls_noisy_gradients_where_baoab_and_gla_overheat():
    covariance = COVARIANCE_2
    noise = 2.0
    step_size = 0.05
    potential = NoisyGaussian(np.zeros(2), covariance, gradient_noise=noise)
    results = {}
    for method, options in (("ccadl", {}), ("ccadl_uncorrected", {"covariance_correction": False}),
                            ("baoab", {}), ("gla2", {})):
        name = "ccadl" if method.startswith("ccadl") else method
        run = thermo.sample(potential, name, theta0=np.zeros(2), n_steps=400_000,
                            step_size=step_size, beta=BETA, friction=FRICTION, seed=5,
                            record_every=2, **options)
        mean, error = mean_and_error(run.observables["kinetic_temperature"][1000:])
        results[method] = (mean, error, run)
        print(f"{method}: kinetic temperature {mean:.4f} ± {error:.4f}")
    for method in ("ccadl", "ccadl_uncorrected"):
        mean, error, run = results[method]
        assert abs(mean - 1.0 / BETA) < Z99 * error
        # (by construction: the time average of |p|²/d - 1/β telescopes to
        # μ (ξ_N - ξ_0)/(h N d)); the configurations are the real test:
        # the virial estimator of kT stays within a few per cent (first-order
        # scheme at h = 0.05), where BAOAB is about 20% hot (below)
        virial, virial_error = mean_and_error(run.observables["virial"][1000:])
        print(f"{method}: configurational temperature {virial:.4f} ± {virial_error:.4f}")
        assert abs(virial - 1.0 / BETA) < 0.05 / BETA
    # negative control: the extra noise h² s² per step heats the plain schemes
    # by about h β s²/(2γ) = 20%
    for method in ("baoab", "gla2"):
        mean, error, run = results[method]
        assert mean - 1.0 / BETA > 10 * error
        assert mean > 1.1 / BETA
        virial, virial_error = mean_and_error(run.observables["virial"][1000:])
        print(f"{method}: configurational temperature {virial:.4f} ± {virial_error:.4f}")
        assert virial > 1.1 / BETA
    # with the covariance term the thermostat settles near γ; without it, it has
    # to absorb the extra heat, ξ ≈ γ + h β s²/2.  (With a constant Σ, as here,
    # that shift is the only difference: the total friction and hence the θ
    # statistics of the two runs agree; CCAdL's correction pays off when Σ
    # depends on θ.)
    thermostat = np.mean(results["ccadl"][2].observables["thermostat"][1000:])
    uncorrected = np.mean(results["ccadl_uncorrected"][2].observables["thermostat"][1000:])
    print(f"thermostat: {thermostat:.3f} corrected, {uncorrected:.3f} uncorrected")
    assert abs(thermostat - FRICTION) < 0.05
    assert abs(uncorrected - (FRICTION + 0.5 * step_size * BETA * noise ** 2)) < 0.05
