"""Free energy profiles along a collective variable.

``F(s) = -β⁻¹ ln p(s)`` from a histogram of CV values sampled from
``exp(-β U)``, shifted so that ``min F = 0``.  Runs with a bias ``V`` are
reweighted with ``w = exp(β V)`` (pass ``log_weights`` to avoid overflow,
e.g. the sampler's ``bias_weight_log`` observable); metadynamics users should
pass the weights of their reweighting scheme.

Error bars
----------
``"bootstrap"`` (default)
    Moving-block bootstrap: the series is cut into contiguous blocks, blocks
    are drawn with replacement and the profile recomputed; the error is the
    standard deviation of ``-β⁻¹ ln p`` over the replicas.  Blocks must be
    longer than the autocorrelation time (a warning says when they are not).
``"iat"``
    Binomial counting error with the effective sample size
    ``n_eff = n_kish / τ`` (Kish's ``(Σw)²/Σw²`` and τ the integrated
    autocorrelation time of the CV series):
    ``δF = β⁻¹ sqrt((1 - P) / (n_eff P))`` with ``P`` the bin probability.
    Using one τ for all bins is an approximation; bins in rarely visited
    barrier regions are usually more correlated.

Both errors are for ``F`` relative to the normalised density (before the
shift), i.e. they do not include the uncertainty of the reference minimum.
Bins never visited get ``F = inf`` and error ``nan``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from thermo.analysis.autocorrelation import (
    ShortSeriesWarning,
    integrated_autocorrelation_time,
)

__all__ = ["FreeEnergyProfile", "free_energy"]


@dataclass(frozen=True)
class FreeEnergyProfile:
    """A free energy profile ``F(s)``.

    Attributes
    ----------
    centres : ndarray, shape (n_bins,)
        Bin centres.
    edges : ndarray, shape (n_bins + 1,)
        Bin edges.
    free_energy : ndarray
        ``F(s) - min F`` in energy units (``inf`` in empty bins).
    error : ndarray
        One-standard-error bars of ``F`` (``nan`` in empty bins).
    probability : ndarray
        Reweighted probability density ``p(s)`` (integrates to one).
    counts : ndarray of int
        Raw (unweighted) number of samples per bin.
    beta : float
        Inverse temperature used.
    tau : float
        Integrated autocorrelation time of the CV series (in samples).
    method : str
        Error method.

    Examples
    --------
    >>> s = np.random.default_rng(0).standard_normal(5000)
    >>> profile = free_energy(s, beta=1.0, bins=4, range=(-2.0, 2.0))
    >>> profile.centres
    array([-1.5, -0.5,  0.5,  1.5])
    >>> int(profile.counts.sum()), profile.method
    (4786, 'bootstrap')
    """

    centres: np.ndarray
    edges: np.ndarray
    free_energy: np.ndarray
    error: np.ndarray
    probability: np.ndarray
    counts: np.ndarray
    beta: float
    tau: float
    method: str


def _density(values, edges, weights):
    hist, _ = np.histogram(values, bins=edges, weights=weights)
    total = hist.sum()
    if total <= 0:
        return np.zeros(edges.size - 1)
    return hist / (total * np.diff(edges))


def _minus_log(p, beta):
    with np.errstate(divide="ignore"):
        return -np.log(p) / beta


def free_energy(cv_values, beta, bins=50, weights=None, log_weights=None, range=None,
                error="bootstrap", n_blocks=40, n_bootstrap=200, seed=0):
    """Free energy ``F(s) = -β⁻¹ ln p(s)`` along a CV, with error bars.

    Parameters
    ----------
    cv_values : array_like, shape (n,)
        CV values of consecutive samples (time order matters for the errors).
    beta : float
        Inverse temperature of the run.
    bins : int or array_like, optional
        Number of bins or bin edges (default 50).
    weights : array_like, shape (n,), optional
        Reweighting factors (``exp(β V)`` for a run biased by ``V``).
    log_weights : array_like, shape (n,), optional
        Logarithms of the weights (alternative to ``weights``; shifted by their
        maximum before exponentiating).
    range : (float, float), optional
        Histogram range when ``bins`` is an int (default: data min/max).
    error : {"bootstrap", "iat", None}, optional
        Error estimate (see module docstring).
    n_blocks : int, optional
        Number of contiguous blocks for the bootstrap (default 40).
    n_bootstrap : int, optional
        Bootstrap replicas (default 200).
    seed : int, optional
        Bootstrap random seed.

    Returns
    -------
    FreeEnergyProfile

    Examples
    --------
    Samples of N(0, 1) at β = 1: ``F`` is symmetric with its minimum at 0:

    >>> s = np.random.default_rng(0).standard_normal(20_000)
    >>> profile = free_energy(s, beta=1.0, bins=[-1.5, -0.5, 0.5, 1.5], error="iat")
    >>> np.round(profile.free_energy, 1)
    array([0.4, 0. , 0.4])
    >>> bool(np.all(profile.error < 0.05))
    True
    """
    s = np.asarray(cv_values)
    if s.dtype.kind not in "fiu":
        raise TypeError(f"cv_values must be numeric, got dtype {s.dtype}")
    s = s.astype(np.float64, copy=False)
    if s.ndim != 1:
        raise ValueError(f"cv_values must be 1-D (one CV value per sample), got shape {s.shape}")
    if s.size < 2:
        raise ValueError("need at least 2 CV values")
    if not np.all(np.isfinite(s)):
        raise ValueError("cv_values contains NaN or inf")
    beta = float(beta)
    if not (np.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be positive and finite, got {beta}")
    if weights is not None and log_weights is not None:
        raise ValueError("give weights or log_weights, not both")
    if log_weights is not None:
        lw = np.asarray(log_weights, dtype=np.float64)
        if lw.shape != s.shape:
            raise ValueError(f"log_weights must have shape {s.shape}, got {lw.shape}")
        if not np.all(np.isfinite(lw)):
            raise ValueError("log_weights contains NaN or inf")
        weights = np.exp(lw - lw.max())
    elif weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != s.shape:
            raise ValueError(f"weights must have shape {s.shape}, got {weights.shape}")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError("weights must be finite and non-negative")
        if weights.sum() <= 0:
            raise ValueError("weights sum to zero")
    if error not in ("bootstrap", "iat", None):
        raise ValueError(f"error must be 'bootstrap', 'iat' or None, got {error!r}")
    if np.ndim(bins) == 0:
        n_bins = int(bins)
        if n_bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        lo, hi = (s.min(), s.max()) if range is None else map(float, range)
        if not hi > lo:
            raise ValueError(f"empty histogram range ({lo}, {hi})")
        edges = np.linspace(lo, hi, n_bins + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("bin edges must be a 1-D increasing array with >= 2 entries")
    if np.ptp(s) > 0:
        tau = integrated_autocorrelation_time(s, on_short="ignore")
    else:
        tau = 1.0
    counts, _ = np.histogram(s, bins=edges)
    p = _density(s, edges, weights)
    f_raw = _minus_log(p, beta)
    finite = np.isfinite(f_raw)
    if not finite.any():
        raise ValueError("no CV values fall inside the histogram range")
    f = f_raw - f_raw[finite].min()
    err = np.full(p.shape, np.nan)
    if error == "iat":
        w = np.ones_like(s) if weights is None else weights
        n_kish = w.sum() ** 2 / np.sum(w ** 2)
        n_eff = n_kish / max(tau, 1.0)
        prob = p * np.diff(edges)
        with np.errstate(divide="ignore", invalid="ignore"):
            err[finite] = np.sqrt((1 - prob[finite]) / (n_eff * prob[finite])) / beta
    elif error == "bootstrap":
        n_blocks = int(n_blocks)
        if not 2 <= n_blocks <= s.size:
            raise ValueError(f"n_blocks must be in [2, {s.size}], got {n_blocks}")
        size = s.size // n_blocks
        if size < 2 * tau:
            warnings.warn(
                f"bootstrap blocks ({size} samples) are shorter than 2 tau = {2 * tau:.3g}: "
                "error bars underestimated; use fewer blocks or a longer run",
                ShortSeriesWarning, stacklevel=2)
        rng = np.random.default_rng(seed)
        # Histogram every block once; a replica is a sum of block histograms.
        index = np.searchsorted(edges, s[: n_blocks * size], side="right") - 1
        index[s[: n_blocks * size] == edges[-1]] = edges.size - 2  # last edge inclusive
        inside = (index >= 0) & (index < edges.size - 1)
        w = np.ones(n_blocks * size) if weights is None else weights[: n_blocks * size]
        block_of = np.repeat(np.arange(n_blocks), size)
        flat = block_of[inside] * (edges.size - 1) + index[inside]
        block_hist = np.bincount(flat, weights=w[inside],
                                 minlength=n_blocks * (edges.size - 1)).reshape(n_blocks, -1)
        picks = rng.integers(0, n_blocks, (int(n_bootstrap), n_blocks))
        counts_per_block = np.stack([np.bincount(p, minlength=n_blocks) for p in picks])
        hists = counts_per_block @ block_hist
        totals = hists.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            replicas = _minus_log(hists / (totals * np.diff(edges)), beta)
        replicas[~np.isfinite(replicas)] = np.nan  # a replica that missed a bin
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            spread = np.nanstd(replicas, axis=0, ddof=1)
        err[finite] = spread[finite]
    return FreeEnergyProfile(
        centres=0.5 * (edges[1:] + edges[:-1]), edges=edges, free_energy=f, error=err,
        probability=p, counts=counts, beta=beta, tau=float(tau), method=str(error))
