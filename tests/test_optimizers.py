"""Tests of thermo.optimize: GD rate, BB vs GD, heavy-ball reference, SGD on a
minibatch potential, safeguards, reproducibility and chunking."""
import numpy as np
import pytest

import thermo
from thermo.optimizers import OptimizationRun
from thermo.potentials import Gaussian, MuellerBrown
from thermo.potentials.analytic import NoisyGaussian


# Test potentials come from thermo itself: NamedTuple classes defined in a test
# module would end up in the shared numba cache indexes.
def Quadratic(matrix):
    """U = ½ θᵀAθ."""
    matrix = np.asarray(matrix, dtype=np.float64)
    return Gaussian(np.zeros(len(matrix)), precision=matrix)


def _rotated_quadratic(eigenvalues, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    return q @ np.diag(eigenvalues) @ q.T


# --- GD ----------------------------------------------------------------------
def test_gd_converges_at_the_known_linear_rate():
    eigenvalues = np.array([1.0, 3.0, 7.0, 20.0])
    matrix = _rotated_quadratic(eigenvalues)
    potential = Quadratic(matrix)
    h = 2.0 / (eigenvalues.min() + eigenvalues.max())
    theta0 = np.array([1.0, -0.5, 0.25, 2.0])
    run = thermo.optimize(potential, "gd", theta0, 60, learning_rate=h)
    assert isinstance(run, OptimizationRun)
    assert np.array_equal(run.observables["step"], np.arange(61))
    # exact iterate: θ_k = (I - hA)^k θ_0
    expected = np.linalg.matrix_power(np.eye(4) - h * matrix, 60) @ theta0
    np.testing.assert_allclose(run.theta, expected, rtol=0, atol=1e-12)
    # the slowest modes (λ_min, λ_max) both contract by (κ-1)/(κ+1) per step
    rate = (eigenvalues.max() - eigenvalues.min()) / (eigenvalues.max() + eigenvalues.min())
    norms = run.observables["gradient_norm"]
    measured = (norms[60] / norms[40]) ** (1.0 / 20)
    assert abs(measured - rate) < 1e-6, (measured, rate)
    energies = run.observables["energy"]
    assert np.all(np.diff(energies) < 0)


def test_bb_beats_gd_on_ill_conditioned_quadratic():
    d = 40
    eigenvalues = np.logspace(0, 4, d)          # κ = 1e4
    potential = Quadratic(_rotated_quadratic(eigenvalues, seed=3))
    theta0 = np.ones(d)
    g0 = np.linalg.norm(potential.gradient(theta0))
    tolerance = 1e-8 * g0
    bb = thermo.optimize(potential, "bb", theta0, 5000, learning_rate=1e-4,
                         tolerance=tolerance)
    assert bb.converged, bb.message
    assert bb.observables["gradient_norm"][-1] <= tolerance
    h = 2.0 / (eigenvalues[0] + eigenvalues[-1])
    gd = thermo.optimize(potential, "gd", theta0, 5000, learning_rate=h,
                         tolerance=tolerance, record_every=100)
    assert not gd.converged
    # GD needs about log(1e-8)/log(rate) ~ 9e4 steps; BB a few hundred
    rate = (eigenvalues[-1] - eigenvalues[0]) / (eigenvalues[-1] + eigenvalues[0])
    gd_steps_needed = np.log(1e-8) / np.log(rate)
    assert bb.n_steps * 50 < gd_steps_needed, (bb.n_steps, gd_steps_needed)
    assert np.linalg.norm(bb.theta) <= tolerance / eigenvalues[0]   # |θ| <= |A⁻¹||g|


MB_MINIMA = np.array([[-0.55822363, 1.44172584], [0.6234994, 0.02803776],
                      [-0.05001082, 0.4666941]])   # Müller–Brown local minima


def test_bb_on_mueller_brown_and_its_safeguard():
    potential = MuellerBrown()
    theta0 = np.array([-0.5, 1.0])
    gd = thermo.optimize(potential, "gd", theta0, 5000, learning_rate=1e-4, tolerance=1e-8)
    bb = thermo.optimize(potential, "bb", theta0, 5000, learning_rate=1e-4, tolerance=1e-8)
    assert gd.converged and bb.converged
    np.testing.assert_allclose(bb.theta, MB_MINIMA[0], atol=1e-7)
    np.testing.assert_allclose(gd.theta, MB_MINIMA[0], atol=1e-7)
    assert bb.n_steps * 10 < gd.n_steps, (bb.n_steps, gd.n_steps)
    # a first trial step of 1 overflows exp(...) (U = inf): the non-monotone
    # backtracking rejects it and the method still converges to a minimum
    wild = thermo.optimize(potential, "bb", theta0, 5000, learning_rate=1.0,
                           tolerance=1e-8)
    assert wild.converged, wild.message
    assert np.min(np.linalg.norm(MB_MINIMA - wild.theta, axis=1)) < 1e-6
    assert wild.observables["step_size"][1] < 1e-2     # backtracked from 1


def test_bb_step_range_clips():
    potential = Quadratic(np.diag([1.0, 100.0]))
    run = thermo.optimize(potential, "bb", np.array([1.0, 1.0]), 30,
                          learning_rate=1e-3, step_range=(1e-3, 2e-3))
    steps = run.observables["step_size"][1:]
    assert np.all(steps <= 2e-3 + 1e-18) and np.all(steps >= 1e-3 * 0.5 ** 60)
    # with α <= 2e-3 the slow mode contracts by at most 1 - 1e-3 per step
    assert run.theta[0] > (1 - 2e-3) ** 30 - 1e-12


# --- SGD / heavy ball -------------------------------------------------------
NOISY_MEAN = np.array([1.0, -2.0, 0.5])


def _noisy_potential(noise=3.0):
    """Stochastic gradients: ∇U + s ξ (thermo's model of minibatch noise)."""
    return NoisyGaussian(NOISY_MEAN, covariance=np.array([1.0, 0.5, 2.0]),
                         gradient_noise=noise)


def test_sgd_momentum_equals_numpy_heavy_ball_reference():
    potential = _noisy_potential()
    h, mu, seed, steps = 1e-2, 0.8, 11, 7
    theta0 = np.array([0.3, 0.1, -0.2])
    run = thermo.optimize(potential, "sgd", theta0, steps, learning_rate=h,
                          momentum=mu, seed=seed, record_trajectory=True)
    # reference: v_{k+1} = μ v_k - h g_k, θ_{k+1} = θ_k + v_{k+1}, with g_k the
    # stochastic gradient drawn from the same generator sequence
    rng = np.random.default_rng(seed)
    theta = theta0.copy()
    v = np.zeros(3)
    energy, g = potential.energy_and_gradient(theta, full=False, rng=rng)
    trajectory, energies = [theta.copy()], [energy]
    for _ in range(steps):
        v = mu * v - h * g
        theta = theta + v
        energy, g = potential.energy_and_gradient(theta, full=False, rng=rng)
        trajectory.append(theta.copy())
        energies.append(energy)
    np.testing.assert_allclose(run.trajectory, np.array(trajectory), rtol=0, atol=1e-12)
    np.testing.assert_allclose(run.observables["energy"], energies, rtol=1e-12)
    np.testing.assert_allclose(run.state.velocity, v, rtol=0, atol=1e-12)
    exact = thermo.optimize(potential, "gd", theta0, steps, learning_rate=h, momentum=mu)
    assert not np.allclose(exact.theta, run.theta)     # the noise is really used


def test_gd_momentum_heavy_ball_two_term_form():
    matrix = _rotated_quadratic(np.array([1.0, 4.0, 9.0]), seed=1)
    potential = Quadratic(matrix)
    h, mu = 0.05, 0.5
    theta0 = np.array([1.0, 2.0, -1.0])
    run = thermo.optimize(potential, "gd", theta0, 5, learning_rate=h, momentum=mu,
                          record_trajectory=True)
    previous, theta = theta0.copy(), theta0 - h * (matrix @ theta0)
    reference = [theta0, theta]
    for _ in range(4):   # θ_{k+1} = θ_k - h ∇U(θ_k) + μ (θ_k - θ_{k-1})
        previous, theta = theta, theta - h * (matrix @ theta) + mu * (theta - previous)
        reference.append(theta)
    np.testing.assert_allclose(run.trajectory, np.array(reference), rtol=0, atol=1e-12)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_on_stochastic_gradients_reaches_the_minimum(momentum):
    potential = _noisy_potential(noise=2.0)
    theta0 = np.array([5.0, 5.0, 5.0])
    h = 0.05 * (1 - momentum)        # same effective step h/(1-μ)
    run = thermo.optimize(potential, "sgd", theta0, 4000, learning_rate=h,
                          momentum=momentum, seed=4, record_every=10)
    # stationary spread per coordinate: Var ≈ h s²/(2 λ (1-μ)) (small h) -> std < 0.25
    tail = run.observables["energy"][200:]
    assert np.linalg.norm(run.theta - NOISY_MEAN) < 1.0
    assert np.mean(tail) < 0.2 * potential.energy(theta0)
    assert np.mean(tail) < 1.0


def test_sgd_full_batch_switch_equals_gd():
    potential = _noisy_potential()
    a = thermo.optimize(potential, "sgd", np.zeros(3), 20, learning_rate=1e-2,
                        momentum=0.5, full_batch=True)
    b = thermo.optimize(potential, "gd", np.zeros(3), 20, learning_rate=1e-2,
                        momentum=0.5)
    assert np.array_equal(a.theta, b.theta)


@pytest.mark.slow
def test_sgd_on_a_network_posterior_with_minibatches():
    from thermo.networks import MLP
    from thermo.potentials import Posterior
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.normal(size=(200, 1))
    net = MLP([3, 1], output_activation="linear", loss="mse")
    full = Posterior(net, X, y)
    minibatch = Posterior(net, X, y, batch_size=20)
    best = thermo.optimize(full, "bb", np.zeros(4), 500, learning_rate=1e-3,
                           tolerance=1e-9)
    assert best.converged
    np.testing.assert_allclose(best.theta[:3], [1.0, -2.0, 0.5], atol=0.05)
    run = thermo.optimize(minibatch, "sgd", np.zeros(4), 3000, learning_rate=1e-4,
                          momentum=0.9, seed=1, record_every=100)
    assert np.linalg.norm(run.theta - best.theta) < 0.1
    assert full.energy(run.theta) < full.energy(best.theta) + 2.0
    again = thermo.optimize(minibatch, "sgd", np.zeros(4), 3000, learning_rate=1e-4,
                            momentum=0.9, seed=1, record_every=100)
    assert np.array_equal(again.theta, run.theta)


# --- reproducibility, chunking, records --------------------------------------
@pytest.mark.parametrize("method", ["sgd", "bb", "gd"])
def test_same_seed_bit_identical_and_chunked_equals_whole(method):
    if method == "sgd":
        potential = _noisy_potential()
        kwargs = dict(learning_rate=1e-2, momentum=0.7)
    else:
        potential = MuellerBrown()
        kwargs = dict(learning_rate=1e-4)
    theta0 = np.array([0.5, 0.1, 0.2]) if method == "sgd" else np.array([-0.5, 1.0])
    whole = thermo.optimize(potential, method, theta0, 40, seed=5, record_every=3,
                            record_trajectory=True, **kwargs)
    again = thermo.optimize(potential, method, theta0, 40, seed=5, record_every=3,
                            record_trajectory=True, **kwargs)
    assert np.array_equal(whole.theta, again.theta)
    assert np.array_equal(whole.trajectory, again.trajectory)
    first = thermo.optimize(potential, method, theta0, 17, seed=5, record_every=3,
                            record_trajectory=True, **kwargs)
    second = thermo.optimize(potential, method, None, 23, state=first.state,
                             record_every=3, record_trajectory=True, **kwargs)
    assert np.array_equal(second.theta, whole.theta)
    for key in whole.observables:
        joined = np.concatenate([first.observables[key], second.observables[key]])
        assert np.array_equal(joined, whole.observables[key], equal_nan=True), key
    assert np.array_equal(np.vstack([first.trajectory, second.trajectory]),
                          whole.trajectory)
    assert second.state.step == 40
    if method == "sgd":
        other = thermo.optimize(potential, method, theta0, 40, seed=6, **kwargs)
        assert not np.array_equal(other.theta, whole.theta)


def test_tolerance_stops_and_records_the_converged_point():
    potential = Quadratic(np.diag([1.0, 2.0]))
    run = thermo.optimize(potential, "gd", np.array([1.0, 1.0]), 10_000,
                          learning_rate=0.3, tolerance=1e-6, record_every=1000)
    assert run.converged
    assert run.n_steps < 100
    assert run.observables["step"][-1] == run.n_steps
    assert run.observables["gradient_norm"][-1] <= 1e-6
    again = thermo.optimize(potential, "gd", None, 10, state=run.state,
                            tolerance=1e-6, learning_rate=0.3)
    assert again.converged and again.n_steps == 0
    assert again.observables["step"].size == 0


def test_divergence_names_the_step():
    potential = Quadratic(np.diag([1.0, 10.0]))
    # |1 - hλ| = 3 for λ = 10: overflow after about log(1e308)/log(3) ≈ 320 steps
    with pytest.raises(thermo.DivergenceError) as info:
        thermo.optimize(potential, "gd", np.array([1.0, 1.0]), 10_000,
                        learning_rate=0.4, record_every=10)
    error = info.value
    message = str(error)
    assert "step" in message
    factor = 3.0
    # U = 5 θ_2² overflows when 3^k > ~1.3e154
    first_bad = int(np.floor(np.log(np.sqrt(np.finfo(float).max / 5)) / np.log(factor))) + 1
    assert f"step {first_bad}" in message, (message, first_bad)
    assert error.step == first_bad
    partial = error.partial_run
    assert partial.observables["step"][-1] == (first_bad - 1) // 10 * 10
    good = error.last_good_state
    assert good.step == first_bad - 1
    np.testing.assert_allclose(good.theta, [0.6 ** (first_bad - 1), (-3.0) ** (first_bad - 1)],
                               rtol=1e-12)
    np.testing.assert_allclose(good.gradient, [1.0, 10.0] * good.theta, rtol=1e-12)


def test_bad_input_raises():
    potential = Quadratic(np.eye(2))
    with pytest.raises(ValueError, match="unknown optimizer"):
        thermo.optimize(potential, "adam", np.zeros(2), 10)
    with pytest.raises(ValueError, match="momentum"):
        thermo.optimize(potential, "bb", np.zeros(2), 10, momentum=0.5)
    with pytest.raises(ValueError, match="exact gradients"):
        thermo.optimize(potential, "bb", np.zeros(2), 10, full_batch=False)
    with pytest.raises(ValueError, match="learning_rate"):
        thermo.optimize(potential, "gd", np.zeros(2), 10, learning_rate=-1.0)
    with pytest.raises(ValueError, match="shape"):
        thermo.optimize(potential, "gd", np.zeros(3), 10)
    with pytest.raises(TypeError, match="n_steps"):
        thermo.optimize(potential, "gd", np.zeros(2), 1.5)
    with pytest.raises(ValueError, match="momentum"):
        thermo.optimize(potential, "sgd", np.zeros(2), 10, momentum=1.0)
