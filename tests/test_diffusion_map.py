"""Diffusion maps: circle, 2-D double well (vanilla and target measure), ε failures."""
import numpy as np
import pytest

import thermo
from thermo.analysis import DiffusionMapError, choose_epsilon, diffusion_map
from thermo.plotting import plot_embedding
from thermo.potentials import DoubleWell


def multiple_correlation(coords, target):
    """Correlation of ``target`` with its best linear fit from ``coords``."""
    design = np.column_stack([coords, np.ones(len(target))])
    coef = np.linalg.lstsq(design, target, rcond=None)[0]
    return np.corrcoef(design @ coef, target)[0, 1]


def test_circle_coordinates_recover_the_angle():
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, 2 * np.pi, 800)
    points = np.column_stack([np.cos(angle), np.sin(angle)])
    points += 0.01 * rng.standard_normal(points.shape)
    result = diffusion_map(points, n_evecs=2)
    assert result.coordinates.shape == (800, 2)
    # cos/sin are a degenerate pair: any rotation of them is a valid pair of
    # coordinates, so compare with the best linear combination.
    assert multiple_correlation(result.coordinates, np.cos(angle)) > 0.99
    assert multiple_correlation(result.coordinates, np.sin(angle)) > 0.99
    # Laplace–Beltrami on the unit circle: λ₁ = λ₂ (the pair), λ₃ = 4 λ₁ (next pair).
    assert result.eigenvalues[1] / result.eigenvalues[0] == pytest.approx(1.0, abs=0.2)
    # Everything a Nyström CV needs is exposed.
    assert result.epsilon > 0 and result.alpha == 0.5
    assert result.data.shape == (800, 2) and result.kde.shape == (800,)
    np.testing.assert_allclose(result.right_normalization, result.kde ** -0.5)
    assert result.target_weights is None
    np.testing.assert_allclose(result.transform(points[:5] * 1.001), result.coordinates[:5],
                               rtol=0.05, atol=0.05 * np.abs(result.coordinates).max())


@pytest.fixture(scope="module")
def double_well_run():
    pot = DoubleWell(a=1.0, transverse_stiffness=2.0)
    run = thermo.sample(pot, "baoab", theta0=np.array([-1.0, 0.0]), n_steps=300_000,
                        step_size=0.05, beta=4.0, friction=1.0, seed=1, record_every=100,
                        record_trajectory=True)
    assert np.sum(np.diff(np.sign(run.trajectory[:, 0])) != 0) > 20  # many transitions
    return pot, run


@pytest.mark.parametrize("target_measure", [False, True])
def test_double_well_first_coordinate_is_the_well(double_well_run, target_measure):
    pot, run = double_well_run
    traj = run.trajectory
    energies = np.array([pot.energy(t) for t in traj]) if target_measure else None
    result = diffusion_map(traj, n_evecs=2, target_measure=target_measure,
                           energies=energies, beta=4.0 if target_measure else None,
                           max_points=1500, k=128)
    well = result.data[:, 0]
    assert abs(np.corrcoef(result.coordinates[:, 0], well)[0, 1]) > 0.9
    # The slowest mode (barrier crossing) is well separated from the next one.
    assert result.eigenvalues[1] < 3 * result.eigenvalues[0] < 0
    if target_measure:
        assert result.alpha == 1.0
        u = energies[result.indices]
        np.testing.assert_allclose(result.target_weights, np.exp(-2.0 * (u - u.min())))
        np.testing.assert_allclose(result.weights,
                                   result.kde ** -1.0 * result.target_weights)
        fig = plot_embedding(result, color=energies)
        assert len(fig.axes) == 2


def test_bgh_epsilon_failure_gives_clear_message():
    # Two metastable states: pydiffmap's 'bgh' ε is far below the gap, the
    # kernel graph falls apart and ARPACK would not converge.
    rng = np.random.default_rng(2)
    points = np.concatenate([rng.standard_normal((150, 2)) * 0.05 - [1, 0],
                             rng.standard_normal((150, 2)) * 0.05 + [1, 0]])
    with pytest.raises(DiffusionMapError, match="disconnected.*larger epsilon"):
        diffusion_map(points, epsilon="bgh", k=300)
    # No transitions at all within the neighbour search: no ε can help.
    with pytest.raises(DiffusionMapError, match="Increase k"):
        diffusion_map(points, k=20)
    # With k large enough the sweep links the states and the map separates them.
    result = diffusion_map(points, k=300, n_evecs=1)
    assert abs(np.corrcoef(result.coordinates[:, 0], points[:, 0])[0, 1]) > 0.99
    eps, sweep = choose_epsilon(points, k=300)
    assert eps >= sweep["connected_min"] > sweep["bgh"]


def test_bad_input():
    points = np.random.default_rng(3).standard_normal((50, 3))
    with pytest.raises(ValueError, match="energies"):
        diffusion_map(points, target_measure=True)
    with pytest.raises(ValueError, match="shape"):
        diffusion_map(points[:, 0])
    with pytest.raises(ValueError, match="epsilon"):
        diffusion_map(points, epsilon="auto")
    with pytest.raises(ValueError, match="positive"):
        diffusion_map(points, epsilon=-1.0)
    with pytest.raises(ValueError, match="target_measure=True"):
        diffusion_map(points, energies=np.ones(50))
