"""Averages with error bars for correlated samples and walker ensembles.

Two independent Monte Carlo standard errors (MCSE) of a mean are offered:

``"iat"``
    ``sqrt(τ s² / n)`` with τ the integrated autocorrelation time from
    :func:`thermo.analysis.integrated_autocorrelation_time` (Sokal window).
``"block"``
    Flyvbjerg–Petersen blocking: the standard error of the means of
    non-overlapping blocks, the block size doubled until the estimate reaches a
    plateau (see :func:`blocking_analysis`).

Both are only trustworthy when the series is much longer than τ; every result
carries a ``reliable`` flag, and the functions warn
(:class:`~thermo.analysis.autocorrelation.ShortSeriesWarning`) or raise
(``on_short="raise"``) instead of silently returning a number from a series
that is too short.

For ensembles of walkers (array ``(n_steps, n_walkers)``) :func:`ensemble_summary`
gives per-walker estimates, the pooled mean and error and the split-R-hat of
Gelman et al. (Bayesian Data Analysis, 3rd ed., §11.4).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from thermo.analysis.autocorrelation import (
    ShortSeriesError,
    ShortSeriesWarning,
    _ON_SHORT,
    _as_series,
    integrated_autocorrelation_time,
)

__all__ = [
    "Estimate",
    "EnsembleEstimate",
    "BlockingResult",
    "summarize",
    "mean_with_error",
    "effective_sample_size",
    "blocking_analysis",
    "block_average",
    "split_rhat",
    "ensemble_summary",
]


@dataclass(frozen=True)
class Estimate:
    """Mean of a correlated series with its error bars.

    Attributes
    ----------
    mean, variance, std : float
        Sample mean, variance (ddof=1) and standard deviation.
    n : int
        Number of samples.
    tau : float
        Integrated autocorrelation time (in sample intervals).
    ess : float
        Effective sample size ``n / tau``.
    mcse_iat : float
        ``sqrt(tau * variance / n)``.
    mcse_block : float
        Blocking (Flyvbjerg–Petersen) standard error at the plateau.
    reliable : bool
        IAT window condition met, ``n >= 50 tau`` and the blocking plateau found.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> est = summarize(rng.standard_normal(5000))
    >>> est.n, est.reliable, abs(est.mean) < 0.05
    (5000, True, True)
    >>> bool(abs(est.mcse_iat - est.std / np.sqrt(est.n)) < 0.003)  # τ ≈ 1 for white noise
    True
    """

    mean: float
    variance: float
    std: float
    n: int
    tau: float
    ess: float
    mcse_iat: float
    mcse_block: float
    reliable: bool

    def __str__(self):
        flag = "" if self.reliable else " (UNRELIABLE: series too short)"
        return (f"{self.mean:.6g} ± {self.mcse_iat:.2g} (IAT) / ± {self.mcse_block:.2g} "
                f"(blocks); tau = {self.tau:.3g}, ESS = {self.ess:.4g}{flag}")


@dataclass(frozen=True)
class BlockingResult:
    """Blocking analysis of one series.

    Attributes
    ----------
    block_sizes : ndarray of int
        Block sizes tried (powers of two).
    n_blocks : ndarray of int
        Number of blocks at each size.
    standard_errors : ndarray
        Standard error of the mean estimated from the block means.
    uncertainties : ndarray
        Statistical uncertainty of each standard error, ``se / sqrt(2 (m - 1))``.
    plateau_index : int
        Index of the chosen block size (the last one when no plateau was found).
    plateau_found : bool
        Whether the standard error stopped growing while >= ``min_blocks`` blocks remained.

    Examples
    --------
    >>> result = blocking_analysis(np.random.default_rng(0).standard_normal(4096))
    >>> result.block_sizes[:4]
    array([1, 2, 4, 8])
    >>> result.plateau_found, result.block_size
    (True, 1)
    """

    block_sizes: np.ndarray
    n_blocks: np.ndarray
    standard_errors: np.ndarray
    uncertainties: np.ndarray
    plateau_index: int
    plateau_found: bool

    @property
    def standard_error(self):
        """Standard error of the mean at the chosen block size."""
        return float(self.standard_errors[self.plateau_index])

    @property
    def block_size(self):
        """Chosen block size."""
        return int(self.block_sizes[self.plateau_index])


def _as_1d(x, name="x"):
    x = _as_series(x, name)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D here, got shape {x.shape}")
    return x


def blocking_analysis(x, min_blocks=16):
    """Flyvbjerg–Petersen blocking analysis of the standard error of the mean.

    The series is cut into non-overlapping blocks of size 1, 2, 4, … (a
    trailing remainder is dropped) and the standard error is estimated from the
    block means.  It grows with the block size until blocks are longer than the
    correlation time, then stays flat.  The plateau is the first block size
    whose error is within one statistical uncertainty of the next two sizes.

    Parameters
    ----------
    x : array_like, shape (n,)
        Time series.
    min_blocks : int, optional
        Smallest number of blocks considered (default 16).

    Returns
    -------
    BlockingResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.repeat(rng.standard_normal(512), 8)  # blocks of 8 equal values
    >>> result = blocking_analysis(x)
    >>> result.plateau_found, result.block_size >= 8
    (True, True)
    """
    x = _as_1d(x)
    min_blocks = int(min_blocks)
    if min_blocks < 2:
        raise ValueError(f"min_blocks must be >= 2, got {min_blocks}")
    n = x.size
    if n < 2 * min_blocks:
        raise ShortSeriesError(
            f"series too short for blocking: n = {n} < 2 * min_blocks = {2 * min_blocks}")
    sizes, counts, errors, uncertainties = [], [], [], []
    size = 1
    while n // size >= min_blocks:
        m = n // size
        means = x[: m * size].reshape(m, size).mean(axis=1)
        se = np.sqrt(means.var(ddof=1) / m)
        sizes.append(size)
        counts.append(m)
        errors.append(se)
        uncertainties.append(se / np.sqrt(2.0 * (m - 1)))
        size *= 2
    errors = np.array(errors)
    uncertainties = np.array(uncertainties)
    plateau, found = len(errors) - 1, False
    for i in range(len(errors) - 2):
        if (errors[i + 1] - errors[i] <= uncertainties[i]
                and errors[i + 2] - errors[i] <= uncertainties[i]):
            plateau, found = i, True
            break
    return BlockingResult(np.array(sizes), np.array(counts), errors, uncertainties,
                          plateau, found)


def block_average(x, n_blocks=None, block_size=None):
    """Mean and standard error from non-overlapping block means.

    Parameters
    ----------
    x : array_like, shape (n,)
        Time series.
    n_blocks, block_size : int, optional
        Give one of them.  With neither, the blocking plateau of
        :func:`blocking_analysis` is used.

    Returns
    -------
    mean : float
        Mean of the samples used (a trailing remainder is dropped).
    standard_error : float
        Standard deviation of the block means over ``sqrt(n_blocks)``.

    Examples
    --------
    >>> mean, error = block_average(np.arange(100.0), n_blocks=4)
    >>> mean, round(error, 2)
    (49.5, 16.14)
    """
    x = _as_1d(x)
    if n_blocks is not None and block_size is not None:
        raise ValueError("give n_blocks or block_size, not both")
    if n_blocks is None and block_size is None:
        result = blocking_analysis(x)
        block_size = result.block_size
    if n_blocks is not None:
        n_blocks = int(n_blocks)
        if not 2 <= n_blocks <= x.size:
            raise ValueError(f"n_blocks must be in [2, {x.size}], got {n_blocks}")
        block_size = x.size // n_blocks
    block_size = int(block_size)
    if not 1 <= block_size <= x.size // 2:
        raise ValueError(f"block_size must be in [1, {x.size // 2}], got {block_size}")
    m = x.size // block_size
    means = x[: m * block_size].reshape(m, block_size).mean(axis=1)
    return float(means.mean()), float(np.sqrt(means.var(ddof=1) / m))


def summarize(x, c=5.0, min_length_factor=50.0, on_short="warn"):
    """Mean, variance, IAT, ESS and two MCSEs of a correlated series.

    Parameters
    ----------
    x : array_like, shape (n,)
        Time series (for instance an observable recorded every k steps).
    c, min_length_factor : float, optional
        Passed to :func:`integrated_autocorrelation_time`.
    on_short : {"warn", "raise", "ignore"}, optional
        Behaviour for a series too short for reliable error bars (the result's
        ``reliable`` flag is False in any case unless it raises).

    Returns
    -------
    Estimate

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.zeros(20_000)
    >>> for i in range(1, x.size):  # AR(1) with a = 0.5: τ = (1 + a) / (1 - a) = 3
    ...     x[i] = 0.5 * x[i - 1] + rng.standard_normal()
    >>> est = summarize(x)
    >>> round(est.tau), est.reliable
    (3, True)
    >>> print(est)
    0.0093... ± 0.015 (IAT) / ± 0.016 (blocks); tau = 3.19, ESS = 6267
    """
    if on_short not in _ON_SHORT:
        raise ValueError(f"on_short must be one of {_ON_SHORT}, got {on_short!r}")
    x = _as_1d(x)
    n = x.size
    iat = integrated_autocorrelation_time(x, c=c, min_length_factor=min_length_factor,
                                          on_short=on_short, full_output=True)
    variance = float(x.var(ddof=1))
    tau = max(iat.tau, 1e-12)
    try:
        blocking = blocking_analysis(x)
        mcse_block, plateau = blocking.standard_error, blocking.plateau_found
    except ShortSeriesError:
        mcse_block, plateau = float("nan"), False
    if iat.reliable and not plateau and on_short != "ignore":
        message = ("series too short for block averaging: the blocking standard error has "
                   "no plateau with >= 16 blocks; run longer")
        if on_short == "raise":
            raise ShortSeriesError(message)
        warnings.warn(message, ShortSeriesWarning, stacklevel=2)
    return Estimate(
        mean=float(x.mean()), variance=variance, std=float(np.sqrt(variance)), n=n,
        tau=float(iat.tau), ess=float(n / tau), mcse_iat=float(np.sqrt(tau * variance / n)),
        mcse_block=float(mcse_block), reliable=bool(iat.reliable and plateau))


def mean_with_error(x, method="iat", on_short="warn"):
    """Mean and its Monte Carlo standard error.

    Parameters
    ----------
    x : array_like, shape (n,)
        Time series.
    method : {"iat", "block"}, optional
        Error from the integrated autocorrelation time or from blocking.
    on_short : {"warn", "raise", "ignore"}, optional
        See :func:`summarize`.

    Returns
    -------
    mean, mcse : float

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal(10_000)
    >>> mean, mcse = mean_with_error(x)
    >>> abs(mean) < 3 * mcse, round(mcse, 2)
    (True, 0.01)
    """
    if method not in ("iat", "block"):
        raise ValueError(f"method must be 'iat' or 'block', got {method!r}")
    est = summarize(x, on_short=on_short)
    return est.mean, est.mcse_iat if method == "iat" else est.mcse_block


def effective_sample_size(x, on_short="warn"):
    """Effective sample size ``n / τ`` of each column.

    Parameters
    ----------
    x : array_like, shape (n,) or (n, k)
        Time series.
    on_short : {"warn", "raise", "ignore"}, optional
        See :func:`integrated_autocorrelation_time`.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal((10_000, 2))
    >>> ess = effective_sample_size(x)
    >>> ess.shape, bool(np.all(ess > 8000))
    ((2,), True)
    """
    result = integrated_autocorrelation_time(x, on_short=on_short, full_output=True)
    return result.ess if np.ndim(result.tau) == 0 else result.n / np.asarray(result.tau)


def _as_chains(chains):
    chains = _as_series(chains, "chains")
    if chains.ndim != 2:
        raise ValueError(f"chains must have shape (n_steps, n_walkers), got {chains.shape}")
    return chains


def split_rhat(chains):
    """Split-R-hat (potential scale reduction) of an ensemble of walkers.

    Each walker's series is split into halves, giving ``2 W`` chains of length
    ``n``; with ``B`` the between-chain and ``W`` the mean within-chain
    variance, ``R̂ = sqrt(((n - 1)/n W + B/n) / W)``.  Values above about 1.01
    mean the walkers have not mixed.

    Parameters
    ----------
    chains : array_like, shape (n_steps, n_walkers)
        One column per walker (a single walker is allowed: its halves are compared).

    Returns
    -------
    float

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(split_rhat(rng.standard_normal((2000, 4))), 2)  # mixed walkers
    1.0
    >>> stuck = rng.standard_normal((2000, 4)) + np.array([0.0, 0.0, 0.0, 3.0])
    >>> split_rhat(stuck) > 1.01  # one walker elsewhere
    True
    """
    chains = _as_chains(chains)
    half = chains.shape[0] // 2
    if half < 2:
        raise ValueError(f"need at least 4 steps per walker for split-R-hat, got {chains.shape[0]}")
    parts = np.concatenate([chains[:half], chains[chains.shape[0] - half:]], axis=1)
    n = parts.shape[0]
    means = parts.mean(axis=0)
    within = parts.var(axis=0, ddof=1).mean()
    between = n * means.var(ddof=1)
    if within <= 0:
        raise ValueError("all walkers are constant: R-hat undefined")
    var_plus = (n - 1) / n * within + between / n
    return float(np.sqrt(var_plus / within))


@dataclass(frozen=True)
class EnsembleEstimate:
    """Statistics of one observable over an ensemble of walkers.

    Attributes
    ----------
    per_walker : list of Estimate
        One :class:`Estimate` per walker.
    mean : float
        Pooled mean (all samples of all walkers).
    mcse : float
        ``sqrt(Σ_j mcse_j²) / W`` from the per-walker IAT errors.
    mcse_between : float
        ``std(walker means) / sqrt(W)``, independent of the IATs (needs many walkers).
    ess : float
        Sum of the per-walker effective sample sizes.
    rhat : float
        Split-R-hat.
    reliable : bool
        Every walker reliable and ``rhat < 1.01``.

    Examples
    --------
    >>> chains = np.random.default_rng(0).standard_normal((2000, 4))
    >>> est = ensemble_summary(chains)
    >>> len(est.per_walker), est.reliable, round(est.rhat, 2)
    (4, True, 1.0)
    """

    per_walker: list
    mean: float
    mcse: float
    mcse_between: float
    ess: float
    rhat: float
    reliable: bool


def ensemble_summary(chains, on_short="warn"):
    """Per-walker and pooled estimates with split-R-hat.

    Parameters
    ----------
    chains : array_like, shape (n_steps, n_walkers)
        Observable recorded for each walker.
    on_short : {"warn", "raise", "ignore"}, optional
        See :func:`summarize` (applied to every walker).

    Returns
    -------
    EnsembleEstimate

    Examples
    --------
    >>> chains = np.random.default_rng(0).standard_normal((2000, 3))
    >>> est = ensemble_summary(chains)
    >>> round(est.mcse, 3), est.reliable
    (0.013, True)
    """
    chains = _as_chains(chains)
    walkers = chains.shape[1]
    per_walker = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ShortSeriesWarning)
        for j in range(walkers):
            per_walker.append(summarize(chains[:, j], on_short=on_short))
    short = [j for j, e in enumerate(per_walker) if not e.reliable]
    if caught and on_short == "warn":
        warnings.warn(f"series too short for reliable error bars for walker(s) {short}",
                      ShortSeriesWarning, stacklevel=2)
    rhat = split_rhat(chains)
    mcse = float(np.sqrt(sum(e.mcse_iat ** 2 for e in per_walker)) / walkers)
    means = np.array([e.mean for e in per_walker])
    between = float(means.std(ddof=1) / np.sqrt(walkers)) if walkers > 1 else float("nan")
    return EnsembleEstimate(
        per_walker=per_walker, mean=float(chains.mean()), mcse=mcse, mcse_between=between,
        ess=float(sum(e.ess for e in per_walker)), rhat=rhat,
        reliable=bool(not short and rhat < 1.01))
