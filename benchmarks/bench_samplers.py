"""Steps per second of SGLD and BAOAB on the MNIST perceptron, against PyTorch and NumPy.

The model is ``thermo.MLP([784, 10])`` (softmax cross-entropy) with
``thermo.Posterior`` on the 60,000 MNIST training images, U the total loss
(N/B times the minibatch sum) plus a Gaussian prior.  The same SGLD step,

    θ ← θ - h ∇U_batch(θ) + sqrt(2h/β) ξ,

with epoch-wise minibatches (without replacement, reshuffled each epoch), is
timed in thermo (Numba, one thread), in PyTorch on the CPU (autograd; with 1
thread and with its default thread count) and in plain NumPy, all in this
process.  BAOAB is timed in thermo only.  Compilation is excluded (one short
warm-up run first).  Rates are steps per second of *process CPU time*
(``time.process_time``), which stays meaningful on a shared, oversubscribed
machine for the single-threaded candidates; wall-clock rates are printed
too (and are the only meaningful ones for multi-threaded PyTorch).  Run:

    python benchmarks/bench_samplers.py [--steps 3000] [--batch-sizes 100 1000]
                                         [--dtype float64|float32]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import thermo
from thermo.data import load_mnist

STEP_SIZE = 1e-6
BETA = 1.0
PRIOR_PRECISION = 1.0


class Clock:
    """Wall-clock and process-CPU stopwatch."""

    def __init__(self):
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def rates(self, n_steps):
        """(steps per CPU second, steps per wall second)."""
        return (n_steps / (time.process_time() - self.cpu),
                n_steps / (time.perf_counter() - self.wall))


def time_thermo(posterior, method, theta0, n_steps):
    thermo.sample(posterior, method, theta0=theta0, n_steps=5, step_size=STEP_SIZE,
                  beta=BETA, friction=1.0, seed=0, record_every=5)          # compile
    clock = Clock()
    run = thermo.sample(posterior, method, theta0=theta0, n_steps=n_steps,
                        step_size=STEP_SIZE, beta=BETA, friction=1.0, seed=1,
                        record_every=max(1, n_steps // 10), chunk_steps=n_steps)
    assert np.all(np.isfinite(run.state.theta))
    return clock.rates(n_steps)


def time_numpy(X, y, batch_size, theta0, n_steps, dtype):
    n, n_in = X.shape
    n_out = 10
    rng = np.random.default_rng(0)
    theta = theta0.astype(dtype).copy()
    order = rng.permutation(n)
    cursor = 0
    scale = n / batch_size
    noise_scale = np.sqrt(2.0 * STEP_SIZE / BETA)
    one_hot = np.eye(n_out, dtype=dtype)

    def step(theta, rows):
        W = theta[:n_in * n_out].reshape(n_in, n_out)
        b = theta[n_in * n_out:]
        xb = X[rows]
        logits = xb @ W + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        delta = (p - one_hot[y[rows]]) * scale
        gradient = np.empty_like(theta)
        gradient[:n_in * n_out] = (xb.T @ delta).ravel()
        gradient[n_in * n_out:] = delta.sum(axis=0)
        gradient += PRIOR_PRECISION * theta
        theta -= STEP_SIZE * gradient
        theta += noise_scale * rng.standard_normal(theta.size).astype(dtype)
        return theta

    for _ in range(3):
        theta = step(theta, order[:batch_size])
    clock = Clock()
    for _ in range(n_steps):
        if cursor + batch_size > n:
            order = rng.permutation(n)
            cursor = 0
        theta = step(theta, order[cursor:cursor + batch_size])
        cursor += batch_size
    return clock.rates(n_steps)


def time_torch(X, y, batch_size, theta0, n_steps, dtype, threads):
    import torch
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
        generator = torch.Generator().manual_seed(0)
        Xt = torch.from_numpy(X)
        yt = torch.from_numpy(y)
        n, n_in = X.shape
        W = torch.tensor(theta0[:n_in * 10].reshape(n_in, 10), dtype=torch_dtype,
                         requires_grad=True)
        b = torch.tensor(theta0[n_in * 10:], dtype=torch_dtype, requires_grad=True)
        scale = n / batch_size
        noise_scale = float(np.sqrt(2.0 * STEP_SIZE / BETA))
        order = torch.randperm(n, generator=generator)
        cursor = 0

        def step(rows):
            logits = Xt[rows] @ W + b
            loss = torch.nn.functional.cross_entropy(logits, yt[rows], reduction="sum") * scale
            loss = loss + 0.5 * PRIOR_PRECISION * ((W * W).sum() + (b * b).sum())
            gW, gb = torch.autograd.grad(loss, (W, b))
            with torch.no_grad():
                W.add_(gW, alpha=-STEP_SIZE)
                W.add_(torch.randn(W.shape, generator=generator, dtype=torch_dtype),
                       alpha=noise_scale)
                b.add_(gb, alpha=-STEP_SIZE)
                b.add_(torch.randn(b.shape, generator=generator, dtype=torch_dtype),
                       alpha=noise_scale)

        for _ in range(3):
            step(order[:batch_size])
        clock = Clock()
        for _ in range(n_steps):
            if cursor + batch_size > n:
                order = torch.randperm(n, generator=generator)
                cursor = 0
            step(order[cursor:cursor + batch_size])
            cursor += batch_size
        return clock.rates(n_steps)
    finally:
        torch.set_num_threads(previous)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--no-torch", action="store_true")
    arguments = parser.parse_args(argv)
    dtype = np.dtype(arguments.dtype).type

    X, y = load_mnist("train", dtype=dtype)
    net = thermo.MLP([784, 10], dtype=dtype)
    theta0 = net.init(seed=0)
    try:
        import torch
        torch_threads = torch.get_num_threads()
    except ImportError:
        torch = None
    print(f"MNIST perceptron, N={X.shape[0]}, d={net.n_params}, {arguments.dtype}, "
          f"{arguments.steps} steps per measurement, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    for batch_size in arguments.batch_sizes:
        posterior = thermo.Posterior(net, X, y, prior_precision=PRIOR_PRECISION,
                                     batch_size=batch_size)
        results = {
            "thermo sgld": time_thermo(posterior, "sgld", theta0, arguments.steps),
            "thermo baoab": time_thermo(posterior, "baoab", theta0, arguments.steps),
            "numpy sgld": time_numpy(X, y, batch_size, theta0, arguments.steps, dtype),
        }
        if torch is not None and not arguments.no_torch:
            results["torch sgld (1 thread)"] = time_torch(X, y, batch_size, theta0,
                                                          arguments.steps, dtype, 1)
            results[f"torch sgld ({torch_threads} threads)"] = time_torch(
                X, y, batch_size, theta0, arguments.steps, dtype, torch_threads)
        reference = results["thermo sgld"][0]
        print(f"\nbatch size {batch_size} (steps/s per CPU second, per wall second)")
        for name, (cpu_rate, wall_rate) in results.items():
            print(f"  {name:28s} {cpu_rate:9.0f} cpu  {wall_rate:9.0f} wall   "
                  f"thermo sgld / this (cpu) = {reference / cpu_rate:6.2f}", flush=True)


if __name__ == "__main__":
    main()
