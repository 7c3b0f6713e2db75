"""Autocorrelation functions and integrated autocorrelation times.

The integrated autocorrelation time (IAT) is defined here as

.. math:: \\tau = 1 + 2 \\sum_{t \\ge 1} \\rho(t),

so that uncorrelated samples have τ = 1, the effective sample size is
``n / τ`` and the Monte Carlo standard error of a mean is
``sqrt(τ Var(x) / n)``.  For an AR(1) process ``x_{t+1} = a x_t + ξ_t`` it is
``(1 + a) / (1 - a)``.

The sum is truncated with Sokal's automatic window: the smallest ``M`` with
``M >= c τ(M)`` (``c = 5`` by default).  Two things make an estimate
unreliable, and both are reported rather than silently ignored:

* the window condition is not met at a lag below a quarter of the series
  (the autocorrelation has not decayed within the data; τ is then reported as
  the largest partial sum up to that lag, a lower bound), or
* the series is shorter than ``min_length_factor * τ`` (50 τ by default, the
  length Sokal recommends for a trustworthy τ).

What happens then is chosen with ``on_short``: ``"warn"`` (default) issues a
:class:`ShortSeriesWarning` and still returns the (lower-bound) estimate,
``"raise"`` raises :class:`ShortSeriesError` (a ``ValueError``), ``"ignore"``
returns quietly.  With ``full_output=True`` an :class:`IATResult` carries the
``reliable`` flag together with the window, so callers can branch on it.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ShortSeriesWarning",
    "ShortSeriesError",
    "IATResult",
    "autocovariance",
    "autocorrelation",
    "integrated_autocorrelation_time",
]

_ON_SHORT = ("warn", "raise", "ignore")


class ShortSeriesWarning(UserWarning):
    """A series is too short for a reliable integrated autocorrelation time."""


class ShortSeriesError(ValueError):
    """A series is too short for a reliable integrated autocorrelation time."""


@dataclass(frozen=True)
class IATResult:
    """Integrated autocorrelation time with its diagnostics.

    Attributes
    ----------
    tau : float or ndarray
        IAT estimate(s), ``1 + 2 Σ_{t=1}^{M} ρ(t)``; one per column for 2-D input.
    window : int or ndarray
        Sokal window ``M`` used (the last lag when the condition was not met).
    window_ok : bool or ndarray
        Whether the window condition ``M >= c τ(M)`` was met at ``M < n/4``.
    n : int
        Length of the series.
    reliable : bool or ndarray
        ``window_ok`` and ``n >= min_length_factor * tau``.

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal(10_000)
    >>> result = integrated_autocorrelation_time(x, full_output=True)
    >>> result.n, result.window_ok, result.reliable, round(result.tau)
    (10000, True, True, 1)
    >>> bool(result.ess > 8000)
    True
    """

    tau: object
    window: object
    window_ok: object
    n: int
    reliable: object

    @property
    def ess(self):
        """Effective sample size ``n / τ``."""
        return np.divide(self.n, self.tau)


def _as_series(x, name="x"):
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real numeric array, got dtype {x.dtype}")
    if x.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape (n,) or (n, k), got {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples along axis 0, got {x.shape[0]}")
    if x.ndim == 2 and x.shape[1] == 0:
        raise ValueError(f"{name} has no columns")
    x = x.astype(np.float64, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def autocovariance(x, max_lag=None):
    """Biased autocovariance ``C(t) = (1/n) Σ_i (x_i - x̄)(x_{i+t} - x̄)`` by FFT.

    Parameters
    ----------
    x : array_like, shape (n,) or (n, k)
        Time series (columns are independent series).
    max_lag : int, optional
        Largest lag returned (default ``n - 1``).

    Returns
    -------
    ndarray, shape (max_lag + 1,) or (max_lag + 1, k)
        Autocovariance at lags ``0 .. max_lag``.  The biased (1/n)
        normalisation keeps the estimate positive semi-definite.

    Examples
    --------
    >>> autocovariance([1.0, -1.0, 1.0, -1.0])
    array([ 1.  , -0.75,  0.5 , -0.25])
    >>> autocovariance(np.ones((10, 2)) * np.arange(10.0)[:, None], max_lag=2).shape
    (3, 2)
    """
    x = _as_series(x)
    n = x.shape[0]
    if max_lag is None:
        max_lag = n - 1
    max_lag = int(max_lag)
    if not 0 <= max_lag < n:
        raise ValueError(f"max_lag must be in [0, {n - 1}], got {max_lag}")
    centred = x - x.mean(axis=0)
    size = 1 << int(np.ceil(np.log2(2 * n)))  # zero padding: no circular wrap
    spectrum = np.fft.rfft(centred, n=size, axis=0)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), n=size, axis=0)[: max_lag + 1]
    return acov / n


def autocorrelation(x, max_lag=None):
    """Normalised autocorrelation ``ρ(t) = C(t) / C(0)``.

    Parameters
    ----------
    x : array_like, shape (n,) or (n, k)
        Time series.
    max_lag : int, optional
        Largest lag returned (default ``n - 1``).

    Returns
    -------
    ndarray
        ``ρ(0) = 1``.  A constant series raises ``ValueError`` (ρ undefined).

    Examples
    --------
    >>> autocorrelation([1.0, -1.0, 1.0, -1.0], max_lag=2)
    array([ 1.  , -0.75,  0.5 ])
    """
    acov = autocovariance(x, max_lag)
    c0 = acov[0]
    if np.any(c0 <= 0.0):
        raise ValueError("series is constant (zero variance): autocorrelation undefined")
    return acov / c0


def _sokal_1d(rho, c):
    """τ and window for one autocorrelation function (lags 0..n-1)."""
    taus = 2.0 * np.cumsum(rho) - 1.0  # taus[M] = 1 + 2 Σ_{t=1}^{M} ρ(t)
    lags = np.arange(rho.size)
    ok = lags >= c * taus
    # Lag 0 trivially satisfies M >= c τ only if τ <= 0, which cannot be a
    # valid answer; start looking at lag 1.
    ok[0] = False
    hits = np.flatnonzero(ok)
    # The biased estimator's ρ sums to zero over all lags, so the condition is
    # always met eventually; a window beyond a quarter of the series only
    # comes from the noisy, eroded tail and does not count.
    if hits.size and hits[0] < rho.size / 4:
        m = int(hits[0])
        return float(taus[m]), m, True
    m = int(hits[0]) if hits.size else rho.size - 1
    m = min(m, rho.size // 4)
    return float(np.max(taus[1:m + 1])) if m >= 1 else float(taus[0]), m, False


def integrated_autocorrelation_time(x, c=5.0, min_length_factor=50.0, on_short="warn",
                                    full_output=False):
    """Integrated autocorrelation time with Sokal's automatic window.

    Parameters
    ----------
    x : array_like, shape (n,) or (n, k)
        Time series; with 2-D input each column gets its own τ.
    c : float, optional
        Window constant: the window is the smallest ``M`` with ``M >= c τ(M)``
        (default 5).
    min_length_factor : float, optional
        The series counts as too short when ``n < min_length_factor * τ``
        (default 50).
    on_short : {"warn", "raise", "ignore"}, optional
        What to do when the estimate is unreliable (see module docstring).
    full_output : bool, optional
        Return an :class:`IATResult` instead of τ alone.

    Returns
    -------
    float or ndarray or IATResult
        τ (≥ 1 up to noise) per column, in units of the sampling interval of
        ``x``; multiply by the record interval to get steps.

    Raises
    ------
    ShortSeriesError
        With ``on_short="raise"`` when the window condition fails or
        ``n < min_length_factor * τ``.
    ValueError
        For a constant series, non-finite values, or bad parameters.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.zeros(100_000)
    >>> for i in range(1, x.size):
    ...     x[i] = 0.8 * x[i - 1] + rng.standard_normal()
    >>> round(integrated_autocorrelation_time(x))  # exact (1 + 0.8) / (1 - 0.8) = 9
    9
    """
    if on_short not in _ON_SHORT:
        raise ValueError(f"on_short must be one of {_ON_SHORT}, got {on_short!r}")
    if not c > 0:
        raise ValueError(f"c must be positive, got {c}")
    if not min_length_factor >= 0:
        raise ValueError(f"min_length_factor must be >= 0, got {min_length_factor}")
    x = _as_series(x)
    one_d = x.ndim == 1
    rho = autocorrelation(x)
    if one_d:
        rho = rho[:, None]
    n = x.shape[0]
    k = rho.shape[1]
    tau = np.empty(k)
    window = np.empty(k, dtype=np.int64)
    window_ok = np.empty(k, dtype=bool)
    for j in range(k):
        tau[j], window[j], window_ok[j] = _sokal_1d(rho[:, j], c)
    reliable = window_ok & (n >= min_length_factor * tau)
    if not np.all(reliable) and on_short != "ignore":
        bad = np.flatnonzero(~reliable)
        j = int(bad[0])
        which = "" if one_d else f" (column {j}{' and others' if bad.size > 1 else ''})"
        if not window_ok[j]:
            reason = (f"the autocorrelation has not decayed within the series: Sokal's "
                      f"window condition M >= {c:g} tau was never met (tau >= {tau[j]:.3g} "
                      f"is a lower bound)")
        else:
            reason = (f"n = {n} < {min_length_factor:g} tau = {min_length_factor * tau[j]:.4g} "
                      f"(tau = {tau[j]:.3g})")
        message = (f"series too short for a reliable integrated autocorrelation time{which}: "
                   f"{reason}; run longer or record more often")
        if on_short == "raise":
            raise ShortSeriesError(message)
        warnings.warn(message, ShortSeriesWarning, stacklevel=2)
    if one_d:
        result = IATResult(float(tau[0]), int(window[0]), bool(window_ok[0]), n,
                           bool(reliable[0]))
    else:
        result = IATResult(tau, window, window_ok, n, reliable)
    return result if full_output else result.tau
