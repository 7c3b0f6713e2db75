"""Driver behaviour of thermo.sample: validation, reproducibility, chunking,
divergence, records, bias hook, and exact reductions between schemes."""
from typing import NamedTuple

import numpy as np
import pytest

import thermo
from thermo.bias.base import Bias, register_bias
from thermo.potentials.analytic import DoubleWell, Gaussian, NoisyGaussian
from thermo.samplers import DivergenceError, available_samplers
from thermo.samplers._solvers import evaluate_force
from thermo.samplers.baoab import baoab_kernel
from thermo.samplers.overdamped import overdamped_kernel

METHODS = ["sgld", "gla1", "gla2", "baoab", "overdamped", "ccadl"]
COVARIANCE = np.array([[1.0, 0.3], [0.3, 0.5]])


def gaussian():
    return Gaussian(np.zeros(2), COVARIANCE)


def run(method, potential=None, **kwargs):
    potential = gaussian() if potential is None else potential
    arguments = dict(theta0=np.full(potential.dimension, 0.5), n_steps=100, step_size=0.05,
                     beta=2.0, friction=1.0, seed=0)
    arguments.update(kwargs)
    if "state" in kwargs:
        arguments.pop("theta0")
        arguments.pop("seed")
    return thermo.sample(potential, method, **arguments)


def assert_runs_identical(first, second):
    assert first.observables.keys() == second.observables.keys()
    for name in first.observables:
        np.testing.assert_array_equal(first.observables[name], second.observables[name],
                                      err_msg=name)
    if first.trajectory is not None:
        np.testing.assert_array_equal(first.trajectory, second.trajectory)
    for field, a, b in zip(first.state._fields, first.state, second.state):
        assert_equal_values(a, b, field)


def assert_equal_values(a, b, name):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), name
        for key in a:
            assert_equal_values(a[key], b[key], f"{name}[{key!r}]")
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=name)
    else:
        assert a == b, name


def concatenate(first, second):
    observables = {name: np.concatenate([first.observables[name], second.observables[name]])
                   for name in first.observables}
    trajectory = np.concatenate([first.trajectory, second.trajectory])
    return thermo.samplers.Run(first.method, first.parameters, trajectory, observables,
                               second.state)


# --- validation

def test_available_samplers():
    assert set(METHODS) <= set(available_samplers())


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(step_size=0.0), ValueError, "step_size"),
    (dict(step_size=-1.0), ValueError, "step_size"),
    (dict(step_size=float("nan")), ValueError, "step_size"),
    (dict(beta=0.0), ValueError, "beta"),
    (dict(beta=-2.0), ValueError, "beta"),
    (dict(friction=-1.0), ValueError, "friction"),
    (dict(friction=0.0), ValueError, "friction"),
    (dict(record_every=0), ValueError, "record_every"),
    (dict(record_every=1.5), TypeError, "record_every"),
    (dict(n_steps=-1), ValueError, "n_steps"),
    (dict(theta0=np.array([0.0, np.nan])), ValueError, "NaN"),
    (dict(theta0=np.zeros(3)), ValueError, "shape"),
    (dict(theta0=np.zeros(2, dtype=np.int64)), TypeError, "float"),
    (dict(theta0=None), ValueError, "theta0"),
    (dict(unknown_option=1), TypeError, "unknown_option"),
    (dict(bias=object()), TypeError, "bias"),
])
def test_invalid_input_is_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        run("baoab", **kwargs)


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ValueError, match="valid methods: .*baoab.*sgld"):
        run("langevin")


def test_scheme_specific_validation():
    with pytest.raises(ValueError, match="friction"):
        run("gla1", friction=0.0)
    with pytest.raises(ValueError, match="beta"):
        run("ccadl", beta=np.inf)
    with pytest.raises(ValueError, match="thermostat_mass"):
        run("ccadl", thermostat_mass=0.0)
    run("ccadl", friction=0.0, n_steps=5)          # the thermostat alone is allowed
    run("sgld", friction=0.0, n_steps=5)           # friction is not used by SGLD


def test_state_misuse_is_rejected():
    first = run("baoab")
    with pytest.raises(ValueError, match="not both"):
        thermo.sample(gaussian(), "baoab", theta0=np.zeros(2), state=first.state,
                      n_steps=10, step_size=0.05)
    with pytest.raises(ValueError, match="seed"):
        thermo.sample(gaussian(), "baoab", state=first.state, seed=1, n_steps=10,
                      step_size=0.05)
    with pytest.raises(TypeError, match="BAOABState"):
        thermo.sample(gaussian(), "sgld", state=first.state, n_steps=10, step_size=0.05)


# --- records

def test_records_follow_the_total_step_count():
    result = run("baoab", n_steps=100, record_every=7, record_trajectory=True)
    np.testing.assert_array_equal(result.observables["step"], np.arange(7, 101, 7))
    assert result.trajectory.shape == (14, 2)
    tenth = run("baoab", n_steps=100, record_every=10, record_trajectory=True)
    np.testing.assert_array_equal(tenth.trajectory[-1], tenth.state.theta)
    assert result.state.step == 100
    assert set(result.observables) == {
        "step", "energy", "bias_energy", "kinetic_energy", "kinetic_temperature",
        "configurational_temperature", "virial", "gradient_norm", "noise_norm", "laplacian"}
    empty = run("baoab", n_steps=0)
    assert empty.observables["step"].size == 0 and empty.state.step == 0


def test_observables_are_consistent():
    potential = gaussian()
    result = run("baoab", potential=potential, n_steps=50, record_trajectory=True,
                 record_full_energy=True, record_accuracy=True)
    theta = result.trajectory
    energies = np.array([potential.energy(t) for t in theta])
    gradients = np.array([potential.gradient(t) for t in theta])
    np.testing.assert_allclose(result.observables["energy"], energies, rtol=1e-12)
    np.testing.assert_allclose(result.observables["full_energy"], energies, rtol=1e-12)
    np.testing.assert_allclose(result.observables["gradient_norm"],
                               np.linalg.norm(gradients, axis=1), rtol=1e-12)
    np.testing.assert_allclose(result.observables["virial"],
                               np.sum(theta * gradients, axis=1) / 2, rtol=1e-12)
    np.testing.assert_allclose(result.observables["kinetic_energy"],
                               result.observables["kinetic_temperature"], rtol=1e-12)
    assert np.all(np.isnan(result.observables["accuracy"]))
    assert np.all(result.observables["bias_energy"] == 0.0)
    for method in METHODS:
        names = set(run(method, n_steps=3).observables)
        assert ("kinetic_temperature" in names) == (method not in ("sgld", "overdamped"))
        assert ("thermostat" in names) == (method == "ccadl")


def test_configurational_temperature_estimators():
    potential = Gaussian(np.zeros(4), np.diag([1.0, 0.5, 2.0, 0.25]))
    result = thermo.sample(potential, "baoab", theta0=np.zeros(4), n_steps=200_000,
                           step_size=0.2, beta=2.0, friction=1.0, seed=1, record_every=5)
    assert result.configurational_temperature() == pytest.approx(0.5, rel=0.03)
    assert np.mean(result.observables["virial"]) == pytest.approx(0.5, rel=0.03)


def test_progress_bar_runs():
    result = run("sgld", n_steps=2000, progress=True, chunk_steps=500)
    assert result.state.step == 2000


# --- reproducibility

@pytest.mark.parametrize("method", METHODS)
def test_reproducible_and_chunking_invariant(method):
    potential = NoisyGaussian(np.zeros(2), COVARIANCE, gradient_noise=0.5)
    options = dict(potential=potential, n_steps=1000, record_every=3, record_trajectory=True)
    whole = run(method, **options)
    assert_runs_identical(whole, run(method, **options))
    assert_runs_identical(whole, run(method, chunk_steps=7, **options))
    different = run(method, **{**options, "seed": 1})
    assert not np.array_equal(whole.trajectory, different.trajectory)
    first = run(method, **{**options, "n_steps": 500})
    saved = [np.copy(a) if isinstance(a, np.ndarray) else a for a in first.state]
    second = run(method, **{**options, "n_steps": 500}, state=first.state)
    assert_runs_identical(whole, concatenate(first, second))
    for a, b in zip(saved, first.state):      # continuing does not modify the old state
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)


# --- divergence

@pytest.mark.parametrize("method", METHODS)
def test_divergence_raises_with_last_good_state(method):
    stiff = Gaussian(np.zeros(2), np.diag([1e-4, 1.0]))
    with pytest.raises(DivergenceError, match=r"diverged at step \d+") as caught:
        thermo.sample(stiff, method, theta0=np.ones(2), n_steps=10_000, step_size=1.0,
                      seed=0, record_every=1, record_trajectory=True)
    error = caught.value
    assert error.step >= 2
    assert f"step {error.step}" in str(error)
    assert error.last_good_state.step == error.step - 1
    assert np.all(np.isfinite(error.last_good_state.theta))
    partial = error.partial_run
    np.testing.assert_array_equal(partial.observables["step"], np.arange(1, error.step))
    for name, values in partial.observables.items():
        if name != "thermostat":
            assert np.all(np.isfinite(values)), name
    assert np.all(np.isfinite(partial.trajectory))
    np.testing.assert_array_equal(partial.trajectory[-1], error.last_good_state.theta)


# --- exact reductions

def test_sgld_without_noise_is_gradient_descent():
    potential = DoubleWell(a=1.0, b=0.3, transverse_stiffness=2.0)
    theta = np.array([0.2, 1.0])
    result = thermo.sample(potential, "sgld", theta0=theta, n_steps=200, step_size=0.05,
                           beta=np.inf, seed=0, record_trajectory=True)
    expected = []
    for _ in range(200):
        theta = theta - 0.05 * potential.gradient(theta)
        expected.append(theta)
    np.testing.assert_allclose(result.trajectory, np.array(expected), rtol=0, atol=1e-14)
    assert np.all(result.observables["noise_norm"] == 0.0)


def test_baoab_at_infinite_friction_is_the_overdamped_scheme():
    # With c = exp(-γh) = 0 BAOAB's θ update is the Leimkuhler–Matthews step
    # with step size h²/2, drawing the same normals in the same order; from a
    # critical point (∇U = 0, so that the first steps agree too) the two paths
    # coincide up to rounding.
    potential = DoubleWell(a=1.0, b=0.0, copies=20)
    theta0 = np.ones(20)
    h = 0.3
    baoab = thermo.sample(potential, "baoab", theta0=theta0, n_steps=5000, step_size=h,
                          friction=1e4, beta=1.5, seed=3, record_trajectory=True)
    overdamped = thermo.sample(potential, "overdamped", theta0=theta0, n_steps=5000,
                               step_size=h * h / 2, beta=1.5, seed=3, record_trajectory=True)
    np.testing.assert_allclose(baoab.trajectory, overdamped.trajectory, rtol=0, atol=1e-9)
    # and a mildly large friction already gives close statistics
    moderate = thermo.sample(potential, "baoab", theta0=theta0, n_steps=5000, step_size=h,
                             friction=20.0, beta=1.5, seed=3, record_trajectory=True)
    assert abs(np.mean(moderate.trajectory ** 2) - np.mean(overdamped.trajectory ** 2)) < 0.05


# --- bias hook (a test bias: compiled without Numba's disk cache, see fixture)

class CountingHarmonicBiasData(NamedTuple):
    stiffness: float
    centre: np.ndarray
    calls: np.ndarray        # [number of bias_update calls, sum of steps, last step]


def _counting_energy_gradient(data, theta, gradient):
    energy = 0.0
    for i in range(theta.size):
        difference = theta[i] - data.centre[i]
        gradient[i] += data.stiffness * difference
        energy += 0.5 * data.stiffness * difference * difference
    return energy


def _counting_update(data, theta, step):
    data.calls[0] += 1
    data.calls[1] += step
    data.calls[2] = step


register_bias(CountingHarmonicBiasData, _counting_energy_gradient, update=_counting_update)


class CountingHarmonicBias(Bias):
    def __init__(self, stiffness, centre):
        super().__init__(CountingHarmonicBiasData(float(stiffness), np.asarray(centre, float),
                                                  np.zeros(3)))


@pytest.fixture
def uncached_kernels():
    """Compile kernels for the test-only bias class without writing Numba's disk
    cache: an index entry naming a class from a test module breaks every later
    process that cannot import this module."""
    from numba.core.caching import NullCache
    dispatchers = [baoab_kernel, overdamped_kernel, evaluate_force]
    saved = [dispatcher._cache for dispatcher in dispatchers]
    for dispatcher in dispatchers:
        dispatcher._cache = NullCache()
    yield
    for dispatcher, cache in zip(dispatchers, saved):
        dispatcher._cache = cache


def test_bias_gradient_and_update_hook(uncached_kernels):
    potential = Gaussian(np.zeros(2), np.eye(2))
    centre = np.array([1.0, -2.0])
    bias = CountingHarmonicBias(3.0, centre)
    # deterministic descent on U + V ends at the minimum of |θ|²/2 + 3|θ - c|²/2
    result = thermo.sample(potential, "sgld", theta0=np.zeros(2), n_steps=300, step_size=0.1,
                           beta=np.inf, bias=bias, seed=0)
    np.testing.assert_allclose(result.state.theta, 0.75 * centre, atol=1e-12)
    calls = bias.kernel_data.calls
    assert calls[0] == 300 and calls[1] == 300 * 301 / 2 and calls[2] == 300
    # the hook sees the 1-based total count across continued runs
    bias = CountingHarmonicBias(3.0, centre)
    first = thermo.sample(potential, "baoab", theta0=np.zeros(2), n_steps=60, step_size=0.1,
                          bias=bias, seed=0, record_trajectory=True)
    second = thermo.sample(potential, "baoab", state=first.state, n_steps=40, step_size=0.1,
                           bias=bias, record_trajectory=True)
    calls = bias.kernel_data.calls
    assert calls[0] == 100 and calls[1] == 100 * 101 / 2 and calls[2] == 100
    np.testing.assert_array_equal(second.observables["bias_weight_log"], 0.0)
    theta = second.trajectory
    np.testing.assert_allclose(second.observables["bias_energy"],
                               1.5 * np.sum((theta - centre) ** 2, axis=1), rtol=1e-12)
    np.testing.assert_allclose(second.observables["gradient_norm"],
                               np.linalg.norm(theta + 3.0 * (theta - centre), axis=1),
                               rtol=1e-12)


# --- minibatch state of a stochastic posterior travels with the sampler state

def test_posterior_minibatch_state_is_part_of_the_state():
    from thermo.data import two_clusters
    X, y = two_clusters(n=60, seed=0)
    net = thermo.MLP([2, 2])
    posterior = thermo.Posterior(net, X, y, prior_precision=1.0, batch_size=7)
    theta0 = net.init(seed=0)
    options = dict(n_steps=40, step_size=1e-3, record_every=1, record_trajectory=True)
    whole = thermo.sample(posterior, "sgld", theta0=theta0, seed=4, **options)
    assert whole.state.minibatch_state is not None
    # back to the fresh epoch state (thermo.sample does this itself when the
    # potential offers reset_minibatch_state())
    posterior.set_minibatch_state(dict(order=np.arange(60), cursor=np.array([60])))
    half = dict(options, n_steps=20)
    first = thermo.sample(posterior, "sgld", theta0=theta0, seed=4, **half)
    # another run on the same object in between moves its minibatch cursor ...
    thermo.sample(posterior, "sgld", theta0=theta0, seed=9, **half)
    # ... which continuing from first.state undoes
    second = thermo.sample(posterior, "sgld", state=first.state, **half)
    assert_runs_identical(whole, concatenate(first, second))
