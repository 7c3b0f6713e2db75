"""Tests of the Wall and Tether priors and of Sum."""
import numpy as np
import pytest

import thermo
from thermo.potentials import Gaussian, Sum, Tether, Wall
from thermo.potentials.analytic import NoisyGaussian


def _central_difference(potential, theta, eps=1e-6):
    gradient = np.empty_like(theta)
    for i in range(theta.size):
        up, down = theta.copy(), theta.copy()
        up[i] += eps
        down[i] -= eps
        gradient[i] = (potential.energy(up) - potential.energy(down)) / (2 * eps)
    return gradient


# --- Wall ----------------------------------------------------------------------
@pytest.mark.parametrize("power", [1.5, 2.0, 3.0])
def test_wall_gradient_matches_central_differences(power):
    rng = np.random.default_rng(0)
    lower = np.array([-1.0, -2.0, 0.0, -np.inf])
    upper = np.array([1.0, 0.5, 0.0, 2.0])
    wall = Wall(4, lower, upper, strength=3.0, power=power)
    for _ in range(20):
        theta = rng.uniform(-4, 4, size=4)
        theta[np.abs(theta - lower) < 1e-3] += 0.01   # keep away from the kinks
        theta[np.abs(theta - upper) < 1e-3] += 0.01
        energy, gradient = wall.energy_and_gradient(theta)
        np.testing.assert_allclose(gradient, _central_difference(wall, theta),
                                   rtol=1e-6, atol=1e-6)
        dist = np.maximum(lower - theta, 0) + np.maximum(theta - upper, 0)
        assert energy == pytest.approx(3.0 * np.sum(dist ** power), rel=1e-12)


def test_wall_is_zero_inside_the_box():
    wall = Wall(3, -1.0, [1.0, 2.0, 3.0], strength=100.0)
    rng = np.random.default_rng(1)
    for _ in range(50):
        theta = rng.uniform(-1.0, 1.0, size=3)
        energy, gradient = wall.energy_and_gradient(theta)
        assert energy == 0.0
        assert np.all(gradient == 0.0)
    energy, gradient = wall.energy_and_gradient(np.array([-1.0, 2.0, 3.0]))   # on the faces
    assert energy == 0.0 and np.all(gradient == 0.0)
    energy, gradient = wall.energy_and_gradient(np.array([-1.5, 0.0, 3.25]))
    assert energy == pytest.approx(100.0 * (0.25 + 0.0625))
    np.testing.assert_allclose(gradient, [-100.0, 0.0, 50.0])


def test_wall_plus_tether_minimum():
    # tether pulls to 5, wall at 1: minimum where k (θ - 5) + 2 s (θ - 1) = 0
    k, s = 1.0, 50.0
    potential = Tether(np.full(2, 5.0), k) + Wall(2, -1.0, 1.0, strength=s)
    minimum = np.full(2, (5 * k + 2 * s) / (k + 2 * s))
    np.testing.assert_allclose(potential.gradient(minimum), 0.0, atol=1e-12)
    assert potential.energy(minimum) < potential.energy(minimum + 1e-3)
    assert potential.energy(minimum) < potential.energy(minimum - 1e-3)


def test_wall_input_checks():
    with pytest.raises(ValueError, match="lower must be <= upper"):
        Wall(2, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="power"):
        Wall(2, 0.0, 1.0, 1.0, power=0.5)
    with pytest.raises(ValueError, match="shape"):
        Wall(2, [0.0, 0.0, 0.0], 1.0, 1.0)
    with pytest.raises(ValueError, match="strength"):
        Wall(2, 0.0, 1.0, -1.0)


# --- Tether ----------------------------------------------------------------------
def test_tether_energy_gradient_and_finite_differences():
    centre = np.array([1.0, -2.0, 0.5])
    tether = Tether(centre, 4.0)
    theta = np.array([0.3, 0.7, -1.1])
    energy, gradient = tether.energy_and_gradient(theta)
    assert energy == pytest.approx(2.0 * np.sum((theta - centre) ** 2), rel=1e-14)
    np.testing.assert_allclose(gradient, 4.0 * (theta - centre), rtol=1e-14)
    np.testing.assert_allclose(gradient, _central_difference(tether, theta), rtol=1e-7)
    assert Tether(0.0, 1.0, dimension=5).dimension == 5
    with pytest.raises(ValueError, match="dimension"):
        Tether(0.0, 1.0)


# --- Sum -------------------------------------------------------------------------
def test_sum_of_gaussian_and_tether_is_the_combined_gaussian():
    rng = np.random.default_rng(2)
    d = 3
    a = rng.standard_normal((d, d))
    precision = a @ a.T + d * np.eye(d)
    mean = rng.standard_normal(d)
    centre = rng.standard_normal(d)
    k = 2.5
    total = Sum(Gaussian(mean, precision=precision), Tether(centre, k))
    combined_precision = precision + k * np.eye(d)
    combined_mean = np.linalg.solve(combined_precision, precision @ mean + k * centre)
    constant = 0.5 * (mean @ precision @ mean + k * centre @ centre
                      - combined_mean @ combined_precision @ combined_mean)
    combined = Gaussian(combined_mean, precision=combined_precision)
    for _ in range(10):
        theta = rng.standard_normal(d) * 2
        energy, gradient = total.energy_and_gradient(theta)
        energy_c, gradient_c = combined.energy_and_gradient(theta)
        assert energy == pytest.approx(energy_c + constant, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(gradient, gradient_c, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(gradient, _central_difference(total, theta), rtol=1e-6)
    # the minimiser of the sum is the combined mean (nested dispatch in a kernel)
    run = thermo.optimize(total, "bb", np.zeros(d), 1000, learning_rate=0.01,
                          tolerance=1e-12)
    np.testing.assert_allclose(run.theta, combined_mean, atol=1e-10)


def test_sum_flattens_adds_and_checks():
    g = Gaussian(np.zeros(2))
    t = Tether(np.ones(2), 1.0)
    w = Wall(2, -1.0, 1.0, 1.0)
    s = Sum(Sum(g, t), w)
    assert len(s.parts) == 3
    assert isinstance(t + w, Sum) and isinstance(g + t, Sum)
    assert len((g + t + w).parts) == 3
    theta = np.array([1.5, -0.5])
    expected = g.energy(theta) + t.energy(theta) + w.energy(theta)
    assert s.energy(theta) == pytest.approx(expected, rel=1e-14)
    np.testing.assert_allclose(s.gradient(theta),
                               g.gradient(theta) + t.gradient(theta) + w.gradient(theta))
    assert (g + t + w).energy(theta) == pytest.approx(expected, rel=1e-14)
    with pytest.raises(ValueError, match="dimension"):
        Sum(g, Tether(np.zeros(3), 1.0))
    with pytest.raises(ValueError, match="at least two"):
        Sum(g)
    with pytest.raises(TypeError):
        Sum(g, 3.0)
    assert not s.stochastic
    assert np.isnan(s.accuracy(theta))


def test_sum_minibatches_share_the_generator_and_variances_add():
    first = NoisyGaussian(np.array([1.0, 0.0]), covariance=np.array([1.0, 2.0]),
                          gradient_noise=np.array([0.5, 2.0]))
    second = NoisyGaussian(np.array([0.0, -3.0]), covariance=0.5, gradient_noise=1.5)
    tether = Tether(np.zeros(2), 1.0)
    total = Sum(first, tether, second)
    assert total.stochastic
    theta = np.array([0.2, -0.4])
    # the sum's estimate = the parts' estimates drawn one after the other
    energy, gradient = total.energy_and_gradient(theta, full=False,
                                                 rng=np.random.default_rng(7))
    shared = np.random.default_rng(7)
    e1, g1 = first.energy_and_gradient(theta, full=False, rng=shared)
    e2, g2 = second.energy_and_gradient(theta, full=False, rng=shared)
    et, gt = tether.energy_and_gradient(theta)
    assert energy == pytest.approx(e1 + et + e2, rel=1e-14)
    np.testing.assert_allclose(gradient, g1 + gt + g2, rtol=1e-14)
    # exact values are the sums of the exact parts
    full_energy, full_gradient = total.energy_and_gradient(theta)
    assert full_energy == pytest.approx(first.energy(theta) + et + second.energy(theta))
    np.testing.assert_allclose(full_gradient, first.gradient(theta) + gt
                               + second.gradient(theta), rtol=1e-14)
    # the variance of the estimator is the sum of the parts' variances ...
    _, _, variance = total.energy_gradient_variance(theta, rng=np.random.default_rng(0))
    np.testing.assert_allclose(variance, [0.5 ** 2 + 1.5 ** 2, 2.0 ** 2 + 1.5 ** 2],
                               rtol=1e-14)
    # ... and matches the spread of the draws (relative s.e. of a variance from
    # 4000 draws: sqrt(2/4000) = 2.2 %)
    draws = np.array([total.energy_and_gradient(theta, full=False, rng=shared)[1]
                      for _ in range(4000)])
    np.testing.assert_allclose(draws.mean(axis=0), full_gradient,
                               atol=5 * np.sqrt(variance / 4000).max())
    np.testing.assert_allclose(draws.var(axis=0), variance, rtol=0.12)
