"""CUDA kernels checked against their CPU twins under Numba's CUDA simulator.

The simulator must be switched on (``NUMBA_ENABLE_CUDASIM=1``) before
``numba.cuda`` is first imported, so the comparisons run in one subprocess
with that variable set (the rest of the test session is unaffected); it
prints one JSON object of measured differences that the tests below check.
No GPU is needed -- and none is used: these tests verify the kernels' logic,
not their speed or behaviour on hardware.
"""
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
    print("RESULT" + json.dumps(out))
""")


@pytest.fixture(scope="module")
def sim():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
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
