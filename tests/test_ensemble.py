"""Tests of walker ensembles: independent walkers and EQN preconditioning."""
import numpy as np
import pytest

import thermo
from thermo.potentials import Gaussian
from thermo.samplers.ensemble import EQNState, sample_ensemble, walker_seeds

ANGLE = np.pi / 6
ROTATION = np.array([[np.cos(ANGLE), -np.sin(ANGLE)], [np.sin(ANGLE), np.cos(ANGLE)]])
VARIANCES = np.array([1.0, 100.0])                 # badly scaled: κ = 100
COVARIANCE = ROTATION @ np.diag(VARIANCES) @ ROTATION.T


def _target():
    return Gaussian(np.zeros(2), covariance=COVARIANCE)


def _start(n_walkers, seed=0):
    return np.random.default_rng(seed).multivariate_normal(np.zeros(2), COVARIANCE,
                                                           size=n_walkers)


def _iat(series, c=5.0):
    """Integrated autocorrelation time 1 + 2 Σ ρ(t) of (n_walkers, n) series,
    ρ averaged over walkers, Sokal's window (smallest M >= c τ(M))."""
    x = series - series.mean(axis=1, keepdims=True)
    n = x.shape[1]
    f = np.fft.rfft(x, 2 * n, axis=1)
    acov = np.fft.irfft(f * np.conj(f), axis=1)[:, :n].mean(axis=0)
    rho = acov / acov[0]
    tau = 2 * np.cumsum(rho) - 1
    window = np.arange(n)
    ok = window >= c * tau
    return float(tau[np.argmax(ok)]) if ok.any() else float(tau[-1])


# --- independent walkers ----------------------------------------------------------
@pytest.mark.parametrize("method, options", [("baoab", {}),
                                             ("hmc", {"n_leapfrog": (2, 5)})])
def test_independent_walkers_equal_single_runs(method, options):
    target = _target()
    start = _start(3)
    seeds = [11, 12, 13]
    ensemble = sample_ensemble(target, method, start, n_steps=50, step_size=0.3,
                               seed=seeds, record_every=5, record_trajectory=True,
                               **options)
    assert ensemble.walker_seeds == tuple(seeds)
    for i in range(3):
        single = thermo.sample(target, method, start[i], n_steps=50, step_size=0.3,
                               seed=seeds[i], record_every=5, record_trajectory=True,
                               **options)
        assert np.array_equal(ensemble.trajectory[i], single.trajectory)
        assert np.array_equal(ensemble.theta[i], single.theta)
        for name, value in single.observables.items():
            expected = value if name == "step" else ensemble.observables[name][i]
            assert np.array_equal(expected, value, equal_nan=True), name
    # an integer seed derives the walker seeds reproducibly
    a = sample_ensemble(target, method, start, n_steps=20, step_size=0.3, seed=4, **options)
    b = sample_ensemble(target, method, start, n_steps=20, step_size=0.3, seed=4, **options)
    assert a.walker_seeds == walker_seeds(4, 3)
    assert len(set(a.walker_seeds)) == 3
    assert np.array_equal(a.theta, b.theta)
    # chunked = whole
    half = sample_ensemble(target, method, start, n_steps=8, step_size=0.3, seed=4, **options)
    rest = sample_ensemble(target, method, n_steps=12, step_size=0.3, state=half.state,
                           **options)
    assert np.array_equal(rest.theta, a.theta)


# --- EQN: exact equations -----------------------------------------------------------
def _numpy_eqn(method, theta, n_steps, h, beta, gamma, eta, every, seed, split=False):
    """NumPy reference of the EQN schemes (module docstring), same draw order."""
    precision = np.linalg.inv(COVARIANCE)
    rng = np.random.default_rng(seed)
    n, d = theta.shape
    theta = theta.copy()
    p = rng.standard_normal((n, d)) / np.sqrt(beta) if method != "sgld" else np.zeros((n, d))
    c = np.exp(-gamma * h)
    sigma = np.sqrt((1 - c * c) / beta)
    factors = None
    for s in range(n_steps):
        moving = (s // every) % 2
        if s % every == 0:
            if split:
                frozen = theta[np.arange(n) % 2 != moving]
                factors = [np.linalg.cholesky(np.eye(d) + eta * np.cov(frozen.T))] * n
            else:
                factors = [np.linalg.cholesky(np.eye(d) + eta * np.cov(np.delete(theta, i, 0).T))
                           for i in range(n)]
        new_theta, new_p = theta.copy(), p.copy()
        for i in range(n):
            if split and i % 2 != moving:
                continue
            b = factors[i]
            q, m = theta[i].copy(), p[i].copy()
            if method == "baoab":
                m = m - h / 2 * b.T @ (precision @ q)
                q = q + h / 2 * b @ m
                m = c * m + sigma * np.array([rng.standard_normal() for _ in range(d)])
                q = q + h / 2 * b @ m
                m = m - h / 2 * b.T @ (precision @ q)
            elif method == "gla2":
                m = m - h / 2 * b.T @ (precision @ q)
                q = q + h * b @ m
                m = m - h / 2 * b.T @ (precision @ q)
                m = c * m + sigma * np.array([rng.standard_normal() for _ in range(d)])
            else:
                xi = np.array([rng.standard_normal() for _ in range(d)])
                q = q - h * b @ b.T @ (precision @ q) + np.sqrt(2 * h / beta) * b @ xi
            new_theta[i], new_p[i] = q, m
        theta, p = new_theta, new_p
    return theta, p


@pytest.mark.parametrize("method, scheme", [("baoab", "simultaneous"),
                                            ("gla2", "simultaneous"),
                                            ("sgld", "simultaneous"), ("baoab", "split")])
def test_eqn_kernel_equals_numpy_reference(method, scheme):
    start = _start(5, seed=1)
    run = sample_ensemble(_target(), method, start, n_steps=7, step_size=0.2, beta=2.0,
                          friction=1.5, seed=3, preconditioning="eqn", eqn_strength=0.7,
                          eqn_every=3, eqn_scheme=scheme)
    theta, p = _numpy_eqn(method, start, 7, 0.2, 2.0, 1.5, 0.7, 3, 3,
                          split=scheme == "split")
    np.testing.assert_allclose(run.theta, theta, rtol=1e-12, atol=1e-12)
    if method != "sgld":
        np.testing.assert_allclose(run.state.momentum, p, rtol=1e-12, atol=1e-12)
    # the factors are those of the last refresh (step 6): B Bᵀ = I + η Cov_{j≠i}
    assert isinstance(run.state, EQNState)
    b = run.state.factors[0]
    assert np.allclose(np.triu(b, 1), 0.0)


# --- EQN: sampling ----------------------------------------------------------------
def _z_scores(trajectory):
    """z of the mean and covariance entries: per-walker time averages are
    (nearly) independent estimates; their spread gives the standard error."""
    n_walkers = trajectory.shape[0]
    x = trajectory
    statistics = {"mean0": (x[..., 0], 0.0), "mean1": (x[..., 1], 0.0),
                  "c00": (x[..., 0] ** 2, COVARIANCE[0, 0]),
                  "c01": (x[..., 0] * x[..., 1], COVARIANCE[0, 1]),
                  "c11": (x[..., 1] ** 2, COVARIANCE[1, 1])}
    z = {}
    for key, (values, expected) in statistics.items():
        per_walker = values.mean(axis=1)
        z[key] = (per_walker.mean() - expected) / (per_walker.std(ddof=1)
                                                   / np.sqrt(n_walkers))
    return z


def test_eqn_samples_the_right_covariance_and_decorrelates_faster():
    target = _target()
    n_walkers, n_steps, burn = 24, 20_000, 1_000
    start = _start(n_walkers, seed=2)
    kwargs = dict(n_steps=n_steps, step_size=0.5, friction=1.0, record_every=1,
                  record_trajectory=True)
    plain = sample_ensemble(target, "baoab", start, seed=5, **kwargs)
    soft, stiff = ROTATION[:, 1], ROTATION[:, 0]     # σ² = 100 and σ² = 1 directions
    iat_plain = (_iat(plain.trajectory[:, burn:, :] @ soft),
                 _iat(plain.trajectory[:, burn:, :] @ stiff))
    for scheme in ("simultaneous", "split"):
        eqn = sample_ensemble(target, "baoab", start, seed=5, preconditioning="eqn",
                              eqn_strength=1.0, eqn_every=10, eqn_scheme=scheme, **kwargs)
        x = eqn.trajectory[:, burn:, :]
        z = _z_scores(x)
        assert all(abs(v) < 4.5 for v in z.values()), (scheme, z)
        # the kinetic temperature stays at 1/β
        assert abs(eqn.observables["kinetic_temperature"][:, burn:].mean() - 1.0) < 0.02
        # autocorrelation along the soft direction: much shorter with EQN
        # (split moves each walker half of the steps: at most twice as long)
        iat_eqn = (_iat(x @ soft), _iat(x @ stiff))
        assert iat_plain[0] > 10 * iat_eqn[0], (scheme, iat_plain, iat_eqn)
        assert iat_eqn[1] < 3 * iat_plain[1], (scheme, iat_plain, iat_eqn)


@pytest.mark.parametrize("method, scheme", [("baoab", "simultaneous"),
                                            ("sgld", "simultaneous"), ("gla2", "split")])
def test_eqn_reproducible_and_chunked_equals_whole(method, scheme):
    target = _target()
    start = _start(4, seed=3)
    kwargs = dict(step_size=0.1, seed=8, preconditioning="eqn", eqn_strength=2.0,
                  eqn_every=7, eqn_scheme=scheme, record_every=3, record_trajectory=True)
    whole = sample_ensemble(target, method, start, n_steps=40, **kwargs)
    again = sample_ensemble(target, method, start, n_steps=40, **kwargs)
    assert np.array_equal(whole.trajectory, again.trajectory)
    kwargs.pop("seed")
    first = sample_ensemble(target, method, start, n_steps=10, seed=8, **kwargs)
    second = sample_ensemble(target, method, n_steps=30, state=first.state, **kwargs)
    assert np.array_equal(second.theta, whole.theta)
    assert np.array_equal(np.concatenate([first.trajectory, second.trajectory], axis=1),
                          whole.trajectory)
    for key, value in whole.observables.items():
        joined = np.concatenate([first.observables[key], second.observables[key]], axis=-1)
        assert np.array_equal(joined, value, equal_nan=True), key
    other = sample_ensemble(target, method, start, n_steps=40, seed=9, **kwargs)
    assert not np.array_equal(other.theta, whole.theta)


def test_eqn_divergence_and_bad_input():
    target = _target()
    with pytest.raises(thermo.DivergenceError) as info:
        sample_ensemble(target, "baoab", _start(4), n_steps=2000, step_size=50.0, seed=0,
                        preconditioning="eqn", record_every=10)
    error = info.value
    assert f"step {error.step}" in str(error)
    assert error.last_good_state.step == error.step - 1
    assert np.all(np.isfinite(error.last_good_state.theta))
    with pytest.raises(ValueError, match="at least 3 walkers"):
        sample_ensemble(target, "baoab", _start(2), n_steps=1, step_size=0.1,
                        preconditioning="eqn")
    with pytest.raises(ValueError, match="at least 4 walkers"):
        sample_ensemble(target, "baoab", _start(3), n_steps=1, step_size=0.1,
                        preconditioning="eqn", eqn_scheme="split")
    with pytest.raises(ValueError, match="eqn_scheme"):
        sample_ensemble(target, "baoab", _start(4), n_steps=1, step_size=0.1,
                        preconditioning="eqn", eqn_scheme="gibbs")
    with pytest.raises(ValueError, match="EQN preconditioning is defined"):
        sample_ensemble(target, "hmc", _start(4), n_steps=1, step_size=0.1,
                        preconditioning="eqn")
    with pytest.raises(ValueError, match="preconditioning"):
        sample_ensemble(target, "baoab", _start(4), n_steps=1, step_size=0.1,
                        preconditioning="bfgs")
    with pytest.raises(ValueError, match="shape"):
        sample_ensemble(target, "baoab", np.zeros(2), n_steps=1, step_size=0.1)
    with pytest.raises(ValueError, match="entries"):
        sample_ensemble(target, "baoab", _start(3), n_steps=1, step_size=0.1, seed=[1, 2])
