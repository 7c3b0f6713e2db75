"""Integrated autocorrelation time (Sokal window) and the short-series guard."""
import warnings

import numpy as np
import pytest
from scipy.signal import lfilter

from thermo.analysis import (
    ShortSeriesError,
    ShortSeriesWarning,
    autocorrelation,
    autocovariance,
    integrated_autocorrelation_time,
)


def ar1(a, n, rng, k=None):
    """AR(1) x_t = a x_{t-1} + ξ_t started in equilibrium; exact τ = (1+a)/(1-a)."""
    shape = (n,) if k is None else (n, k)
    noise = rng.standard_normal(shape)
    noise[0] /= np.sqrt(1 - a * a)
    return lfilter([1.0], [1.0, -a], noise, axis=0)


@pytest.mark.parametrize("a", [0.0, 0.5, 0.9, 0.98])
def test_ar1_iat_within_10_percent(a):
    rng = np.random.default_rng(42)
    exact = (1 + a) / (1 - a)
    x = ar1(a, 400_000, rng)
    result = integrated_autocorrelation_time(x, full_output=True)
    assert result.reliable and result.window_ok
    assert abs(result.tau - exact) / exact < 0.10
    assert result.ess == pytest.approx(x.size / result.tau)


def test_columns_are_independent_series():
    rng = np.random.default_rng(1)
    x = np.column_stack([ar1(0.5, 200_000, rng), ar1(0.9, 200_000, rng)])
    tau = integrated_autocorrelation_time(x)
    assert tau.shape == (2,)
    np.testing.assert_allclose(tau, [3.0, 19.0], rtol=0.1)


def test_short_series_warns_raises_or_flags():
    rng = np.random.default_rng(2)
    x = ar1(0.99, 2000, rng)  # τ = 199, needs ~10^4 samples
    with pytest.warns(ShortSeriesWarning, match="too short"):
        integrated_autocorrelation_time(x)
    with pytest.raises(ShortSeriesError, match="too short"):
        integrated_autocorrelation_time(x, on_short="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = integrated_autocorrelation_time(x, on_short="ignore", full_output=True)
    assert not result.reliable


def test_window_condition_failure_is_reported():
    # A linear ramp never decorrelates inside the series.
    x = np.linspace(0, 1, 500) + 1e-3 * np.random.default_rng(3).standard_normal(500)
    with pytest.raises(ShortSeriesError, match="window condition"):
        integrated_autocorrelation_time(x, on_short="raise")
    result = integrated_autocorrelation_time(x, on_short="ignore", full_output=True)
    assert not result.window_ok


def test_autocovariance_matches_direct_sum():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(300)
    c = x - x.mean()
    direct = np.array([np.dot(c[: x.size - t], c[t:]) / x.size for t in range(20)])
    np.testing.assert_allclose(autocovariance(x, max_lag=19), direct, atol=1e-12)
    assert autocorrelation(x, 5)[0] == pytest.approx(1.0)


@pytest.mark.parametrize("bad, error", [
    (np.array([1.0]), ValueError),
    (np.ones((3, 3, 3)), ValueError),
    (np.array(["a", "b", "c"]), TypeError),
    (np.array([1.0, np.nan, 2.0]), ValueError),
])
def test_bad_input(bad, error):
    with pytest.raises(error):
        integrated_autocorrelation_time(bad)


def test_constant_series_and_bad_option():
    with pytest.raises(ValueError, match="constant"):
        integrated_autocorrelation_time(np.ones(100))
    with pytest.raises(ValueError, match="on_short"):
        integrated_autocorrelation_time(np.arange(100.0), on_short="maybe")
