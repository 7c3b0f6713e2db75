"""Tests of thermo.potentials.Posterior: U = (N/B) Σ_batch ℓ_i + (λ/2)|θ|²."""
import numpy as np
import pytest

from thermo.networks import MLP
from thermo.potentials.base import _call_energy_gradient
from thermo.potentials.posterior import Posterior


def _problem(n=40, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = rng.integers(0, 3, n)
    net = MLP([4, 5, 3], activation="tanh", loss="cross_entropy", dtype=dtype)
    return net, X, y, net.init(seed)


def test_full_energy_is_total_loss_plus_prior_and_gradient_matches_fd():
    net, X, y, theta = _problem()
    post = Posterior(net, X, y, prior_precision=0.7)
    U, grad = post.energy_and_gradient(theta)
    assert U == pytest.approx(40 * net.loss(theta, X, y) + 0.35 * theta @ theta, rel=1e-13)
    assert post.loss(theta) == pytest.approx(net.loss(theta, X, y), rel=1e-13)
    fd = np.array([(post.energy(theta + e) - post.energy(theta - e)) / 2e-5
                   for e in np.eye(theta.size) * 1e-5])
    assert np.linalg.norm(grad - fd) / np.linalg.norm(fd) < 1e-6
    assert not post.stochastic and post.n_data == 40 and post.batch_size == 40
    assert post.accuracy(theta) == pytest.approx(net.accuracy(theta, X, y))


def test_minibatch_gradient_matches_fd_for_a_fixed_batch():
    net, X, y, theta = _problem()
    post = Posterior(net, X, y, prior_precision=0.3, batch_size=8)
    assert post.stochastic
    state = post.minibatch_state()

    def estimate(t):
        # same batch every time: same generator seed and minibatch state
        post.set_minibatch_state(state)
        return post.energy_and_gradient(t, full=False, rng=np.random.default_rng(11))

    U, grad = estimate(theta)
    batch = post.kernel_data.batch.copy()
    assert U == pytest.approx(40 / 8 * 8 * net.loss(theta, X[batch], y[batch])
                              + 0.15 * theta @ theta, rel=1e-12)
    fd = np.array([(estimate(theta + e)[0] - estimate(theta - e)[0]) / 2e-5
                   for e in np.eye(theta.size) * 1e-5])
    assert np.linalg.norm(grad - fd) / np.linalg.norm(fd) < 1e-6


@pytest.mark.parametrize("replace", [False, True])
def test_minibatch_estimator_is_unbiased_and_variance_matches(replace):
    net, X, y, theta = _problem(n=40, seed=1)
    post = Posterior(net, X, y, prior_precision=0.5, batch_size=10, replace=replace)
    U_full, g_full = post.energy_and_gradient(theta)
    rng = np.random.default_rng(2)
    draws = 4000
    grads = np.empty((draws, theta.size))
    energies = np.empty(draws)
    variances = np.empty((draws, theta.size))
    for k in range(draws):
        energies[k], grads[k], variances[k] = post.energy_gradient_variance(theta, rng=rng)
    # unbiased: mean over draws within 4.5 standard errors, every coordinate
    se = grads.std(axis=0) / np.sqrt(draws) + 1e-12
    assert np.all(np.abs(grads.mean(axis=0) - g_full) < 4.5 * se)
    assert abs(energies.mean() - U_full) < 4.5 * energies.std() / np.sqrt(draws)
    # the reported variance of the estimator matches its empirical variance
    empirical = grads.var(axis=0)
    predicted = variances.mean(axis=0)
    big = empirical > 1e-3 * empirical.max()
    ratio = predicted[big] / empirical[big]
    assert np.median(np.abs(ratio - 1)) < 0.05
    assert np.all(np.abs(ratio - 1) < 0.25)


def test_full_batch_variance_is_zero_and_batch_n_is_exact():
    net, X, y, theta = _problem()
    post = Posterior(net, X, y, batch_size=40)
    assert not post.stochastic
    U, g, v = post.energy_gradient_variance(theta, rng=np.random.default_rng(0))
    assert np.all(v == 0)
    U2, g2 = post.energy_and_gradient(theta, full=False, rng=np.random.default_rng(0))
    assert U == U2 and np.array_equal(g, g2)


def test_seeded_minibatch_runs_reproduce_and_state_round_trips():
    net, X, y, theta = _problem()
    post = Posterior(net, X, y, batch_size=6)
    rng = np.random.default_rng(4)
    first = [post.energy_and_gradient(theta, full=False, rng=rng)[0] for _ in range(5)]
    saved = post.minibatch_state()
    rng_state = rng.bit_generator.state
    later = [post.energy_and_gradient(theta, full=False, rng=rng)[0] for _ in range(9)]
    post.set_minibatch_state(saved)
    rng.bit_generator.state = rng_state
    again = [post.energy_and_gradient(theta, full=False, rng=rng)[0] for _ in range(9)]
    assert later == again
    fresh = Posterior(net, X, y, batch_size=6)
    rng = np.random.default_rng(4)
    assert first == [fresh.energy_and_gradient(theta, full=False, rng=rng)[0]
                     for _ in range(5)]
    with pytest.raises(ValueError, match="permutation"):
        post.set_minibatch_state({"order": np.zeros(40, int), "cursor": np.array([0])})
    with pytest.raises(ValueError, match="cursor"):
        post.set_minibatch_state({"order": np.arange(40), "cursor": np.array([41])})


def test_kernel_side_call_draws_from_generator():
    net, X, y, theta = _problem()
    post = Posterior(net, X, y, batch_size=5, replace=True)
    g = np.empty_like(theta)
    U = _call_energy_gradient(post.kernel_data, theta, g, np.random.default_rng(9))
    U2, g2 = Posterior(net, X, y, batch_size=5, replace=True).energy_and_gradient(
        theta, full=False, rng=np.random.default_rng(9))
    assert U == U2 and np.array_equal(g, g2)


def test_float32_posterior_converts_data():
    net, X, y, _ = _problem(dtype=np.float32)
    post = Posterior(net, X, y, prior_precision=0.1)
    assert post.kernel_data.X.dtype == np.float32 and post.dtype == np.float32
    theta = net.init(0)
    U, g = post.energy_and_gradient(theta)
    net64, _, _, _ = _problem()
    U64, g64 = Posterior(net64, X, y, prior_precision=0.1).energy_and_gradient(
        theta.astype(np.float64))
    assert g.dtype == np.float32 and U == pytest.approx(U64, rel=1e-5)
    with pytest.raises(TypeError, match="float32"):
        post.energy(theta.astype(np.float64))


def test_bad_input_errors():
    net, X, y, theta = _problem()
    with pytest.raises(TypeError, match="MLP"):
        Posterior("net", X, y)
    with pytest.raises(ValueError, match="features"):
        Posterior(net, X[:, :3], y)
    with pytest.raises(ValueError, match="class labels"):
        Posterior(net, X, np.where(y == 0, 3, y))
    with pytest.raises(TypeError, match="integer"):
        Posterior(net, X, y.astype(float))
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Posterior(net, Xn, y)
    with pytest.raises(ValueError, match="empty"):
        Posterior(net, X[:0], y[:0])
    with pytest.raises(ValueError, match="batch_size"):
        Posterior(net, X, y, batch_size=41)
    with pytest.raises(ValueError, match="batch_size"):
        Posterior(net, X, y, batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        Posterior(net, X, y, batch_size=2.5)
    with pytest.raises(ValueError, match="prior_precision"):
        Posterior(net, X, y, prior_precision=-1.0)
    post = Posterior(net, X, y)
    with pytest.raises(ValueError, match="shape"):
        post.energy(theta[:-1])
    with pytest.raises(TypeError, match="dtype"):
        post.energy(theta.astype(np.float32))


def test_fresh_runs_on_one_posterior_draw_the_same_batches():
    # sample/optimize call reset_minibatch_state on a fresh start: two runs
    # with one seed on the same object must not continue each other's epoch.
    rng_data = np.random.default_rng(3)
    X = rng_data.normal(size=(30, 4))
    y = rng_data.integers(0, 3, size=30)
    net = MLP([4, 3], loss="cross_entropy")
    posterior = Posterior(net, X, y, batch_size=7)
    theta = net.init(seed=1)
    first = [posterior.energy(theta, full=False, rng=np.random.default_rng(5))]
    posterior.energy(theta, full=False, rng=np.random.default_rng(9))
    posterior.reset_minibatch_state()
    second = [posterior.energy(theta, full=False, rng=np.random.default_rng(5))]
    assert first == second


def _general_path(post):
    """The same posterior forced onto the general MLP kernel."""
    post.kernel_data = post.kernel_data._replace(fast=np.int64(0))
    return post


@pytest.mark.parametrize("sparse_inputs", [False, True])
@pytest.mark.parametrize("prior", [0.0, 0.8])
@pytest.mark.parametrize("batch_size", [None, 70])
def test_perceptron_fast_path_agrees_with_general_kernel(prior, batch_size, sparse_inputs):
    rng = np.random.default_rng(5)
    n, n_in, n_out = 301, 13, 4
    X = rng.normal(size=(n, n_in))
    X[rng.random(X.shape) < 0.5] = 0.0          # zeros: the general kernel skips them
    y = rng.integers(0, n_out, n)
    net = MLP([n_in, n_out], loss="cross_entropy")
    theta = rng.normal(size=net.n_params)
    fast = Posterior(net, X, y, prior_precision=prior, batch_size=batch_size,
                     sparse_inputs=sparse_inputs)
    slow = _general_path(Posterior(net, X, y, prior_precision=prior, batch_size=batch_size))
    assert fast.fast_path and fast.kernel_data.fast == (2 if sparse_inputs else 1)
    for full in (True, False):
        for seed in range(3):   # minibatch: same generator -> same batch on both paths
            U_f, g_f = fast.energy_and_gradient(theta, full=full, rng=np.random.default_rng(seed))
            U_s, g_s = slow.energy_and_gradient(theta, full=full, rng=np.random.default_rng(seed))
            np.testing.assert_array_equal(fast.kernel_data.batch, slow.kernel_data.batch)
            assert U_f == pytest.approx(U_s, rel=1e-12, abs=0)
            np.testing.assert_allclose(g_f, g_s, rtol=1e-12, atol=1e-12 * np.abs(g_s).max())
    # the minibatch state advanced identically
    np.testing.assert_array_equal(fast.minibatch_state()["order"], slow.minibatch_state()["order"])
    # kernel-side call (what the samplers use)
    g_f, g_s = np.empty_like(theta), np.empty_like(theta)
    U_f = _call_energy_gradient(fast.kernel_data, theta, g_f, np.random.default_rng(9))
    U_s = _call_energy_gradient(slow.kernel_data, theta, g_s, np.random.default_rng(9))
    assert U_f == pytest.approx(U_s, rel=1e-12, abs=0)
    np.testing.assert_allclose(g_f, g_s, rtol=1e-12, atol=1e-12 * np.abs(g_s).max())


def test_perceptron_fast_path_large_logits_and_selection():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(50, 6))
    y = rng.integers(0, 3, 50)
    net = MLP([6, 3])
    theta = 400.0 * rng.normal(size=net.n_params)    # logit gaps far beyond exp's range
    U_f, g_f = Posterior(net, X, y).energy_and_gradient(theta)
    U_s, g_s = _general_path(Posterior(net, X, y)).energy_and_gradient(theta)
    assert np.isfinite(U_f) and U_f == pytest.approx(U_s, rel=1e-12)
    np.testing.assert_allclose(g_f, g_s, rtol=1e-12, atol=1e-12 * np.abs(g_s).max())
    # float32 networks take the fast path too (float32 rounding)
    net32 = MLP([6, 3], dtype=np.float32)
    t32 = net32.init(seed=1)
    U32, g32 = Posterior(net32, X, y, prior_precision=0.5).energy_and_gradient(t32)
    U64, g64 = _general_path(Posterior(net32, X, y, prior_precision=0.5)).energy_and_gradient(t32)
    assert g32.dtype == np.float32 and U32 == pytest.approx(U64, rel=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-5 * np.abs(g64).max())
    # everything else keeps the general kernel
    yb = rng.integers(0, 2, 50)
    for other, labels in [(MLP([6, 4, 3]), y), (MLP([6, 3], loss="mse"), y),
                          (MLP([6, 3], output_activation="tanh"), y),
                          (MLP([6, 1], loss="logistic"), yb)]:
        assert not Posterior(other, X, labels).fast_path
    assert Posterior(net, X, y).fast_path
