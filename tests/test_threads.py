"""thermo.sample's ``threads`` option: fixed counts and the run-time tuner.

The option may only change speed: every kernel's parallel chunks are fixed by
its work buffers, so runs on 1 thread, on Numba's count and tuned ("auto")
must agree bit for bit."""
import numba
import numpy as np
import pytest

import thermo
from thermo.potentials.analytic import Gaussian
from thermo.samplers import DivergenceError
from thermo.samplers._threads import ThreadTuner, check_threads, thread_ladder


# --- the tuner's policy

def test_thread_ladder():
    assert thread_ladder(1) == [1]
    assert thread_ladder(2) == [1, 2]
    assert thread_ladder(8) == [1, 2, 4, 8]
    assert thread_ladder(12) == [1, 2, 4, 8, 12]


def test_tuner_warms_up_probes_every_count_then_runs_the_fastest():
    tuner = ThreadTuner(4, reprobe_every=3)
    assert tuner.choose() == (4, False)
    tuner.report(4, 100, 100.0)               # the warm-up chunk is not timed
    assert tuner.seconds_per_step == {}
    timings = {1: 3.0, 2: 1.0, 4: 2.0}
    for expected in (1, 2, 4):
        threads, probe = tuner.choose()
        assert (threads, probe) == (expected, True)
        tuner.report(threads, 10, 10 * timings[threads])
    assert tuner.best == 2
    assert [tuner.choose() for _ in range(3)] == [(2, False)] * 3
    assert tuner.choose() == (1, True)        # then the others in turn
    tuner.report(1, 10, 10 * 0.5)             # the machine changed: 1 thread is now fastest
    assert [tuner.choose() for _ in range(3)] == [(1, False)] * 3
    assert tuner.choose() == (4, True)        # the rotation goes on over the other counts


def test_probes_that_change_nothing_come_less_often():
    tuner = ThreadTuner(2, reprobe_every=2)
    gaps, since = [], 0
    for _ in range(200):
        threads, probe = tuner.choose()
        tuner.report(threads, 10, 10 * (1.0 if threads == 2 else 3.0))
        if probe:
            gaps.append(since)
            since = 0
        else:
            since += 1
    # warm-up, the two first probes, then waits of 2, 4, 8, 16, 16, ...
    assert gaps[:2] == [1, 0]
    assert gaps[2:7] == [2, 4, 8, 16, 16]
    tuner.report(1, 10, 10 * 0.5)          # 1 thread got faster: back to short waits
    assert tuner.best == 1
    probes = []
    for _ in range(6):
        threads, probe = tuner.choose()
        tuner.report(threads, 10, 10 * (0.5 if threads == 1 else 1.0))
        probes.append(probe)
    assert sum(probes) == 2                # the wait went back to 2, and doubles from there


def test_tuner_with_one_thread_never_probes():
    tuner = ThreadTuner(1)
    for _ in range(10):
        assert tuner.choose() == (1, False)
        tuner.report(1, 10, 1.0)


@pytest.mark.parametrize("value, error", [
    ("fast", TypeError), (1.5, TypeError), (True, TypeError), (0, ValueError),
    (numba.config.NUMBA_NUM_THREADS + 1, ValueError)])
def test_invalid_thread_counts_are_rejected_before_any_work(value, error):
    assert check_threads(np.int64(1)) == 1
    with pytest.raises(error, match="threads"):
        thermo.sample(Gaussian(np.zeros(2), np.eye(2)), "baoab", theta0=np.zeros(2),
                      n_steps=10, step_size=0.1, seed=0, threads=value)


# --- the driver

def _posteriors():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 30)) * (rng.random((400, 30)) < 0.2)
    y = rng.integers(0, 3, 400)
    perceptron = thermo.MLP([30, 3], loss="cross_entropy")
    network = thermo.MLP([30, 8, 3], activation="tanh", loss="cross_entropy")
    return [(thermo.Posterior(perceptron, X, y, prior_precision=1.0, batch_size=100),
             perceptron.init(seed=0)),
            (thermo.Posterior(network, X, y, prior_precision=1.0, batch_size=100),
             network.init(seed=0))]


@pytest.mark.parametrize("method", ["sgld", "baoab"])
def test_thread_counts_do_not_change_the_run(method, monkeypatch):
    calls = []
    set_num_threads = numba.set_num_threads

    def recording(n):
        calls.append(n)
        set_num_threads(n)

    monkeypatch.setattr(numba, "set_num_threads", recording)
    before = numba.get_num_threads()
    for posterior, theta0 in _posteriors():
        options = dict(theta0=theta0, n_steps=300, step_size=1e-4, friction=10.0, seed=5,
                       record_every=7, record_trajectory=True, chunk_steps=20)
        default = thermo.sample(posterior, method, **options)
        for threads in (1, numba.config.NUMBA_NUM_THREADS, "auto"):
            calls.clear()
            other = thermo.sample(posterior, method, threads=threads, **options)
            np.testing.assert_array_equal(default.trajectory, other.trajectory)
            np.testing.assert_array_equal(default.state.theta, other.state.theta)
            for name in default.observables:
                np.testing.assert_array_equal(default.observables[name],
                                              other.observables[name], err_msg=name)
            assert numba.get_num_threads() == before
            if threads == "auto":       # the tuner ran chunks on every candidate count
                assert set(thread_ladder(before)) <= set(calls)


def test_auto_runs_on_one_potential_share_their_timings():
    from thermo.samplers._threads import _TUNERS
    target = Gaussian(np.zeros(2), np.eye(2))
    options = dict(n_steps=100, step_size=0.1, threads="auto", chunk_steps=10)
    first = thermo.sample(target, "baoab", theta0=np.zeros(2), seed=0, **options)
    tuner = _TUNERS[target]["baoab"]
    chunks = tuner.chunks
    assert chunks >= 10
    thermo.sample(target, "baoab", state=first.state, **options)
    assert _TUNERS[target]["baoab"] is tuner and tuner.chunks > chunks
    thermo.sample(target, "sgld", theta0=np.zeros(2), seed=0, **options)
    assert _TUNERS[target]["sgld"] is not tuner


def test_thread_count_is_restored_after_a_divergence():
    before = numba.get_num_threads()
    stiff = Gaussian(np.zeros(2), np.diag([1e-4, 1.0]))
    for threads in (1, "auto"):
        with pytest.raises(DivergenceError):
            thermo.sample(stiff, "baoab", theta0=np.ones(2), n_steps=10_000, step_size=1.0,
                          seed=0, threads=threads, chunk_steps=3)
        assert numba.get_num_threads() == before


_TWO_THREADS = """
import numba, numpy as np, thermo
from thermo.samplers._threads import thread_ladder
assert numba.get_num_threads() == 2
rng = np.random.default_rng(3)
X = rng.normal(size=(400, 30)) * (rng.random((400, 30)) < 0.2)
y = rng.integers(0, 3, 400)
net = thermo.MLP([30, 3], loss="cross_entropy")
posterior = thermo.Posterior(net, X, y, prior_precision=1.0, batch_size=100)
options = dict(theta0=net.init(seed=0), n_steps=300, step_size=1e-4, friction=10.0, seed=5,
               record_every=7, record_trajectory=True, chunk_steps=20)
calls = []
set_num_threads = numba.set_num_threads
def recording(n):
    calls.append(n)
    set_num_threads(n)
numba.set_num_threads = recording
default = thermo.sample(posterior, "baoab", **options)
for threads in (1, 2, "auto"):
    calls.clear()
    other = thermo.sample(posterior, "baoab", threads=threads, **options)
    assert np.array_equal(default.trajectory, other.trajectory), threads
    assert np.array_equal(default.observables["energy"], other.observables["energy"]), threads
    assert numba.get_num_threads() == 2
assert {1, 2} <= set(calls), calls
print("same bits on 1, 2 and auto threads")
"""


def test_two_threads_in_a_fresh_process():
    """The same check with two Numba threads, whatever this process has (one per
    xdist worker in CI)."""
    import os
    import subprocess
    import sys
    environment = dict(os.environ, NUMBA_NUM_THREADS="2")
    environment.pop("PYTEST_XDIST_WORKER", None)
    result = subprocess.run([sys.executable, "-c", _TWO_THREADS], capture_output=True,
                            text=True, env=environment, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "same bits" in result.stdout
