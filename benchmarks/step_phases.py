"""Where the time of one BAOAB step on the MNIST perceptron (batch 100) goes.

A step of ``thermo.sample(posterior, "baoab", ...)`` with the sparse-row
perceptron posterior is, in order:

1. ``noise``: 7,850 standard normals (:func:`thermo.samplers.noise.standard_normals`);
2. ``update``: the B, A, O, A half steps over θ and p (one pass);
3. ``draw``: the next minibatch's 100 row indices;
4. ``accumulate``: forward, softmax and backward of the 100 rows, in the
   parallel chunks of :mod:`thermo.networks.sparse_perceptron` (the one
   parallel region of the step);
5. ``reduce``: the chunk gradients summed into ∇U = (N/B) Σ ∇ℓ_i + λθ;
6. ``energy``: U = (N/B) Σ ℓ_i + λ|θ|²/2;
7. ``B+finite``: the last half kick and the divergence check.

This script runs a copy of that loop with the CPU's time-stamp counter read
between the phases, and prints each phase's median and 10th percentile over
``--steps`` steps, per thread count.  The copy calls the same kernels; its
mean total is printed next to the mean time per step of ``thermo.sample``
itself, measured right after it, so a copy that drifted from the sampler
would show (the copy works in place; the sampler keeps a second set of
buffers to fall back on after a divergence, which measured ~1-2 µs more in
the update).

Why: on a shared 2-core virtual machine the phases that move data between
the cores (the update writes θ, which the second thread reads in the next
forward; the reduce reads the second thread's gradient buffer) can take 3-5x
longer in one minute than in the next, while the same code on one thread
does not change.  A total steps/s hides that; the phases show it.

Usage::

    python benchmarks/step_phases.py [--steps 3000] [--threads 1 2] [--repeat 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import time

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

PHASES = ("noise", "update", "draw", "accumulate", "reduce", "energy", "B+finite", "total")
STEP_SIZE = 1e-4
FRICTION = 10.0
BETA = 1.0
PRIOR = 1.0


@intrinsic
def _time_stamp(typingctx):
    """The CPU's time-stamp counter (``llvm.readcyclecounter``)."""
    def codegen(context, builder, signature, args):
        function = builder.module.declare_intrinsic(
            "llvm.readcyclecounter", fnty=ir.FunctionType(ir.IntType(64), []))
        return builder.call(function, [])
    return types.uint64(), codegen


@njit
def _counter_now():
    return _time_stamp()


def counter_frequency(seconds=0.2):
    """Time-stamp counter ticks per second, against ``time.perf_counter``."""
    _counter_now()
    t0, c0 = time.perf_counter(), _counter_now()
    while time.perf_counter() - t0 < seconds:
        pass
    t1, c1 = time.perf_counter(), _counter_now()
    return (c1 - c0) / (t1 - t0)


def make_phase_loop():
    from thermo.data.minibatch import draw
    from thermo.networks import sparse_perceptron as sp
    from thermo.potentials.posterior import _half_norm2
    from thermo.samplers._solvers import ornstein_uhlenbeck_coefficients, pair_finite
    from thermo.samplers.noise import standard_normals

    @njit
    def phase_loop(data, theta, momentum, gradient, rng, n_steps, ticks):
        """BAOAB steps as thermo.samplers.baoab runs them, timed per phase."""
        d = theta.size
        half = 0.5 * STEP_SIZE
        c, sigma = ornstein_uhlenbeck_coefficients(FRICTION, STEP_SIZE, BETA)
        xi = np.empty(d)
        n_out = theta.size // data.s_wp.shape[0]
        for n in range(n_steps):
            t0 = _time_stamp()
            standard_normals(rng, xi)
            t1 = _time_stamp()
            for i in range(d):
                p = momentum[i] - half * gradient[i]
                q = theta[i] + half * p
                p = c * p + sigma * xi[i]
                theta[i] = q + half * p
                momentum[i] = p
            t2 = _time_stamp()
            draw(data.replace, data.order, data.cursor, data.batch, rng)
            t3 = _time_stamp()
            rows = data.batch
            weights = sp._weights(theta, data.s_wp, n_out, rows.size)
            n_chunks = sp._n_chunks(rows.size, data.s_gs.shape[0])
            sp._accumulate(data.s_indptr, data.s_indices, data.s_values, data.s_palette,
                           data.y_int, rows, weights, data.s_gs, data.s_z, data.s_loss,
                           n_chunks, n_out)
            t4 = _time_stamp()
            sp._reduce(data.s_gs, n_chunks, data.scale, data.prior_precision, theta, gradient,
                       n_out)
            t5 = _time_stamp()
            loss = 0.0
            for k in range(n_chunks):
                loss += data.s_loss[k]
            energy = data.scale * loss + _half_norm2(data.prior_precision, theta)
            t6 = _time_stamp()
            for i in range(d):
                momentum[i] -= half * gradient[i]
            if not (np.isfinite(energy) and pair_finite(theta, momentum)):
                return n
            t7 = _time_stamp()
            ticks[n, 0] = t1 - t0
            ticks[n, 1] = t2 - t1
            ticks[n, 2] = t3 - t2
            ticks[n, 3] = t4 - t3
            ticks[n, 4] = t5 - t4
            ticks[n, 5] = t6 - t5
            ticks[n, 6] = t7 - t6
            ticks[n, 7] = t7 - t0
        return n_steps
    return phase_loop


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="thread counts to run, in turn (default 1 and Numba's default)")
    parser.add_argument("--repeat", type=int, default=2, help="passes over the thread counts")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import thermo
    from thermo.data.mnist import load_mnist

    X, y = load_mnist("train")
    network = thermo.MLP([784, 10], loss="cross_entropy")
    posterior = thermo.Posterior(network, X, y, prior_precision=PRIOR, batch_size=100)
    data = posterior.kernel_data
    if data.fast != 2:
        raise SystemExit("the posterior does not use the sparse-row kernels; nothing to time")
    default_threads = numba.get_num_threads()
    thread_counts = args.threads or sorted({1, default_threads})
    phase_loop = make_phase_loop()
    frequency = counter_frequency()
    print(f"time-stamp counter {frequency / 1e9:.3f} GHz; {args.steps} steps per row; "
          f"µs per step, median (10th percentile); means of the copy and of thermo.sample")
    print(f"{'threads':>7s} " + " ".join(f"{name:>12s}" for name in PHASES)
          + f" {'mean':>7s} {'thermo.sample':>14s}")

    theta = network.init(seed=0)
    momentum = np.zeros_like(theta)
    gradient = np.zeros_like(theta)
    rng = np.random.default_rng(0)
    ticks = np.zeros((args.steps, len(PHASES)), np.uint64)
    state = thermo.sample(posterior, "baoab", theta0=theta, seed=0, n_steps=20,
                          step_size=STEP_SIZE, friction=FRICTION, beta=BETA).state
    phase_loop(data, theta.copy(), momentum, gradient, rng, 20, ticks)   # compile
    rows = []
    for _ in range(args.repeat):
        for n_threads in thread_counts:
            numba.set_num_threads(n_threads)
            done = phase_loop(data, theta, momentum, gradient, rng, args.steps, ticks)
            if done < args.steps:
                raise SystemExit(f"the copied loop diverged at step {done}")
            t0 = time.perf_counter()
            state = thermo.sample(posterior, "baoab", state=state, n_steps=args.steps,
                                  step_size=STEP_SIZE, friction=FRICTION, beta=BETA,
                                  record_every=args.steps).state
            sample_us = (time.perf_counter() - t0) / args.steps * 1e6
            us = ticks.astype(float) / frequency * 1e6
            median = np.median(us, axis=0)
            p10 = np.percentile(us, 10, axis=0)
            mean = us[:, -1].mean()
            print(f"{n_threads:7d} " + " ".join(f"{m:6.1f} ({p:4.1f})" for m, p in zip(median, p10))
                  + f" {mean:7.1f} {sample_us:14.1f}", flush=True)
            rows.append({"threads": n_threads, "median_us": dict(zip(PHASES, median.tolist())),
                         "p10_us": dict(zip(PHASES, p10.tolist())), "mean_total_us": mean,
                         "thermo_sample_us_per_step": sample_us})
    numba.set_num_threads(default_threads)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"counter_hz": frequency, "steps": args.steps, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
