"""Sampler steps per second: thermo versus PyTorch (CPU, eager), same run.

Problems (MNIST training set, 60000 rows; random data of the same shape when
the loader is missing), posterior ``U = (N/B) Σ_batch ℓ_i + (λ/2)|θ|²``:

* the perceptron 784 -> 10 (softmax cross entropy) at batch 100 and 1000;
* a 784-100-10 tanh network at batch 100.

Samplers: SGLD and BAOAB.  thermo is timed through

* ``fused``: the fused perceptron kernels of
  :mod:`thermo.networks.fast_perceptron` (float64 inputs, and uint8 inputs
  with float32 θ), and
* ``thermo.sample``: the general driver with :class:`thermo.Posterior`
  (when importable), on Numba's thread count and with ``threads="auto"``
  (the run picks 1 or 2 threads from its own chunk timings; same results),

PyTorch through the usual eager loop (autograd for the gradient, in-place
``torch.no_grad`` updates, ``torch.randn_like`` noise), float64 and float32,
with as many intra-op threads as Numba uses.  Every rate is the best of
``--repeat`` timed blocks of about ``--seconds`` each; thermo and torch blocks
alternate, so a shared machine's load hits both alike.  Ratios are printed
against torch of the same float type.

Usage::

    python benchmarks/bench_vs_torch.py [--repeat 3] [--seconds 1.0] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numba
import numpy as np

N_CLASSES = 10
PRIOR = 1.0
H = {"sgld": 1e-6, "baoab": 1e-4}
BETA = 1.0
FRICTION = 10.0


def load_data():
    """MNIST training images (uint8) and labels, or random stand-ins."""
    try:
        from thermo.data.mnist import load_mnist
        X, y = load_mnist("train", as_uint8=True)
        return np.ascontiguousarray(X), np.asarray(y, np.int64), "MNIST"
    except Exception as err:  # noqa: BLE001
        rng = np.random.default_rng(0)
        X = (rng.random((60000, 784)) < 0.19) * rng.integers(0, 256, (60000, 784))
        return X.astype(np.uint8), rng.integers(0, N_CLASSES, 60000), f"random ({err})"


def rate(run, seconds, repeat):
    """Best steps/s of ``run(n)`` over ``repeat`` blocks of ~``seconds``."""
    run(2)
    n = 4
    while True:                      # grow the block until it lasts long enough
        t0 = time.perf_counter()
        run(n)
        dt = time.perf_counter() - t0
        if dt > 0.2 * seconds or n > 10 ** 6:
            break
        n *= 4
    n = max(2, int(n * seconds / max(dt, 1e-9)))
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        run(n)
        best = max(best, n / (time.perf_counter() - t0))
    return best


# --------------------------------------------------------------------------
# thermo: fused perceptron kernels

def thermo_fused(X, scale, y, dtype, method, batch):
    from thermo.data.minibatch import new_order
    from thermo.networks import fast_perceptron as fp
    d = X.shape[1] * N_CLASSES + N_CLASSES
    theta = np.zeros(d, dtype)
    momentum = np.zeros(d, dtype)
    grad = np.empty(d, dtype)
    work = fp.make_work(X.shape[1], N_CLASSES, dtype)
    rng = np.random.default_rng(0)
    order, cursor = new_order(X.shape[0])
    rows = np.empty(batch, np.int64)
    buf = np.empty(1)
    ftype = np.dtype(dtype).type

    def run(n):
        nonlocal buf
        if buf.size < n:
            buf = np.empty(n)
        if method == "sgld":
            fp.sgld_steps(X, ftype(scale), y, theta, grad, order, cursor, rows, n, H[method],
                          BETA, PRIOR, rng, *work, buf, buf)
        else:
            fp.baoab_steps(X, ftype(scale), y, theta, momentum, grad, order, cursor, rows, n,
                           H[method], BETA, FRICTION, PRIOR, rng, *work, buf, buf)
    return run


# --------------------------------------------------------------------------
# thermo: the general driver

def thermo_sample(X, y, sizes, dtype, method, batch, sparse_inputs=None, threads=None):
    import thermo
    net = thermo.MLP(sizes, activation="tanh", loss="cross_entropy", dtype=dtype)
    post = thermo.Posterior(net, X.astype(dtype), y, prior_precision=PRIOR, batch_size=batch,
                            sparse_inputs=sparse_inputs)
    state = {"state": None, "theta": net.init(seed=0)}

    def run(n):
        kwargs = dict(n_steps=n, step_size=H[method], beta=BETA, record_every=n)
        if threads is not None:
            kwargs["threads"] = threads
        if method == "baoab":
            kwargs["friction"] = FRICTION
        if state["state"] is None:
            out = thermo.sample(post, method, theta0=state["theta"], seed=0, **kwargs)
        else:
            out = thermo.sample(post, method, state=state["state"], **kwargs)
        state["state"] = out.state
    return run


# --------------------------------------------------------------------------
# PyTorch eager

def torch_loop(X, y, sizes, dtype, method, batch):
    import torch
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    Xt = torch.from_numpy(X.astype(dtype))
    yt = torch.from_numpy(y)
    N = Xt.shape[0]
    gen = torch.Generator().manual_seed(0)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append((torch.randn(fan_in, fan_out, dtype=tdtype, generator=gen)
                       * math.sqrt(1.0 / fan_in)).requires_grad_())
        params.append(torch.zeros(fan_out, dtype=tdtype, requires_grad=True))
    moms = [torch.zeros_like(p) for p in params]
    scale = N / batch
    h = H[method]
    sigma = math.sqrt(2 * h / BETA)
    c1 = math.exp(-FRICTION * h)
    c2 = math.sqrt((1 - c1 * c1) / BETA)
    state = {"perm": torch.randperm(N, generator=gen), "pos": 0}

    def gradient():
        if state["pos"] + batch > N:
            state["perm"] = torch.randperm(N, generator=gen)
            state["pos"] = 0
        idx = state["perm"][state["pos"]:state["pos"] + batch]
        state["pos"] += batch
        a = Xt[idx]
        for layer in range(len(sizes) - 1):
            a = a @ params[2 * layer] + params[2 * layer + 1]
            if layer < len(sizes) - 2:
                a = torch.tanh(a)
        loss = torch.nn.functional.cross_entropy(a, yt[idx], reduction="sum") * scale
        loss = loss + 0.5 * PRIOR * sum((p * p).sum() for p in params)
        return torch.autograd.grad(loss, params)

    def run(n):
        if method == "sgld":
            for _ in range(n):
                grads = gradient()
                with torch.no_grad():
                    for p, g in zip(params, grads):
                        p.add_(g, alpha=-h).add_(torch.randn_like(p), alpha=sigma)
        else:
            grads = gradient()
            for _ in range(n):
                with torch.no_grad():
                    for p, m, g in zip(params, moms, grads):
                        m.add_(g, alpha=-0.5 * h)
                        p.add_(m, alpha=0.5 * h)
                        m.mul_(c1).add_(torch.randn_like(m), alpha=c2)
                        p.add_(m, alpha=0.5 * h)
                grads = gradient()
                with torch.no_grad():
                    for m, g in zip(moms, grads):
                        m.add_(g, alpha=-0.5 * h)
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--only", type=int, nargs="*", default=None,
                        help="problems to run: 0 perceptron B=100, 1 perceptron B=1000, "
                             "2 784-100-10 B=100 (default all)")
    parser.add_argument("--skip-sample", action="store_true",
                        help="do not time thermo.sample (the general driver)")
    args = parser.parse_args(argv)
    import torch
    if args.threads:
        numba.set_num_threads(args.threads)
    torch.set_num_threads(numba.get_num_threads())
    X8, y, source = load_data()
    X64 = X8 / 255.0
    print(f"data: {source}; numba threads {numba.get_num_threads()}, torch threads "
          f"{torch.get_num_threads()}, torch {torch.__version__}")
    perceptron = [784, N_CLASSES]
    mlp = [784, 100, N_CLASSES]
    results = []
    header = f"{'problem':26s} {'method':6s} {'implementation':34s} {'steps/s':>9s} {'vs torch':>9s}"
    print(header)
    print("-" * len(header))
    problems = [(perceptron, 100), (perceptron, 1000), (mlp, 100)]
    if args.only:
        problems = [problems[i] for i in args.only]
    for sizes, batch in problems:
        label = f"{'-'.join(map(str, sizes))} B={batch}"
        for method in ("sgld", "baoab"):
            torch_rate = {}
            entries = []
            for dtype in (np.float64, np.float32):
                name = f"torch eager {np.dtype(dtype).name}"
                entries.append((name, dtype, torch_loop(X64, y, sizes, dtype, method, batch)))
            if sizes == perceptron:
                entries.append(("thermo fused float64", np.float64,
                                thermo_fused(X64, 1.0, y, np.float64, method, batch)))
                entries.append(("thermo fused uint8/float32", np.float32,
                                thermo_fused(X8, 1 / 255, y, np.float32, method, batch)))
            if not args.skip_sample:
                # thermo.Posterior's default for the perceptron on MNIST (19 %
                # nonzero pixels) is sparse input rows; "dense X" forces the
                # dense kernel, which is what dense data would get
                sample = [("thermo.sample float64", np.float64, None, None),
                          ("thermo.sample float64 threads=auto", np.float64, None, "auto")]
                if sizes == perceptron:
                    sample += [("thermo.sample float64 dense X", np.float64, False, None),
                               ("thermo.sample float32", np.float32, None, None)]
                for name, dtype, sparse, threads in sample:
                    try:
                        entries.append((name, dtype, thermo_sample(X64, y, sizes, dtype, method,
                                                                   batch, sparse, threads)))
                    except Exception as err:  # noqa: BLE001
                        print(f"({name} not timed: {err})")
            rates = {name: 0.0 for name, _, _ in entries}
            for _ in range(args.repeat):     # alternate implementations
                for name, dtype, run in entries:
                    rates[name] = max(rates[name], rate(run, args.seconds, 1))
            for name, dtype, _ in entries:
                if name.startswith("torch"):
                    torch_rate[np.dtype(dtype).name] = rates[name]
            for name, dtype, _ in entries:
                ratio = rates[name] / torch_rate[np.dtype(dtype).name]
                row = {"problem": label, "method": method, "implementation": name,
                       "steps_per_s": rates[name], "ratio_vs_torch_same_dtype": ratio}
                results.append(row)
                print(f"{label:26s} {method:6s} {name:34s} {rates[name]:9.0f} {ratio:8.2f}x")
    print("targets: >= 10000 steps/s at batch 100; >= 5x torch (perceptron, B=100 and 1000); "
          ">= 3x torch (784-100-10, B=100)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"data": source, "threads": numba.get_num_threads(),
                       "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
