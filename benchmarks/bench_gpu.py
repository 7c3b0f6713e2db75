"""Steps per second of ``thermo.sample(..., device="cuda")`` against the CPU, on MNIST.

One prepared script for a machine with an NVIDIA GPU.  For each model

* ``perceptron``: ``thermo.MLP([784, 10])`` (softmax regression),
* ``mlp``: ``thermo.MLP([784, 100, 10], activation="tanh")``,

each method (SGLD, BAOAB) and each batch size (100, 1000, 10,000 of the
60,000 training images; U the total loss (N/B times the minibatch sum) plus a
Gaussian prior), it times ``thermo.sample(posterior, method, ...,
device="cuda")`` and the CPU ``thermo.sample`` (``device="cpu"``, Numba) in the
same process, and prints a table of steps/s and the GPU's speed-up.

Timing
------
* A warm-up call per configuration first (CUDA and Numba compilation
  excluded).
* Then runs continuing the warm-up's state in chunks (growing) until
  ``--seconds`` of wall time have passed; the rate is steps / wall seconds
  over those runs.  ``thermo.sample(device="cuda")`` returns only after
  ``cuda.synchronize()`` and copying the final state back, so the clock stops
  after the device has finished.
* Each GPU call also uploads the data set and the state; that fixed cost is
  measured once with ``n_steps=0`` and reported (``gpu_call_overhead_s``)
  and subtracted in ``gpu_steps_per_s_net``.  ``gpu_steps_per_s`` includes
  it.
* Records every ``--record-every`` steps (default 100) on both devices.

Before timing, a 5-step run of a small posterior is compared with the CPU
twins of the GPU kernels (``reference_check``; max relative difference
printed and stored, expected < 1e-5 on a GPU, ~1e-15 in the simulator).
Exit status 1 when a configuration failed or that check is off.

Run::

    python benchmarks/bench_gpu.py --json gpu.json            # full, a few minutes
    python benchmarks/bench_gpu.py --quick --json gpu.json    # ~1 minute
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/bench_gpu.py --tiny   # logic check, no GPU

Without a GPU (and outside the simulator) it exits with status 2 and a
message.  Under Numba's CUDA simulator only ``--tiny`` (synthetic data, tiny
net, a few steps) is allowed: the simulator checks that the script works, not
speed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

# Under the CUDA simulator, Numba's coloured warning text (colorama init/deinit
# from many simulated threads at once) can wrap sys.stdout thousands of times
# until print() recurses too deep; plain messages avoid that (set before Numba
# is imported).
os.environ.setdefault("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1")

import numpy as np  # noqa: E402

STEP_SIZE = 1e-6
BETA = 1.0
FRICTION = 1.0
PRIOR_PRECISION = 1.0

MODELS = {"perceptron": ([784, 10], "tanh"), "mlp": ([784, 100, 10], "tanh")}
TINY_MODELS = {"perceptron": ([8, 4], "tanh"), "mlp": ([8, 5, 4], "tanh")}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Steps/s of thermo.sample(device='cuda') vs the CPU on MNIST "
                    "(SGLD and BAOAB, batch 100, 1000, 10000).")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true",
                        help="shorter timing windows (--seconds 0.5), about a minute")
    parser.add_argument("--tiny", action="store_true",
                        help="synthetic data and tiny nets, 2 timed steps: checks the script "
                             "(also under NUMBA_ENABLE_CUDASIM=1), measures nothing")
    parser.add_argument("--seconds", type=float, default=None,
                        help="wall seconds timed per configuration and device (default 3, "
                             "--quick 0.5)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                        help="default 100 1000 10000 (--tiny: 4 16)")
    parser.add_argument("--methods", nargs="+", default=["sgld", "baoab"],
                        choices=["sgld", "baoab"])
    parser.add_argument("--models", nargs="+", default=["perceptron", "mlp"],
                        choices=sorted(MODELS))
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--record-every", type=int, default=100)
    parser.add_argument("--chunk-steps", type=int, default=1000,
                        help="GPU steps per host round trip (thermo.sample chunk_steps)")
    parser.add_argument("--no-cpu", action="store_true", help="time the GPU only")
    return parser.parse_args(argv)


def check_device(tiny):
    """Name of the CUDA device, or exit with a clear message."""
    from thermo._cuda import NO_GPU_MESSAGE, cuda_available, device_name, simulator_enabled

    if not cuda_available():
        _fail("bench_gpu.py needs an NVIDIA GPU with a working CUDA driver: "
                 + NO_GPU_MESSAGE + " (or run with NUMBA_ENABLE_CUDASIM=1 ... --tiny to "
                 "check the script on the CPU)")
    if simulator_enabled() and not tiny:
        _fail("bench_gpu.py: Numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1); it "
                 "is far too slow for MNIST sizes, use --tiny")
    return device_name()


def _fail(message):
    print(message, file=sys.stderr)
    sys.exit(2)


def load_data(tiny, dtype):
    if tiny:
        rng = np.random.default_rng(0)
        return rng.normal(size=(64, 8)).astype(dtype), rng.integers(0, 4, 64)
    from thermo.data import load_mnist
    return load_mnist("train", dtype=dtype)


def reference_check(tiny=False):
    """Max differences of ``thermo.sample(device="cuda")`` from the CPU twins.

    A small posterior ([20, 8, 5] tanh, 50 rows, batch 10, 5 steps; ``tiny``:
    [4, 2], 8 rows, batch 4, 2 steps), SGLD and BAOAB, against
    :func:`thermo.samplers.gpu.sgld_reference` / ``baoab_reference`` (same
    minibatches, same xoroshiro128+ streams).  On a
    GPU the normals' logarithm is taken in float32, so expect relative
    differences ~1e-7, not 0.
    """
    import thermo
    from thermo.samplers import gpu as S

    sizes, n, batch, n_steps = ([4, 2], 8, 4, 2) if tiny else ([20, 8, 5], 50, 10, 5)
    rng = np.random.default_rng(5)
    net = thermo.MLP(sizes, activation="tanh")
    posterior = thermo.Posterior(net, rng.normal(size=(n, sizes[0])),
                                 rng.integers(0, sizes[-1], n), prior_precision=0.5,
                                 batch_size=batch)
    theta0 = net.init(seed=0)
    problem = S.GPUProblem.from_posterior(posterior)
    h, beta, gamma = 1e-3, 2.0, 1.0
    out = {}
    for method in ("sgld", "baoab"):
        run = thermo.sample(posterior, method, theta0=theta0, n_steps=n_steps, step_size=h,
                            beta=beta, friction=gamma, seed=3, device="cuda")
        state = S._initial_state(problem, method, theta0, 3, np.float64, beta)
        generator = np.random.default_rng()
        generator.bit_generator.state = state.batch_rng
        rows, _ = S.batch_rows(generator, state.order.copy(), state.cursor,
                               problem.batch_size, n_steps)
        noise = state.noise_states.copy()
        if method == "sgld":
            theta, energy = S.sgld_reference(problem, theta0, rows, h, beta, noise)
        else:
            theta, _, _, energy, _ = S.baoab_reference(problem, theta0, state.momentum,
                                                       state.gradient, rows, h, beta,
                                                       gamma, noise)
        out[method] = {
            "theta_rel": float(np.abs(run.theta - theta).max() / np.abs(theta).max()),
            "energy_rel": float(np.abs(run.observables["energy"] - energy).max()
                                / np.abs(energy).max())}
    return out


def timed(call, state, seconds, first_chunk, min_steps):
    """Run ``call(n_steps, state)`` in growing chunks until ``seconds`` passed.

    Returns (steps, wall seconds, number of calls)."""
    steps, elapsed, n, calls = 0, 0.0, first_chunk, 0
    while elapsed < seconds or steps < min_steps:
        started = time.perf_counter()
        run = call(n, state)
        elapsed += time.perf_counter() - started
        state = run.state
        steps += n
        calls += 1
        if not np.all(np.isfinite(state.theta)):
            raise FloatingPointError("non-finite θ")
        # double, but aim at the end of the window (bounds the overshoot)
        remaining = seconds - elapsed
        n = 2 * n if remaining <= 0 else max(1, min(2 * n, int(remaining * steps / elapsed) + 1))
    return steps, elapsed, calls


def bench_one(posterior, method, theta0, device, args, seconds, first_chunk, min_steps):
    import thermo

    options = {"step_size": STEP_SIZE, "beta": BETA, "friction": FRICTION,
               "record_every": args.record_every, "device": device}
    if device == "cuda":
        options["chunk_steps"] = args.chunk_steps

    def call(n, state):
        return thermo.sample(posterior, method, state=state, n_steps=n, **options)

    started = time.perf_counter()
    warm = thermo.sample(posterior, method, theta0=theta0, seed=0, n_steps=2, **options)
    warm_up = time.perf_counter() - started
    result = {"warm_up_s": warm_up}
    if device == "cuda":
        started = time.perf_counter()
        call(0, warm.state)
        result["call_overhead_s"] = time.perf_counter() - started
    steps, elapsed, calls = timed(call, warm.state, seconds, first_chunk, min_steps)
    result.update(steps=steps, seconds=elapsed, steps_per_s=steps / elapsed)
    if device == "cuda":
        net = elapsed - calls * result["call_overhead_s"]
        result["calls"] = calls
        result["steps_per_s_net"] = steps / net if net > 0 else float("nan")
    return result


def main(argv=None):
    args = parse_args(argv)
    device = check_device(args.tiny)

    import numba

    import thermo

    dtype = np.dtype(args.dtype)
    seconds = args.seconds if args.seconds is not None else (
        0.0 if args.tiny else 0.5 if args.quick else 3.0)
    batch_sizes = args.batch_sizes or ([4, 16] if args.tiny else [100, 1000, 10000])
    models = TINY_MODELS if args.tiny else MODELS
    gpu_first, cpu_first, min_steps = (1, 1, 2) if args.tiny else (200, 10, 1)

    started = time.perf_counter()
    X, y = load_data(args.tiny, dtype)
    print(f"data: {X.shape[0]} x {X.shape[1]} {X.dtype} ({time.perf_counter() - started:.1f} s)"
          f"; GPU: {device}; CPU: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, numba threads {numba.get_num_threads()}", flush=True)

    started_check = time.perf_counter()
    check = reference_check(args.tiny)
    worst = max(v for m in check.values() for v in m.values())
    print(f"GPU vs CPU twins ({', '.join(check)}; {time.perf_counter() - started_check:.1f} s)"
          f": max relative difference "
          f"{worst:.1e}" + ("" if worst < 1e-5 else "  <-- LARGER THAN EXPECTED"), flush=True)

    rows = []
    for model in args.models:
        sizes, activation = models[model]
        net = thermo.MLP(sizes, activation=activation, dtype=dtype)
        theta0 = net.init(seed=0)
        for batch_size in batch_sizes:
            posterior = thermo.Posterior(net, X, y, prior_precision=PRIOR_PRECISION,
                                         batch_size=min(batch_size, X.shape[0]))
            for method in args.methods:
                row = {"model": model, "sizes": sizes, "method": method,
                       "batch_size": batch_size, "dtype": str(dtype)}
                for dev, first in (("cuda", gpu_first), ("cpu", cpu_first)):
                    if dev == "cpu" and args.no_cpu:
                        continue
                    try:
                        res = bench_one(posterior, method, theta0, dev, args, seconds,
                                        first, min_steps)
                    except Exception as error:  # noqa: BLE001 - report and go on
                        res = {"error": f"{type(error).__name__}: {error}"}
                    prefix = "gpu" if dev == "cuda" else "cpu"
                    row.update({f"{prefix}_{k}": v for k, v in res.items()})
                if "gpu_steps_per_s" in row and "cpu_steps_per_s" in row:
                    row["speedup"] = row["gpu_steps_per_s"] / row["cpu_steps_per_s"]
                rows.append(row)
                print(_line(row), flush=True)

    print()
    print(_table(rows))
    total = time.perf_counter() - started
    print(f"\ntotal {total:.0f} s")
    if args.json:
        report = {"device": device, "simulator": device == "simulator",
                  "cpu": platform.processor() or platform.machine(),
                  "cpu_count": os.cpu_count(), "numba_threads": numba.get_num_threads(),
                  "numba": numba.__version__, "numpy": np.__version__,
                  "python": platform.python_version(), "step_size": STEP_SIZE,
                  "beta": BETA, "friction": FRICTION, "prior_precision": PRIOR_PRECISION,
                  "record_every": args.record_every, "chunk_steps": args.chunk_steps,
                  "seconds_per_measurement": seconds, "tiny": args.tiny,
                  "quick": args.quick, "total_seconds": total, "reference_check": check,
                  "results": rows}
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1, default=str)
        print(f"wrote {args.json}")
    failed = [r for r in rows if "gpu_error" in r or "cpu_error" in r]
    return 1 if failed or not worst < 1e-5 else 0


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    return str(value)


def _line(row):
    parts = [f"{row['model']:>10} {row['method']:>5} B={row['batch_size']:<6}"]
    for prefix in ("gpu", "cpu"):
        if f"{prefix}_error" in row:
            parts.append(f"{prefix}: {row[prefix + '_error']}")
        elif f"{prefix}_steps_per_s" in row:
            parts.append(f"{prefix} {_fmt(row[prefix + '_steps_per_s'])} steps/s")
    if "speedup" in row:
        parts.append(f"x{row['speedup']:.1f}")
    return "  ".join(parts)


def _table(rows):
    header = ("model", "method", "batch", "GPU steps/s", "GPU net", "CPU steps/s", "speed-up")
    lines = [header]
    for row in rows:
        lines.append((row["model"], row["method"], str(row["batch_size"]),
                      _fmt(row.get("gpu_steps_per_s", "error" if "gpu_error" in row else None)),
                      _fmt(row.get("gpu_steps_per_s_net")),
                      _fmt(row.get("cpu_steps_per_s", "error" if "cpu_error" in row else None)),
                      f"{row['speedup']:.1f}" if "speedup" in row else "-"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [" | ".join(cell.rjust(width) for cell, width in zip(line, widths))
           for line in lines]
    out.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
