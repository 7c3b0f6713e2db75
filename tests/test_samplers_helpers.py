"""Shared helpers of the sampler tests: IAT, z-scores, exact discrete covariances.

(No tests here; the ``test_`` prefix only keeps the file inside the sampler
tests' file pattern.)  Test potentials and biases are deliberately *not*
defined in test modules when they are passed to the cached sampler kernels:
Numba's cache index of a kernel pickles the NamedTuple classes of every
compiled signature, and a class living in a test module makes every later
process outside pytest fail to load that index.
"""
import numpy as np
from scipy.linalg import solve_discrete_lyapunov

Z99 = 2.5758293035489004  # two-sided 99% quantile of N(0, 1)


def integrated_autocorrelation_time(series, window_factor=5.0):
    """Sokal's windowed estimate τ = 1 + 2 Σ_{t=1}^{W} ρ(t), W the first lag with W >= c τ(W).

    ``series`` is 1-D; the autocovariance comes from an FFT.  Returns τ >= 1.
    """
    x = np.asarray(series, dtype=np.float64)
    n = x.size
    x = x - x.mean()
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(x, size)
    autocovariance = np.fft.irfft(spectrum * np.conj(spectrum), size)[:n] / n
    if autocovariance[0] <= 0:
        return 1.0
    rho = autocovariance / autocovariance[0]
    tau = 2.0 * np.cumsum(rho) - 1.0
    for window in range(1, n):
        if window >= window_factor * tau[window]:
            return max(1.0, float(tau[window]))
    return max(1.0, float(tau[-1]))


def mean_and_error(series):
    """Sample mean and its Monte-Carlo standard error sqrt(τ var / n)."""
    x = np.asarray(series, dtype=np.float64)
    tau = integrated_autocorrelation_time(x)
    return float(x.mean()), float(np.sqrt(tau * x.var() / x.size))


def second_moment_z_scores(samples, mean, covariance):
    """z-scores of the sample second moments E[(θ_i - m_i)(θ_j - m_j)], i <= j, against ``covariance``.

    ``samples`` has shape (n, d); the error of each entry comes from the
    effective sample size of the product series.
    """
    centred = np.asarray(samples) - mean
    d = centred.shape[1]
    scores = []
    for i in range(d):
        for j in range(i, d):
            estimate, error = mean_and_error(centred[:, i] * centred[:, j])
            scores.append((estimate - covariance[i, j]) / error)
    return np.array(scores)


# --- exact stationary covariances of the linear maps of each scheme on U = ½ θᵀPθ

def _substeps(precision, step_size, friction, beta):
    d = precision.shape[0]
    identity = np.eye(d)
    zero = np.zeros((d, d))

    def kick(tau):      # B: p ← p - τ P θ
        return np.block([[identity, zero], [-tau * precision, identity]])

    def drift(tau):     # A: θ ← θ + τ p
        return np.block([[identity, tau * identity], [zero, identity]])

    c = np.exp(-friction * step_size)
    ou = np.block([[identity, zero], [zero, c * identity]])
    noise = np.block([[zero, zero], [zero, (1.0 - c * c) / beta * identity]])
    return kick, drift, ou, noise


def _stationary(before_noise, after_noise, noise):
    """Stationary covariance of z' = after (before z + ε), Cov ε = noise."""
    transition = after_noise @ before_noise
    return solve_discrete_lyapunov(transition, after_noise @ noise @ after_noise.T)


def discrete_covariance(method, precision, step_size, beta=1.0, friction=1.0):
    """Stationary covariance of θ of ``method`` on U = ½ θᵀPθ (exact, discrete time).

    Also returns the stationary mean of |p|²/d with p measured where the
    sampler records it (right after the O step), or None without momentum.
    """
    d = precision.shape[0]
    h = step_size
    identity = np.eye(d)
    if method == "sgld":
        transition = identity - h * precision
        return solve_discrete_lyapunov(transition, 2.0 * h / beta * identity), None
    if method == "overdamped":
        # state (θ_n, ξ_n): θ' = (I - hP) θ + a (ξ + ξ'), ξ' new
        a = np.sqrt(h / (2.0 * beta))
        transition = np.block([[identity - h * precision, a * identity],
                               [np.zeros((d, d)), np.zeros((d, d))]])
        noise = np.block([[a * a * identity, a * identity], [a * identity, identity]])
        return solve_discrete_lyapunov(transition, noise)[:d, :d], None
    kick, drift, ou, noise = _substeps(precision, h, friction, beta)
    if method == "gla1":
        before, after = ou @ drift(h) @ kick(h), np.eye(2 * d)
    elif method == "gla2":
        before, after = ou @ kick(h / 2) @ drift(h) @ kick(h / 2), np.eye(2 * d)
    elif method == "baoab":
        before, after = ou @ drift(h / 2) @ kick(h / 2), kick(h / 2) @ drift(h / 2)
    else:
        raise ValueError(method)
    full = _stationary(before, after, noise)
    if method == "baoab":
        # momentum right after O: O A B z + ε
        pre = drift(h / 2) @ kick(h / 2)
        after_ou = ou @ pre @ full @ pre.T @ ou.T + noise
    else:
        after_ou = full
    return full[:d, :d], float(np.trace(after_ou[d:, d:]) / d)


def correlated_covariance(dimension, seed, smallest=0.5, largest=3.0):
    """A fixed random SPD covariance with eigenvalues spread in [smallest, largest]."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((dimension, dimension)))
    eigenvalues = np.geomspace(smallest, largest, dimension)
    covariance = rotation @ np.diag(eigenvalues) @ rotation.T
    return 0.5 * (covariance + covariance.T)
