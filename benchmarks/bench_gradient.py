"""Time the mean-loss gradient of the MNIST single-layer perceptron (784 -> 10,
softmax cross entropy) at batch 100, 1000 and 60000 rows.

Compared, in one process: thermo's ``MLP.loss_and_grad`` (Numba kernel,
including its Python input checks), thermo's ``Posterior`` minibatch gradient
(indices drawn in the kernel, no Python checks of the data per call), a
vectorised NumPy reference (BLAS matrix products), and PyTorch on the CPU
when importable.  All four compute the same numbers (checked first).

Run: ``python benchmarks/bench_gradient.py [--repeats R]``.  Times are the
median of R repeats of a loop long enough to last ~0.2 s.
"""
import argparse
import time

import numpy as np

from thermo.data.mnist import load_mnist
from thermo.networks import MLP
from thermo.potentials.base import _call_energy_gradient
from thermo.potentials.posterior import Posterior


def numpy_loss_and_grad(theta, X, y):
    """Vectorised NumPy softmax cross entropy of a perceptron: mean loss, gradient."""
    n, n_in = X.shape
    W = theta[:n_in * 10].reshape(n_in, 10)
    z = X @ W + theta[n_in * 10:]
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    s = p.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(s[:, 0]) - z[np.arange(n), y])
    p /= s
    p[np.arange(n), y] -= 1
    p /= n
    return loss, np.concatenate([(X.T @ p).ravel(), p.sum(axis=0)])


def _time(fn, repeats):
    fn()
    t = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t, 1e-7)
    loops = max(1, int(0.2 / once))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(loops):
            fn()
        times.append((time.perf_counter() - t) / loops)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    X, y = load_mnist("train")
    net = MLP([784, 10], loss="cross_entropy")
    theta = net.init(0) + np.random.default_rng(1).normal(scale=0.01, size=net.n_params)
    try:
        import torch
        torch.set_num_threads(2)
    except ImportError:
        torch = None
    rows = []
    for batch in (100, 1000, 60000):
        Xb, yb = X[:batch], y[:batch]
        ref_loss, ref_grad = numpy_loss_and_grad(theta, Xb, yb)
        loss, grad = net.loss_and_grad(theta, Xb, yb)
        assert abs(loss - ref_loss) < 1e-10 and np.allclose(grad, ref_grad, atol=1e-12)
        timings = {
            "thermo MLP.loss_and_grad": _time(lambda: net.loss_and_grad(theta, Xb, yb),
                                              args.repeats),
            "numpy (BLAS)": _time(lambda: numpy_loss_and_grad(theta, Xb, yb), args.repeats),
        }
        # Posterior minibatch estimate from the full training set (the sampler's path)
        post = Posterior(net, X, y, batch_size=batch)
        rng = np.random.default_rng(0)
        grad_u = np.empty_like(theta)
        timings["thermo Posterior (kernel call)"] = _time(
            lambda: _call_energy_gradient(post.kernel_data, theta, grad_u, rng), args.repeats)
        if torch is not None:
            tX = torch.from_numpy(Xb)
            ty = torch.from_numpy(yb)
            tW = torch.tensor(theta[:7840].reshape(784, 10), requires_grad=True)
            tb = torch.tensor(theta[7840:], requires_grad=True)

            def torch_step():
                tW.grad = None
                tb.grad = None
                out = torch.nn.functional.cross_entropy(tX @ tW + tb, ty)
                out.backward()
                return out.item(), tW.grad, tb.grad

            tl, tgW, tgb = torch_step()
            assert abs(tl - ref_loss) < 1e-10
            assert np.allclose(np.concatenate([tgW.numpy().ravel(), tgb.numpy()]), ref_grad,
                               atol=1e-12)
            timings["torch CPU"] = _time(torch_step, args.repeats)
        rows.append((batch, timings))
    names = list(rows[0][1])
    print(f"{'batch':>6}  " + "  ".join(f"{n:>30}" for n in names))
    for batch, timings in rows:
        print(f"{batch:>6}  " + "  ".join(f"{timings[n] * 1e6:>27.1f} us" for n in names))
    print("ratios (time / thermo MLP.loss_and_grad):")
    for batch, timings in rows:
        base = timings[names[0]]
        print(f"{batch:>6}  " + "  ".join(f"{timings[n] / base:>30.2f}" for n in names))


if __name__ == "__main__":
    main()
