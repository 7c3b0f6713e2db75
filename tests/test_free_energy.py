"""Free energy profiles: exact double well, reweighting, errors, input checks."""
import numpy as np
import pytest
from scipy.integrate import quad

import thermo
from thermo.analysis import free_energy
from thermo.plotting import plot_free_energy
from thermo.potentials import DoubleWell

BETA = 2.0


def exact_bin_free_energy(edges, beta, potential):
    """F of each bin, -β⁻¹ ln of the mean Boltzmann factor over the bin, min 0."""
    f = np.array([-np.log(quad(lambda x: np.exp(-beta * potential(x)), a, b)[0] / (b - a))
                  for a, b in zip(edges[:-1], edges[1:])]) / beta
    return f - f.min()


@pytest.fixture(scope="module")
def double_well_samples():
    run = thermo.sample(DoubleWell(a=1.0), "baoab", theta0=np.array([-1.0]),
                        n_steps=2_000_000, step_size=0.05, beta=BETA, friction=1.0, seed=3,
                        record_every=10, record_trajectory=True)
    return run.trajectory[:, 0]


@pytest.mark.parametrize("error", ["bootstrap", "iat"])
def test_double_well_matches_exact_within_0p2_kT(double_well_samples, error):
    edges = np.linspace(-2.0, 2.0, 41)
    profile = free_energy(double_well_samples, BETA, bins=edges, error=error)
    exact = exact_bin_free_energy(edges, BETA, lambda x: (x * x - 1) ** 2)
    low = exact * BETA < 4.0
    deviation_kt = np.abs(profile.free_energy - exact)[low] * BETA
    assert deviation_kt.max() < 0.2
    assert np.nanmin(profile.free_energy) == 0.0
    # Error bars are honest: deviations are a few σ at most, and not absurdly large.
    assert np.all(np.abs(profile.free_energy - exact)[low] < 5 * profile.error[low] + 0.02)
    assert np.median(profile.error[low]) * BETA < 0.15
    fig = plot_free_energy(profile, exact=exact)
    assert fig.axes


def test_reweighting_a_biased_run():
    # Samples from exp(-β (U + V)) with V = -U: uniform on [-2, 2]; weights
    # exp(β V) = exp(-β U) must bring back the double well.
    rng = np.random.default_rng(0)
    s = rng.uniform(-2, 2, 400_000)
    u = (s * s - 1) ** 2
    edges = np.linspace(-2.0, 2.0, 21)
    exact = exact_bin_free_energy(edges, BETA, lambda x: (x * x - 1) ** 2)
    low = exact * BETA < 4.0
    by_weights = free_energy(s, BETA, bins=edges, weights=np.exp(-BETA * u))
    by_logs = free_energy(s, BETA, bins=edges, log_weights=-BETA * u + 1000.0)
    np.testing.assert_allclose(by_logs.free_energy, by_weights.free_energy, atol=1e-9)
    assert np.abs(by_weights.free_energy - exact)[low].max() * BETA < 0.1
    unweighted = free_energy(s, BETA, bins=edges)
    assert np.abs(unweighted.free_energy).max() < 0.1  # flat without reweighting


def test_empty_bins_and_probability_normalisation():
    s = np.random.default_rng(1).standard_normal(5000)
    profile = free_energy(s, 1.0, bins=np.linspace(-10, 10, 41), error="iat")
    assert np.sum(profile.probability * np.diff(profile.edges)) == pytest.approx(1.0)
    empty = profile.counts == 0
    assert np.all(np.isinf(profile.free_energy[empty]))
    assert np.all(np.isnan(profile.error[empty]))


def test_bad_input():
    s = np.arange(100.0)
    with pytest.raises(ValueError, match="beta"):
        free_energy(s, 0.0)
    with pytest.raises(ValueError, match="1-D"):
        free_energy(s.reshape(10, 10), 1.0)
    with pytest.raises(ValueError, match="weights must have shape"):
        free_energy(s, 1.0, weights=np.ones(5))
    with pytest.raises(ValueError, match="not both"):
        free_energy(s, 1.0, weights=np.ones(100), log_weights=np.zeros(100))
    with pytest.raises(ValueError, match="increasing"):
        free_energy(s, 1.0, bins=[3.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="error"):
        free_energy(s, 1.0, error="jackknife")
    with pytest.raises(ValueError, match="no CV values"):
        free_energy(s, 1.0, bins=[200.0, 300.0])
