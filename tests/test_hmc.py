"""Tests of Hybrid Monte Carlo ("hmc"): exactness (one-step invariance), the
acceptance trend in h, long-run moments, reproducibility and chunking."""
import numpy as np
import pytest

import thermo
import thermo.samplers.hmc  # noqa: F401  (registers "hmc")
from thermo.potentials import Gaussian

MEAN = np.array([1.0, -1.0])
COVARIANCE = np.array([[1.0, 0.8], [0.8, 2.0]])


def _z_scores(samples, mean, covariance):
    """z of the sample mean and of the sample second central moments about the
    known mean, each against its own standard error."""
    n = len(samples)
    centred = samples - mean
    z = [centred[:, i].mean() / np.sqrt(covariance[i, i] / n) for i in range(2)]
    for i, j in ((0, 0), (0, 1), (1, 1)):
        products = centred[:, i] * centred[:, j]
        z.append((products.mean() - covariance[i, j]) / (products.std(ddof=1) / np.sqrt(n)))
    return np.array(z)


def _one_transition(target, start, beta, step_size, seed0, **options):
    """One HMC transition from each row of ``start`` (independent chains)."""
    out = np.empty_like(start)
    for k, theta0 in enumerate(start):
        run = thermo.sample(target, "hmc", theta0, n_steps=1, step_size=step_size,
                            beta=beta, seed=seed0 + k, record_every=1, **options)
        out[k] = run.theta
    return out


@pytest.mark.parametrize("integrator", ["leapfrog", "symplectic_euler"])
def test_one_step_invariance_and_its_failure_for_a_wrong_target(integrator):
    beta = 2.0
    n_chains = 2500
    target = Gaussian(MEAN, covariance=COVARIANCE)
    covariance = COVARIANCE / beta                  # π ∝ exp(-β U) = N(m, Σ/β)
    rng = np.random.default_rng(12345)
    start = rng.multivariate_normal(MEAN, covariance, size=n_chains)
    options = dict(n_leapfrog=(3, 8), integrator=integrator)
    step_size = 0.5 if integrator == "leapfrog" else 0.3
    moved = _one_transition(target, start, beta, step_size, 0, **options)
    assert np.mean(np.any(moved != start, axis=1)) > 0.5    # it does move
    assert np.mean(np.any(moved != start, axis=1)) < 0.99   # and it does reject
    z = _z_scores(moved, MEAN, covariance)
    assert np.all(np.abs(z) < 4.0), z
    # the same test on HMC for a wrong Gaussian (covariance Σ/3) must fail (h is
    # small enough for the wrong target's trajectories to be stable, so they move)
    wrong = Gaussian(MEAN, covariance=COVARIANCE / 3.0)
    moved_wrong = _one_transition(wrong, start, beta, step_size, 0, **options)
    z_wrong = _z_scores(moved_wrong, MEAN, covariance)
    assert np.max(np.abs(z_wrong)) > 8.0, z_wrong


def test_acceptance_tends_to_one_as_step_size_shrinks():
    d = 10
    target = Gaussian(np.zeros(d), covariance=np.linspace(0.5, 2.0, d))
    rates = {}
    for integrator, steps in (("leapfrog", [0.8, 0.4, 0.2, 0.1]),
                              ("symplectic_euler", [0.2, 0.1, 0.05, 0.025])):
        rates[integrator] = []
        for h in steps:
            run = thermo.sample(target, "hmc", np.zeros(d), n_steps=3000, step_size=h,
                                seed=3, record_every=100, n_leapfrog=int(round(1.6 / h)),
                                integrator=integrator)
            rates[integrator].append(run.state.n_accepted / 3000)
        acceptance = np.array(rates[integrator])
        assert np.all(np.diff(acceptance) > 0), (integrator, acceptance)
        assert acceptance[-1] > 0.95, (integrator, acceptance)
    # rejection ∝ h² (leapfrog, second order) and ∝ h (symplectic Euler, first order)
    order = {k: np.log2((1 - np.array(v[1:-1])) / (1 - np.array(v[2:])))
             for k, v in rates.items()}
    assert np.all(np.abs(order["leapfrog"] - 2.0) < 0.5), order
    assert np.all(np.abs(order["symplectic_euler"] - 1.0) < 0.5), order


def _batch_means_error(x, n_batches=50):
    batches = x[: len(x) // n_batches * n_batches].reshape(n_batches, -1, *x.shape[1:])
    return batches.mean(axis=1).std(axis=0, ddof=1) / np.sqrt(n_batches)


@pytest.mark.parametrize("integrator", ["leapfrog", "symplectic_euler"])
def test_long_run_moments_of_correlated_gaussian(integrator):
    target = Gaussian(MEAN, covariance=COVARIANCE)
    run = thermo.sample(target, "hmc", np.zeros(2), n_steps=40_000, step_size=0.3,
                        seed=7, n_leapfrog=(4, 12), integrator=integrator,
                        record_every=1, record_trajectory=True)
    x = run.trajectory[1000:]
    z_mean = (x.mean(axis=0) - MEAN) / _batch_means_error(x)
    c = x - MEAN
    products = np.stack([c[:, 0] ** 2, c[:, 0] * c[:, 1], c[:, 1] ** 2], axis=1)
    expected = np.array([COVARIANCE[0, 0], COVARIANCE[0, 1], COVARIANCE[1, 1]])
    z_cov = (products.mean(axis=0) - expected) / _batch_means_error(products)
    assert np.all(np.abs(z_mean) < 4.0), z_mean
    assert np.all(np.abs(z_cov) < 4.0), z_cov
    acceptance = run.observables["acceptance"]
    assert set(np.unique(acceptance)) <= {0.0, 1.0}
    assert acceptance.sum() == run.state.n_accepted - 0  # all records, every step
    # refreshed momenta are Maxwellian: ⟨|p|²/d⟩ = 1/β
    assert abs(run.observables["kinetic_temperature"].mean() - 1.0) < 0.03


def test_same_seed_bit_identical_and_chunked_equals_whole():
    target = Gaussian(MEAN, covariance=COVARIANCE)
    kwargs = dict(step_size=0.4, n_leapfrog=(2, 9), record_every=3,
                  record_trajectory=True)
    whole = thermo.sample(target, "hmc", np.zeros(2), n_steps=100, seed=5, **kwargs)
    again = thermo.sample(target, "hmc", np.zeros(2), n_steps=100, seed=5,
                          chunk_steps=7, **kwargs)
    first = thermo.sample(target, "hmc", np.zeros(2), n_steps=41, seed=5, **kwargs)
    second = thermo.sample(target, "hmc", n_steps=59, state=first.state, **kwargs)
    assert np.array_equal(whole.trajectory, again.trajectory)
    assert np.array_equal(np.vstack([first.trajectory, second.trajectory]), whole.trajectory)
    for key, value in whole.observables.items():
        assert np.array_equal(value, again.observables[key], equal_nan=True), key
        joined = np.concatenate([first.observables[key], second.observables[key]])
        assert np.array_equal(joined, value, equal_nan=True), key
    assert np.array_equal(second.theta, whole.theta)
    assert second.state.n_accepted == whole.state.n_accepted
    other = thermo.sample(target, "hmc", np.zeros(2), n_steps=100, seed=6, **kwargs)
    assert not np.array_equal(other.theta, whole.theta)
    # window acceptance: fractions of record_every = 3 transitions
    assert np.all(np.isin(np.round(whole.observables["acceptance"] * 3), [0, 1, 2, 3]))


def test_minibatch_gradient_option_equals_full_for_deterministic_potentials():
    target = Gaussian(MEAN, covariance=COVARIANCE)
    a = thermo.sample(target, "hmc", np.zeros(2), n_steps=50, step_size=0.4, seed=1)
    b = thermo.sample(target, "hmc", np.zeros(2), n_steps=50, step_size=0.4, seed=1,
                      gradient="minibatch")
    assert np.array_equal(a.theta, b.theta)
    assert np.array_equal(a.observables["acceptance"], b.observables["acceptance"])


def test_too_large_step_is_rejected_not_diverged():
    target = Gaussian(MEAN, covariance=COVARIANCE)
    run = thermo.sample(target, "hmc", MEAN.copy(), n_steps=20, step_size=1e150,
                        seed=0, n_leapfrog=5)
    assert run.state.n_accepted == 0
    assert np.array_equal(run.theta, MEAN)


def test_bad_options_raise():
    target = Gaussian(MEAN, covariance=COVARIANCE)
    with pytest.raises(ValueError, match="n_leapfrog"):
        thermo.sample(target, "hmc", np.zeros(2), n_steps=1, step_size=0.1, n_leapfrog=0)
    with pytest.raises(ValueError, match="n_leapfrog"):
        thermo.sample(target, "hmc", np.zeros(2), n_steps=1, step_size=0.1,
                      n_leapfrog=(5, 2))
    with pytest.raises(TypeError, match="n_leapfrog"):
        thermo.sample(target, "hmc", np.zeros(2), n_steps=1, step_size=0.1,
                      n_leapfrog=2.5)
    with pytest.raises(ValueError, match="integrator"):
        thermo.sample(target, "hmc", np.zeros(2), n_steps=1, step_size=0.1,
                      integrator="rk4")
    with pytest.raises(TypeError, match="unknown option"):
        thermo.sample(target, "hmc", np.zeros(2), n_steps=1, step_size=0.1, frction=1.0)


def test_stochastic_potential_full_gradients_are_exact_minibatch_are_not():
    from thermo.potentials.analytic import NoisyGaussian
    noisy = NoisyGaussian(MEAN, covariance=COVARIANCE, gradient_noise=0.5)
    exact = Gaussian(MEAN, covariance=COVARIANCE)
    kwargs = dict(n_steps=200, step_size=0.4, seed=2, n_leapfrog=(3, 6),
                  record_trajectory=True)
    # gradient="full": only exact energies and gradients, the noise is never drawn
    a = thermo.sample(noisy, "hmc", np.zeros(2), **kwargs)
    b = thermo.sample(exact, "hmc", np.zeros(2), **kwargs)
    assert np.array_equal(a.trajectory, b.trajectory)
    # gradient="minibatch": noisy trajectories, exact energies in the accept step
    c = thermo.sample(noisy, "hmc", np.zeros(2), gradient="minibatch", **kwargs)
    assert not np.array_equal(c.trajectory, b.trajectory)
    assert c.state.energy == noisy.energy(c.theta)
    np.testing.assert_array_equal(c.state.gradient, noisy.gradient(c.theta))
    assert 0.3 < c.state.n_accepted / 200 < b.state.n_accepted / 200 + 0.05
