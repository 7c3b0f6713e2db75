"""Analytic potentials: energies, gradients and Laplacians against finite
differences and known values; parameter validation."""
import numpy as np
import pytest

from thermo.potentials.analytic import DoubleWell, Gaussian, MuellerBrown, NoisyGaussian
from thermo.samplers._solvers import has_laplacian, potential_laplacian


def finite_difference_gradient(potential, theta, eps=1e-6):
    gradient = np.empty_like(theta)
    for i in range(theta.size):
        step = np.zeros_like(theta)
        step[i] = eps
        gradient[i] = (potential.energy(theta + step) - potential.energy(theta - step)) / (2 * eps)
    return gradient


def finite_difference_laplacian(potential, theta, eps=1e-4):
    total = 0.0
    centre = potential.energy(theta)
    for i in range(theta.size):
        step = np.zeros_like(theta)
        step[i] = eps
        total += (potential.energy(theta + step) - 2 * centre
                  + potential.energy(theta - step)) / eps ** 2
    return total


POTENTIALS = [
    Gaussian([0.5, -1.0, 2.0], [[2.0, 0.3, 0.1], [0.3, 1.0, -0.2], [0.1, -0.2, 0.5]]),
    DoubleWell(a=1.5, b=0.4),
    DoubleWell(a=0.7, b=-0.2, transverse_stiffness=3.0, copies=2),
    MuellerBrown(scale=20.0),
]


@pytest.mark.parametrize("potential", POTENTIALS, ids=repr)
def test_gradient_and_laplacian_match_finite_differences(potential):
    rng = np.random.default_rng(0)
    for _ in range(3):
        theta = rng.uniform(-1.0, 1.0, potential.dimension)
        energy, gradient = potential.energy_and_gradient(theta)
        np.testing.assert_allclose(gradient, finite_difference_gradient(potential, theta),
                                   rtol=1e-6, atol=1e-6)
        assert has_laplacian(potential)
        assert potential_laplacian(potential, theta) == pytest.approx(
            finite_difference_laplacian(potential, theta), rel=1e-4, abs=1e-4)


def test_gaussian_values_and_parametrisations():
    mean = np.array([1.0, -2.0])
    covariance = np.array([[2.0, 0.5], [0.5, 1.0]])
    potential = Gaussian(mean, covariance)
    theta = np.array([0.3, 0.7])
    difference = theta - mean
    precision = np.linalg.inv(covariance)
    assert potential.energy(theta) == pytest.approx(0.5 * difference @ precision @ difference)
    same = Gaussian(mean, precision=precision)
    assert same.energy(theta) == pytest.approx(potential.energy(theta))
    np.testing.assert_allclose(Gaussian(mean, [2.0, 3.0]).covariance, np.diag([2.0, 3.0]))
    np.testing.assert_allclose(Gaussian(mean, 2.0).covariance, 2.0 * np.eye(2))
    np.testing.assert_allclose(Gaussian(np.zeros(4)).precision, np.eye(4))
    assert potential_laplacian(potential, theta) == pytest.approx(np.trace(precision))


@pytest.mark.parametrize("arguments,match", [
    (dict(mean=[0.0, 0.0], covariance=[[1.0, 2.0], [2.0, 1.0]]), "positive definite"),
    (dict(mean=[0.0, 0.0], covariance=[[1.0, 0.2], [0.3, 1.0]]), "symmetric"),
    (dict(mean=[0.0, 0.0], covariance=np.eye(3)), "shape"),
    (dict(mean=[0.0, np.nan]), "finite"),
    (dict(mean=[0.0], covariance=1.0, precision=1.0), "not both"),
])
def test_gaussian_rejects_bad_parameters(arguments, match):
    with pytest.raises(ValueError, match=match):
        Gaussian(**arguments)


def test_double_well_layout_and_values():
    one = DoubleWell(a=2.0, b=0.5)
    assert one.dimension == 1
    assert one.energy(np.array([1.0])) == pytest.approx(0.5)
    assert one.energy(np.array([0.0])) == pytest.approx(2.0)
    two = DoubleWell(a=2.0, b=0.5, transverse_stiffness=4.0, copies=3)
    assert two.dimension == 6
    theta = np.array([1.0, 0.5, 0.0, 0.0, -1.0, 1.0])
    assert two.energy(theta) == pytest.approx(0.5 + 0.5 + 2.0 + 0 + (-0.5) + 2.0)
    for bad in (dict(a=0.0), dict(a=1.0, transverse_stiffness=0.0), dict(copies=0),
                dict(b=np.inf)):
        with pytest.raises(ValueError):
            DoubleWell(**bad)


def test_mueller_brown_minima():
    potential = MuellerBrown()
    # standard values of the three minima (Müller & Brown 1979)
    expected = [-146.69951720995402, -108.16672411685236, -80.76781812965908]
    for minimum, energy in zip(MuellerBrown.MINIMA, expected):
        assert potential.energy(minimum) == pytest.approx(energy, abs=1e-3)
        assert np.linalg.norm(potential.gradient(minimum)) < 0.1
    scaled = MuellerBrown(scale=20.0)
    assert scaled.energy(MuellerBrown.MINIMA[0]) == pytest.approx(
        potential.energy(MuellerBrown.MINIMA[0]) / 20.0)
    with pytest.raises(ValueError):
        MuellerBrown(scale=-1.0)


def test_noisy_gaussian_reports_its_noise():
    potential = NoisyGaussian([0.0, 1.0], [[1.0, 0.2], [0.2, 2.0]], gradient_noise=[0.5, 2.0])
    assert potential.stochastic
    theta = np.array([0.4, -0.3])
    exact = Gaussian([0.0, 1.0], [[1.0, 0.2], [0.2, 2.0]]).gradient(theta)
    np.testing.assert_allclose(potential.gradient(theta), exact)      # full: exact
    rng = np.random.default_rng(1)
    draws = np.array([potential.gradient(theta, full=False, rng=rng) for _ in range(4000)])
    np.testing.assert_allclose(draws.mean(axis=0), exact, atol=5 * 2.0 / np.sqrt(4000))
    np.testing.assert_allclose(draws.std(axis=0), [0.5, 2.0], rtol=0.05)
    _, _, variance = potential.energy_gradient_variance(theta, rng=rng)
    np.testing.assert_allclose(variance, [0.25, 4.0])
    with pytest.raises(ValueError):
        NoisyGaussian([0.0], gradient_noise=-1.0)
