"""Means with error bars: IAT and blocking MCSE, ESS, ensembles and split-R-hat."""
import numpy as np
import pytest
from scipy.signal import lfilter

from thermo.analysis import (
    ShortSeriesError,
    ShortSeriesWarning,
    block_average,
    blocking_analysis,
    effective_sample_size,
    ensemble_summary,
    mean_with_error,
    split_rhat,
    summarize,
)


def ar1(a, shape, rng):
    noise = rng.standard_normal(shape)
    noise[0] /= np.sqrt(1 - a * a)
    return lfilter([1.0], [1.0, -a], noise, axis=0)


def test_mcse_matches_spread_of_independent_runs():
    # The MCSE of one run must predict the scatter of means over many runs.
    rng = np.random.default_rng(0)
    a, n = 0.9, 20_000
    runs = ar1(a, (n, 200), rng)
    true_se = runs.mean(axis=0).std(ddof=1)
    est = summarize(runs[:, 0])
    assert est.reliable
    assert est.mcse_iat == pytest.approx(true_se, rel=0.25)
    assert est.mcse_block == pytest.approx(true_se, rel=0.35)
    # exact: sqrt(τ σ²/n) with σ² = 1/(1-a²)
    exact = np.sqrt((1 + a) / (1 - a) / (1 - a * a) / n)
    assert true_se == pytest.approx(exact, rel=0.15)
    assert est.ess == pytest.approx(n / est.tau)
    assert "±" in str(est)


def test_blocking_plateau_and_block_average():
    rng = np.random.default_rng(1)
    x = ar1(0.8, 2 ** 16, rng)
    result = blocking_analysis(x)
    assert result.plateau_found
    assert result.block_size >= 8  # τ = 9: blocks must be longer than τ
    mean, se = block_average(x)
    assert mean == pytest.approx(x.mean(), abs=1e-12)
    assert se == pytest.approx(result.standard_error)
    _, se_fixed = block_average(x, n_blocks=64)
    assert se_fixed == pytest.approx(se, rel=0.4)
    with pytest.raises(ValueError, match="not both"):
        block_average(x, n_blocks=4, block_size=8)


def test_mean_with_error_and_ess():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(50_000)
    m, e = mean_with_error(x)
    assert abs(m) < 4 * e
    assert e == pytest.approx(1 / np.sqrt(x.size), rel=0.1)
    assert mean_with_error(x, method="block")[1] == pytest.approx(e, rel=0.3)
    assert effective_sample_size(x) == pytest.approx(x.size, rel=0.1)
    with pytest.raises(ValueError, match="method"):
        mean_with_error(x, method="bootstrap")


def test_short_series_is_flagged():
    rng = np.random.default_rng(3)
    x = ar1(0.99, 1000, rng)
    with pytest.warns(ShortSeriesWarning):
        est = summarize(x)
    assert not est.reliable
    with pytest.raises(ShortSeriesError):
        summarize(x, on_short="raise")


def test_ensemble_mixed_and_unmixed():
    rng = np.random.default_rng(4)
    chains = ar1(0.5, (20_000, 4), rng)
    ens = ensemble_summary(chains)
    assert len(ens.per_walker) == 4
    assert ens.rhat < 1.01 and ens.reliable
    assert ens.mean == pytest.approx(chains.mean())
    assert ens.ess == pytest.approx(sum(e.ess for e in ens.per_walker))
    assert ens.mcse == pytest.approx(np.sqrt(3 / chains.size), rel=0.2)
    stuck = chains + np.array([0.0, 0.0, 3.0, 3.0])  # walkers in different states
    assert split_rhat(stuck) > 1.5
    assert not ensemble_summary(stuck, on_short="ignore").reliable


def test_split_rhat_detects_drift_within_one_walker():
    rng = np.random.default_rng(5)
    drift = rng.standard_normal((4000, 1)) + np.linspace(0, 5, 4000)[:, None]
    assert split_rhat(drift) > 1.2
    with pytest.raises(ValueError, match="n_steps, n_walkers"):
        split_rhat(np.ones(10))
