"""CUDA kernels checked against their CPU twins under Numba's CUDA simulator.

The simulator must be switched on (``NUMBA_ENABLE_CUDASIM=1``) before
``numba.cuda`` is first imported, so the comparisons run in one subprocess
with that variable set (the rest of the test session is unaffected); it
prints one JSON object of measured differences that the tests below check.
No GPU is needed -- and none is used: these tests verify the kernels' logic,
not their speed or behaviour on hardware.
"""
import collections
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent(r"""
    import json, warnings
    warnings.simplefilter("ignore")
    import numpy as np
    from thermo._cuda import cuda_available, simulator_enabled
    from thermo.networks import gpu as G
    from thermo.samplers import gpu as S

    out = {"simulator": simulator_enabled(), "available": cuda_available()}
    rng = np.random.default_rng(3)

    # forward / backward, several depths, activations and input types
    cases = [([6, 3], "tanh", "uint8"), ([6, 5, 3], "tanh", "float64"),
             ([5, 4, 3, 3], ["relu", "softplus"], "float32")]
    fb = []
    for sizes, act, kind in cases:
        spec = G.network_spec(sizes, act)
        if kind == "uint8":
            X = rng.integers(0, 256, (15, sizes[0])).astype(np.uint8); scale = 1 / 255
        else:
            X = rng.normal(size=(15, sizes[0])).astype(kind); scale = 1.0
        y = rng.integers(0, sizes[-1], 15)
        theta = rng.normal(size=spec.n_params) * 0.7
        rows = rng.integers(0, 15, 6)
        l0, g0, e0 = G.mlp_loss_grad(theta, X, y, rows, spec, 2.5, 0.3, scale)
        l1, g1, e1 = G.gpu_mlp_loss_grad(theta, X, y, rows, spec, 2.5, 0.3, scale)
        A0 = G.mlp_forward(theta, X, rows, spec, scale)
        A1 = G.gpu_mlp_forward(theta, X, rows, spec, scale)
        fb.append({"sizes": sizes,
                   "loss": abs(l0 - l1) / abs(l0),
                   "losses": float(np.abs(e0 - e1).max()),
                   "grad": float(np.abs(g0 - g1).max() / np.abs(g0).max()),
                   "forward": max(float(np.abs(a - b).max()) for a, b in zip(A0, A1)),
                   "grad_norm": float(np.abs(g0).max())})
    out["forward_backward"] = fb

    # sampler runs against the CPU twins (same minibatches, same noise streams)
    X = rng.integers(0, 256, (24, 5)).astype(np.uint8)
    y = rng.integers(0, 3, 24)
    problem = S.GPUProblem([5, 4, 3], X, y, prior_precision=0.5, batch_size=6,
                           input_scale=1 / 255)
    theta0 = rng.normal(size=problem.dimension) * 0.5
    h, beta, gamma, n = 0.02, 3.0, 2.0, 3

    def reference_rows(state, n_steps):
        r = np.random.default_rng()
        r.bit_generator.state = state.batch_rng
        rows, _ = S.batch_rows(r, state.order.copy(), state.cursor, problem.batch_size, n_steps)
        return rows

    for method in ("sgld", "baoab"):
        st = S._initial_state(problem, method, theta0, 11, np.float64)
        run = S.sample_gpu(problem, method, n_steps=n, step_size=h, beta=beta, friction=gamma,
                           state=st, steps_per_sync=2)
        rows = reference_rows(st, n)
        noise = st.noise_states.copy()
        res = {"steps": run.observables["step"].tolist()}
        if method == "sgld":
            th, E = S.sgld_reference(problem, theta0, rows, h, beta, noise)
        else:
            th, p, g, E, K = S.baoab_reference(problem, theta0, st.momentum, st.gradient, rows,
                                               h, beta, gamma, noise)
            res["momentum"] = float(np.abs(run.state.momentum - p).max())
            res["gradient"] = float(np.abs(run.state.gradient - g).max())
            res["kinetic"] = float(np.abs(run.observables["kinetic_energy"] - K).max() / K.max())
            res["kinetic_temperature"] = float(np.abs(
                run.observables["kinetic_temperature"] - 2 * K / problem.dimension).max())
        res["theta"] = float(np.abs(run.theta - th).max())
        res["energy"] = float(np.abs(run.observables["energy"] - E).max() / np.abs(E).max())
        res["noise_states"] = bool(np.array_equal(run.state.noise_states.view(np.uint64),
                                                  noise.view(np.uint64)))
        # chunked == whole, bit for bit
        a = S.sample_gpu(problem, method, n_steps=n // 2, step_size=h, beta=beta,
                         friction=gamma, state=st)
        b = S.sample_gpu(problem, method, n_steps=n - n // 2, step_size=h, beta=beta,
                         friction=gamma, state=a.state)
        res["chunked_theta"] = bool(np.array_equal(b.theta, run.theta))
        res["chunked_energy"] = bool(np.array_equal(
            np.concatenate([a.observables["energy"], b.observables["energy"]]),
            run.observables["energy"]))
        out[method] = res

    # beta = inf: SGLD is plain minibatch gradient descent, no noise drawn
    st = S._initial_state(problem, "sgld", theta0, 2, np.float64)
    run = S.sample_gpu(problem, "sgld", n_steps=2, step_size=h, beta=np.inf, state=st)
    noise = st.noise_states.copy()
    th, _ = S.sgld_reference(problem, theta0, reference_rows(st, 2), h, np.inf, noise)
    out["gd_theta"] = float(np.abs(run.theta - th).max())
    out["gd_states_untouched"] = bool(np.array_equal(run.state.noise_states.view(np.uint64),
                                                     st.noise_states.view(np.uint64)))

    # noise statistics: one SGLD step of a wider layer from a point where the
    # gradient is known, (θ1 - θ0 + h g) / σ must be standard normal
    Xw = rng.normal(size=(10, 40)); yw = rng.integers(0, 10, 10)
    wide = S.GPUProblem([40, 10], Xw, yw, batch_size=10)
    t0 = rng.normal(size=wide.dimension) * 0.1
    run = S.sample_gpu(wide, "sgld", t0, n_steps=1, step_size=1e-3, beta=1.0, seed=5)
    _, g, _ = G.mlp_loss_grad(t0, Xw, yw, np.arange(10), wide.spec, 1.0, 0.0)
    xi = (run.theta - t0 + 1e-3 * g) / np.sqrt(2e-3)
    out["noise_mean"] = float(xi.mean())
    out["noise_var"] = float(xi.var())
    out["noise_n"] = int(xi.size)

    # thermo.sample(..., device="cuda") on a tiny Posterior: the CPU twins step
    # for step, sample_gpu bit for bit, continuation with state=run.state
    import thermo
    net = thermo.MLP([4, 3])
    Xp = rng.normal(size=(12, 4)); yp = rng.integers(0, 3, 12)
    post = thermo.Posterior(net, Xp, yp, prior_precision=0.5, batch_size=4)
    tp = net.init(seed=1)
    api = {}
    for method in ("sgld", "baoab"):
        kw = dict(step_size=h, beta=beta, friction=gamma, record_every=1)
        run = thermo.sample(post, method, theta0=tp, n_steps=3, seed=4, chunk_steps=2,
                            record_trajectory=True, device="cuda", **kw)
        problem_p = S.GPUProblem.from_posterior(post)
        st = S._initial_state(problem_p, method, tp, 4, np.float64, beta)
        r = np.random.default_rng(); r.bit_generator.state = st.batch_rng
        rows, _ = S.batch_rows(r, st.order.copy(), st.cursor, 4, 3)
        noise = st.noise_states.copy()
        res = {"type": type(run).__name__, "observables": sorted(run.observables),
               "steps": run.observables["step"].tolist(), "state_step": run.state.step,
               "state_type": type(run.state).__name__, "device": run.parameters["device"],
               "trajectory_last": bool(np.array_equal(run.trajectory[-1], run.theta))}
        if method == "sgld":
            th, E = S.sgld_reference(problem_p, tp, rows, h, beta, noise)
        else:
            th, p, g, E, K = S.baoab_reference(problem_p, tp, st.momentum, st.gradient, rows,
                                               h, beta, gamma, noise)
            res["momentum"] = float(np.abs(run.state.momentum - p).max())
            res["kinetic"] = float(np.abs(run.observables["kinetic_energy"] - K).max())
            # start like the CPU BAOAB: momentum drawn, gradient at theta0
            res["momentum0"] = float(np.abs(st.momentum).max())
            _, g0, _ = G.mlp_loss_grad(tp, problem_p.X, problem_p.y, st.order[:4],
                                       problem_p.spec, 3.0, 0.5)
            res["gradient0"] = float(np.abs(st.gradient - g0).max())
        res["theta"] = float(np.abs(run.theta - th).max())
        res["energy"] = float(np.abs(run.observables["energy"] - E).max() / np.abs(E).max())
        a = thermo.sample(post, method, theta0=tp, n_steps=1, seed=4, device="cuda", **kw)
        b = thermo.sample(post, method, state=a.state, n_steps=2, device="cuda", **kw)
        res["continued"] = bool(np.array_equal(b.theta, run.theta) and np.array_equal(
            np.concatenate([a.observables["energy"], b.observables["energy"]]),
            run.observables["energy"]))
        res["continued_steps"] = b.observables["step"].tolist()
        api[method] = res
    # divergence: the prior's pull overshoots, U overflows at step 2
    try:
        thermo.sample(post, "sgld", theta0=tp, n_steps=4, step_size=1e160, seed=0,
                      chunk_steps=1, device="cuda")
        api["divergence"] = None
    except thermo.DivergenceError as err:
        api["divergence"] = [err.step, err.last_good_state.step,
                             err.partial_run.observables["step"].tolist()]
    out["api"] = api
    print("RESULT" + json.dumps(out))
""")


@pytest.fixture(scope="module")
def sim():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1",
               NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING="1")  # no colorama stdout wrapping
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def test_simulator_is_on(sim):
    assert sim["simulator"] and sim["available"]


def test_forward_backward_match_cpu_reference(sim):
    for case in sim["forward_backward"]:
        tol = 1e-5 if case["sizes"] == [5, 4, 3, 3] else 1e-12   # float32 inputs/activations
        assert case["forward"] < tol, case
        assert case["loss"] < tol and case["losses"] < tol, case
        assert case["grad"] < tol, case
        assert case["grad_norm"] > 1e-3, case     # a non-trivial gradient was compared


@pytest.mark.parametrize("method", ["sgld", "baoab"])
def test_sampler_matches_cpu_twin(sim, method):
    res = sim[method]
    assert res["steps"] == [1, 2, 3]
    assert res["theta"] < 1e-12
    assert res["energy"] < 1e-12
    assert res["noise_states"]
    if method == "baoab":
        assert res["momentum"] < 1e-12
        assert res["gradient"] < 1e-10
        assert res["kinetic"] < 1e-12
        assert res["kinetic_temperature"] < 1e-12


@pytest.mark.parametrize("method", ["sgld", "baoab"])
def test_chunked_equals_whole(sim, method):
    assert sim[method]["chunked_theta"]
    assert sim[method]["chunked_energy"]


def test_zero_temperature_is_gradient_descent(sim):
    assert sim["gd_theta"] < 1e-13
    assert sim["gd_states_untouched"]


def test_noise_statistics(sim):
    n = sim["noise_n"]
    assert n == 410
    assert abs(sim["noise_mean"]) < 4 / np.sqrt(n)
    assert 0.75 < sim["noise_var"] < 1.25


def test_host_normals_statistics():
    from thermo.samplers.gpu import xoroshiro_normals, xoroshiro_states
    states = xoroshiro_states(20000, 7)
    draws = np.concatenate([xoroshiro_normals(states) for _ in range(5)])
    assert abs(draws.mean()) < 4 / np.sqrt(draws.size)
    assert abs(draws.var() - 1) < 0.03
    assert abs(np.mean(draws ** 4) - 3) < 0.15
    again = xoroshiro_states(20000, 7)
    assert np.array_equal(xoroshiro_normals(again), draws[:20000])


def test_host_states_match_numba():
    from numba.cuda.random import init_xoroshiro128p_states_cpu, xoroshiro128p_dtype

    from thermo.samplers.gpu import xoroshiro_states
    ref = np.empty(40, xoroshiro128p_dtype)
    init_xoroshiro128p_states_cpu(ref, np.uint64(99), np.uint64(0))
    assert np.array_equal(xoroshiro_states(40, 99).view(np.uint64), ref.view(np.uint64))


def test_clear_error_without_gpu():
    from thermo._cuda import NO_GPU_MESSAGE, cuda_available
    from thermo.samplers.gpu import GPUProblem, sample_gpu
    if cuda_available():
        pytest.skip("a CUDA device (or the simulator) is available in this process")
    problem = GPUProblem([3, 2], np.zeros((4, 3)), np.zeros(4, int))
    with pytest.raises(RuntimeError) as err:
        sample_gpu(problem, "sgld", np.zeros(problem.dimension), n_steps=1, step_size=0.1)
    assert str(err.value) == NO_GPU_MESSAGE
    assert "use device='cpu'" in NO_GPU_MESSAGE


def test_bad_input_raises_before_any_kernel():
    from thermo.samplers.gpu import GPUProblem, sample_gpu
    problem = GPUProblem([3, 2], np.zeros((4, 3)), np.zeros(4, int))
    with pytest.raises(ValueError, match="method"):
        sample_gpu(problem, "hmc", np.zeros(8), n_steps=1, step_size=0.1)
    with pytest.raises(ValueError, match="step_size"):
        sample_gpu(problem, "sgld", np.zeros(8), n_steps=1, step_size=-1.0)
    with pytest.raises(ValueError, match="batch_size"):
        GPUProblem([3, 2], np.zeros((4, 3)), np.zeros(4, int), batch_size=9)
    with pytest.raises(ValueError, match="activation"):
        GPUProblem([3, 2, 2], np.zeros((4, 3)), np.zeros(4, int), activation="swish")


# --------------------------------------------------------------------------
# thermo.sample(..., device="cuda")

@pytest.mark.parametrize("method", ["sgld", "baoab"])
def test_sample_device_cuda_matches_cpu_twin(sim, method):
    res = sim["api"][method]
    assert res["type"] == "Run" and res["state_type"] == "GPUState"
    assert res["device"] == "cuda"
    expected = ["energy", "step"]
    if method == "baoab":
        expected += ["kinetic_energy", "kinetic_temperature"]
    assert res["observables"] == sorted(expected)
    assert res["steps"] == [1, 2, 3] and res["state_step"] == 3
    assert res["theta"] < 1e-12
    assert res["energy"] < 1e-12
    assert res["trajectory_last"]
    assert res["continued"] and res["continued_steps"] == [2, 3]
    if method == "baoab":
        assert res["momentum"] < 1e-12
        assert res["kinetic"] < 1e-12
        assert res["momentum0"] > 0          # momentum drawn ~ N(0, I/β), as on the CPU
        assert res["gradient0"] < 1e-12      # stored gradient = ∇U_B(θ0), first minibatch


def test_sample_device_cuda_divergence(sim):
    step, good, records = sim["api"]["divergence"]
    assert step == 2 and good == 1 and records == [1]


def _posterior(**kwargs):
    import thermo
    rng = np.random.default_rng(0)
    net = thermo.MLP([4, 3], loss=kwargs.pop("loss", "cross_entropy"))
    post = thermo.Posterior(net, rng.normal(size=(12, 4)), rng.integers(0, 3, 12),
                            batch_size=kwargs.pop("batch_size", 4), **kwargs)
    return post, net.init(seed=0)


def test_sample_device_cuda_rejects_unsupported_before_any_work(monkeypatch):
    import thermo
    from thermo.potentials import Gaussian
    from thermo.samplers import gpu as S

    def reached():
        pytest.fail("input checks must come before the device")
    monkeypatch.setattr(S, "require_device", reached)
    CPUState = collections.namedtuple("SGLDState", "theta step")
    post, theta0 = _posterior()
    kw = dict(theta0=theta0, n_steps=2, step_size=1e-3, device="cuda")
    cases = [
        (ValueError, "device must be 'cpu' or 'cuda'", post, "sgld", dict(kw, device="gpu")),
        (ValueError, "'sgld' and 'baoab'", post, "hmc", kw),
        (ValueError, "'sgld' and 'baoab'", post, "gla2", kw),
        (TypeError, "thermo.Posterior", Gaussian(np.zeros(15)), "sgld", kw),
        (ValueError, "bias", post, "sgld", dict(kw, bias=object())),
        (ValueError, "record_accuracy", post, "sgld", dict(kw, record_accuracy=True)),
        (TypeError, "supported options: chunk_steps", post, "sgld", dict(kw, n_leapfrog=3)),
        (ValueError, "friction", post, "baoab", dict(kw, friction=0.0)),
        (ValueError, "step_size", post, "sgld", dict(kw, step_size=-1.0)),
        (ValueError, "chunk_steps", post, "sgld", dict(kw, chunk_steps=0)),
        (TypeError, "seed", post, "sgld", dict(kw, seed=np.random.default_rng(0))),
        (ValueError, "theta0 is required", post, "sgld", dict(kw, theta0=None)),
        (ValueError, "shape", post, "sgld", dict(kw, theta0=np.zeros(3))),
        (TypeError, "GPUState", post, "sgld",      # e.g. the state of a CPU run
         dict(kw, theta0=None, state=CPUState(theta0, 0))),
        (ValueError, "cross_entropy", _posterior(loss="mse")[0], "sgld", kw),
        (ValueError, "without replacement", _posterior(replace=True)[0], "sgld", kw),
    ]
    for error, text, potential, method, kwargs in cases:
        with pytest.raises(error, match=text):
            thermo.sample(potential, method, **kwargs)
    # a GPUState of the other method
    state = S.GPUState("baoab", theta0, theta0, theta0, 0, None, None, None, 0)
    with pytest.raises(ValueError, match="'baoab' run"):
        thermo.sample(post, "sgld", state=state, n_steps=1, step_size=1e-3, device="cuda")


def test_sample_device_cuda_without_gpu(monkeypatch):
    import numba.cuda

    import thermo
    from thermo._cuda import simulator_enabled
    if simulator_enabled():
        pytest.skip("this process runs the CUDA simulator")
    monkeypatch.setattr(numba.cuda, "is_available", lambda: False)
    post, theta0 = _posterior()
    with pytest.raises(RuntimeError) as err:
        thermo.sample(post, "sgld", theta0=theta0, n_steps=1, step_size=1e-3, device="cuda")
    message = str(err.value)
    assert type(err.value) is RuntimeError and err.value.__cause__ is None
    assert message.startswith("device='cuda' needs an NVIDIA GPU with a working CUDA driver")
    assert "numba.cuda.is_available() is False" in message and "device='cpu'" in message


# --------------------------------------------------------------------------
# benchmarks/bench_gpu.py

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     "benchmarks", "bench_gpu.py")


def test_bench_gpu_help():
    proc = subprocess.run([sys.executable, BENCH, "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "--json" in proc.stdout and "--quick" in proc.stdout


def test_bench_gpu_without_gpu():
    from thermo._cuda import cuda_available
    if cuda_available():
        pytest.skip("a GPU (or the simulator) is available: the benchmark would run")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, BENCH, "--quick"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 2
    assert "needs an NVIDIA GPU" in proc.stderr and "Traceback" not in proc.stderr


def test_bench_gpu_tiny_under_simulator(tmp_path):
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1",
               NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING="1")  # no colorama stdout wrapping
    path = tmp_path / "bench.json"
    # GPU side only: the CPU side is thermo.sample(device="cpu"), whose first call
    # may compile for a minute when the Numba cache is cold
    proc = subprocess.run([sys.executable, BENCH, "--tiny", "--no-cpu", "--models",
                           "perceptron", "--methods", "sgld", "--batch-sizes", "4",
                           "--json", str(path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(path.read_text())
    assert report["simulator"] and report["tiny"]
    (row,) = report["results"]
    assert row["gpu_steps_per_s"] > 0 and row["gpu_steps"] >= 2
    assert "speed-up" in proc.stdout
