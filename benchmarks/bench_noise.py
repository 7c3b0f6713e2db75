"""Gaussian noise vectors: thermo's sampler noise against NumPy and PyTorch, same process.

Every Langevin step draws one vector ξ ~ N(0, I) of the size d of θ.  This
times, for the MNIST perceptron (d = 7,850) and a 784-100-10 network
(d = 79,510):

* ``thermo.samplers.noise.standard_normals`` called from jitted code, as the
  samplers call it (blocks of four SFC64 lanes, ziggurat fast path in AVX2);
* the same draws one by one from the run's ``numpy.random.Generator`` inside
  Numba (what the kernels did before the blocked noise);
* NumPy's ``Generator.standard_normal(out=...)`` with PCG64 and with SFC64;
* ``torch.randn`` (float64), when PyTorch is installed.

Implementations alternate in blocks; each reports its best block, in µs per
vector and ns per draw, and its ratio to thermo.

Usage: ``python3 benchmarks/bench_noise.py [--repeat 5] [--seconds 0.3]``
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit

from thermo.samplers.noise import standard_normals


@njit(cache=True)
def _thermo_loop(rng, out, n):
    for _ in range(n):
        standard_normals(rng, out)


@njit(cache=True)
def _generator_loop(rng, out, n):
    for _ in range(n):
        for i in range(out.size):
            out[i] = rng.standard_normal()


def _best_seconds_per_call(call, seconds, repeat):
    """Best time per call over ``repeat`` blocks of about ``seconds`` each;
    ``call(n)`` makes n calls."""
    call(2)
    n = 1
    while True:                              # calibrate the block length
        start = time.perf_counter()
        call(n)
        elapsed = time.perf_counter() - start
        if elapsed > seconds / 4 or n > 1 << 20:
            break
        n *= 2
    n = max(1, int(n * seconds / max(elapsed, 1e-9)))
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        call(n)
        best = min(best, (time.perf_counter() - start) / n)
    return best


def _implementations(d):
    out = np.empty(d)
    thermo_rng = np.random.default_rng(0)
    generator_rng = np.random.default_rng(1)
    pcg = np.random.Generator(np.random.PCG64(2))
    sfc = np.random.Generator(np.random.SFC64(3))
    entries = [
        ("thermo standard_normals (jitted)", lambda n: _thermo_loop(thermo_rng, out, n)),
        ("Generator draws one by one (jitted)", lambda n: _generator_loop(generator_rng, out, n)),
        ("NumPy PCG64 standard_normal", lambda n: [pcg.standard_normal(out=out)
                                                    for _ in range(n)]),
        ("NumPy SFC64 standard_normal", lambda n: [sfc.standard_normal(out=out)
                                                    for _ in range(n)]),
    ]
    try:
        import torch
        buffer = torch.empty(d, dtype=torch.float64)
        torch.manual_seed(0)
        entries.append(("torch.randn float64", lambda n: [torch.randn(d, dtype=torch.float64,
                                                                      out=buffer)
                                                          for _ in range(n)]))
    except ImportError:
        pass
    return entries


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.3)
    args = parser.parse_args(argv)
    import numba
    print(f"numba threads {numba.get_num_threads()}")
    print(f"{'d':>7s} {'implementation':38s} {'µs/vector':>10s} {'ns/draw':>8s} {'÷ thermo':>9s}")
    for d in (7850, 79_510):
        entries = _implementations(d)
        best = {name: np.inf for name, _ in entries}
        for _ in range(args.repeat):             # alternate implementations
            for name, call in entries:
                best[name] = min(best[name], _best_seconds_per_call(call, args.seconds, 1))
        reference = best[entries[0][0]]
        for name, _ in entries:
            print(f"{d:7d} {name:38s} {best[name] * 1e6:10.1f} {best[name] / d * 1e9:8.2f} "
                  f"{best[name] / reference:8.2f}x")


if __name__ == "__main__":
    main()
