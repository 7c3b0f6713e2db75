"""Roofline of the full-batch gradient of the MNIST perceptron (784 -> 10).

Prints

* what one full-batch gradient must read (60000 x 784 inputs as float64,
  float32 or uint8) and the flops it needs (``4 N D C``: forward and weight
  gradient, softmax ignored);
* this machine's streaming read bandwidth (NumPy ``sum`` of a large array;
  a Numba ``prange`` reduction) and matrix-product flop rate (``A @ A``,
  float64 and float32);
* on a shared machine wall times are inflated; the CPU time of the process
  divided by the thread count ("cpu/thr") estimates the time on idle cores;
* the time of thermo's full-batch gradient kernels (the fused, parallel
  :mod:`thermo.networks.fast_perceptron` kernels for float64, float32 and
  uint8 inputs; the sparse-row kernels of
  :mod:`thermo.networks.sparse_perceptron`, which :class:`thermo.Posterior`
  uses for MNIST, in float64 and float32 (coded: uint16 columns and uint8
  codes into the 256 pixel values; plain: int32 columns, float values); the general
  :meth:`thermo.networks.MLP.loss_and_grad` when it is importable) and, for
  each, GB/s and GFLOP/s reached (sparse kernels: the CSR bytes and the flops
  of the nonzeros, ``4 nnz C``), their fractions of the measured bandwidth
  and flop rate, ``time / (time to stream the kernel's input bytes once)``
  and ``time / (time to stream the dense float64 inputs once)``.  Target:
  <= 2.

Every time is the minimum over ``--repeat`` runs (the machine may be
shared).  ``--json PATH`` also writes the numbers.

Usage::

    python benchmarks/roofline.py [--repeat 7] [--threads N] [--fast-only] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import time

import numba
import numpy as np
from numba import njit, prange

N_CLASSES = 10


def load_data():
    """MNIST training images (uint8) and labels, or random data of the same
    shape when the loader or the files are missing."""
    try:
        from thermo.data.mnist import load_mnist
        X, y = load_mnist("train", as_uint8=True)
        return np.ascontiguousarray(X), np.asarray(y, np.int64), "MNIST"
    except Exception as err:  # noqa: BLE001 - any failure falls back to random data
        rng = np.random.default_rng(0)
        X = ((rng.random((60000, 784)) < 0.19) * rng.integers(0, 256, (60000, 784)))
        return X.astype(np.uint8), rng.integers(0, N_CLASSES, 60000), f"random ({err})"


def best(f, repeat, cpu=False):
    """Minimum wall time of ``f()`` over ``repeat`` runs (after one warm-up);
    with ``cpu`` also the minimum process CPU time (all threads)."""
    f()
    times, cpus = [], []
    for _ in range(repeat):
        c0 = time.process_time()
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return (min(times), min(cpus)) if cpu else min(times)


@njit(parallel=True, cache=True, fastmath=True)
def _parallel_sum(a):
    s = 0.0
    for i in prange(a.size):
        s += a[i]
    return s


def measure_machine(repeat):
    """Streaming read bandwidth (bytes/s) and GEMM flop rates (flop/s)."""
    big = np.ones(2 ** 25)                    # 256 MiB of float64
    numpy_bw = big.nbytes / best(big.sum, repeat)
    _parallel_sum(big[:16])
    numba_bw = big.nbytes / best(lambda: _parallel_sum(big), repeat)
    rates = {}
    for dtype in (np.float64, np.float32):
        A = np.random.default_rng(0).random((1500, 1500)).astype(dtype)
        rates[np.dtype(dtype).name] = 2 * 1500 ** 3 / best(lambda: A @ A, max(3, repeat // 2))
    return {"numpy_sum_GBps": numpy_bw / 1e9, "numba_sum_GBps": numba_bw / 1e9,
            "gemm_GFLOPs_float64": rates["float64"] / 1e9,
            "gemm_GFLOPs_float32": rates["float32"] / 1e9}


def kernels(X8, y, general=True):
    """(name, input bytes, callable) for each full-batch gradient kernel
    (``general=False``: the fast perceptron kernels only)."""
    from thermo.networks import fast_perceptron as fp
    n, d = X8.shape
    rows = np.arange(n, dtype=np.int64)
    X64 = X8 / 255.0
    X32 = X64.astype(np.float32)
    theta = np.random.default_rng(1).normal(0, 0.01, d * N_CLASSES + N_CLASSES)
    flops = 4.0 * n * d * N_CLASSES
    out = []
    for name, X, scale, th in (("fast float64", X64, 1.0, theta),
                               ("fast float32", X32, 1.0, theta.astype(np.float32)),
                               ("fast uint8->float64", X8, 1 / 255, theta),
                               ("fast uint8->float32", X8, 1 / 255, theta.astype(np.float32))):
        work = fp.make_work(d, N_CLASSES, th.dtype)
        grad = np.empty_like(th)

        def call(X=X, scale=scale, th=th, work=work, grad=grad):
            fp.perceptron_loss_grad(th, X, y, rows, 1.0, 0.0, scale, grad, work)
        out.append((name, X.nbytes, flops, call))
    # sparse rows (thermo.Posterior's default for MNIST): the bytes are the
    # CSR arrays, the flops those of the nonzeros only
    from thermo.networks import sparse_perceptron as sp
    # (compressed: uint16 columns and uint8 codes of the 256 pixel values, as
    # Posterior stores them; plain: int32 columns and float values)
    for dtype, compress in ((np.float64, True), (np.float32, True), (np.float64, False)):
        S = sp.to_sparse_rows(X8, dtype, 1 / 255, compress=compress)
        th = theta.astype(dtype)
        work = sp.make_sparse_work(d, N_CLASSES, dtype)
        grad = np.empty_like(th)

        def call(S=S, th=th, work=work, grad=grad):
            sp.sparse_loss_grad(th, S, y, rows, 1.0, 0.0, grad, work)
        out.append((f"sparse {np.dtype(dtype).name} ({'coded' if compress else 'plain'})",
                    S.nbytes, 4.0 * S.values.size * N_CLASSES, call))
    if not general:
        return out
    try:
        from thermo.networks import MLP
        for dtype, X in ((np.float64, X64), (np.float32, X32)):
            net = MLP([d, N_CLASSES], loss="cross_entropy", dtype=dtype)
            th = net.init(seed=0)

            def call(net=net, th=th, X=X):
                net.loss_and_grad(th, X, y)
            out.append((f"MLP.loss_and_grad {np.dtype(dtype).name}", X.nbytes, flops, call))
    except Exception as err:  # noqa: BLE001 - report and go on
        print(f"(thermo.networks.MLP not timed: {err})")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--fast-only", action="store_true",
                        help="time only the fast perceptron kernels (not MLP.loss_and_grad)")
    args = parser.parse_args(argv)
    if args.threads:
        numba.set_num_threads(args.threads)
    X8, y, source = load_data()
    n, d = X8.shape
    flops = 4.0 * n * d * N_CLASSES
    print(f"data: {source}, N = {n}, D = {d}, C = {N_CLASSES}, "
          f"numba threads = {numba.get_num_threads()}")
    print(f"full-batch gradient reads {n * d * 8 / 1e6:.0f} MB (float64), "
          f"{n * d * 4 / 1e6:.0f} MB (float32), {n * d / 1e6:.0f} MB (uint8); "
          f"needs {flops / 1e9:.2f} GFLOP")
    machine = measure_machine(args.repeat)
    bw = max(machine["numpy_sum_GBps"], machine["numba_sum_GBps"]) * 1e9
    print("machine: stream read {numpy_sum_GBps:.1f} GB/s (numpy sum), "
          "{numba_sum_GBps:.1f} GB/s (numba prange sum); GEMM {gemm_GFLOPs_float64:.1f} "
          "GFLOP/s float64, {gemm_GFLOPs_float32:.1f} GFLOP/s float32".format(**machine))
    header = (f"{'kernel':28s} {'time ms':>8s} {'cpu/thr':>8s} {'GB/s':>6s} {'%bw':>5s} "
              f"{'GFLOP/s':>8s} {'%peak':>6s} {'t/stream':>8s} {'t/str64':>8s}")
    print(header)
    print("-" * len(header))
    rows = []
    stream64 = n * d * 8 / bw
    for name, nbytes, flops, call in kernels(X8, y, general=not args.fast_only):
        t, cpu = best(call, args.repeat, cpu=True)
        peak = machine["gemm_GFLOPs_float32" if "float32" in name else
                       "gemm_GFLOPs_float64"] * 1e9
        stream = nbytes / bw
        row = {"kernel": name, "time_ms": t * 1e3,
               "cpu_per_thread_ms": cpu / numba.get_num_threads() * 1e3,
               "GBps": nbytes / t / 1e9,
               "fraction_bandwidth": nbytes / t / bw, "GFLOPs": flops / t / 1e9,
               "fraction_peak": flops / t / peak, "time_over_stream": t / stream,
               "time_over_float64_stream": t / stream64}
        rows.append(row)
        print(f"{name:28s} {row['time_ms']:8.1f} {row['cpu_per_thread_ms']:8.1f} "
              f"{row['GBps']:6.1f} "
              f"{100 * row['fraction_bandwidth']:5.0f} {row['GFLOPs']:8.1f} "
              f"{100 * row['fraction_peak']:6.0f} {row['time_over_stream']:8.2f} "
              f"{row['time_over_float64_stream']:8.2f}")
    print("t/stream: time over streaming this kernel's own input bytes once; t/str64: over "
          "streaming the dense float64 inputs once")
    print("target: <= 2 (full-batch gradient within 2x of reading its input once)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine, "kernels": rows, "data": source,
                       "threads": numba.get_num_threads()}, fh, indent=1)


if __name__ == "__main__":
    main()
