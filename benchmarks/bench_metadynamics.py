"""Overhead of metadynamics over unbiased BAOAB on the MNIST perceptron.

Setup: perceptron 784 → 10 (d = 7850 parameters), Posterior on a stratified
MNIST subset with minibatches, BAOAB.  The bias is well-tempered
metadynamics on a **2-D** :class:`thermo.cv.DiffusionMapCV` with 500
landmarks, fitted on an unbiased trajectory, in two designs:

* ``pca``: the Nyström kernel works on the coordinates along the top-k
  covariance eigenvectors (k = 10, a linear feature map y = A(θ − c)); per
  step the CV costs the projection (k·d), the kernel sums (n·k·m) and the
  Jacobian back-projection (m·k·d): ≈ 0.3 Mflop;
* ``full``: the kernel works on θ itself (n·d for the distances plus n·d·m
  for the gradient: ≈ 12 Mflop per step);
* ``pca-jacobian`` (optional, for comparison): the ``pca`` CV wrapped in a CV
  registered with ``value_gradient`` only, so that the force goes through the
  full m × d Jacobian (the path used before the vector–Jacobian product);
* ``pca-legacy`` (optional, for comparison): the ``pca`` CV evaluated by a
  copy of the former kernel (value and Jacobian with one serial pass per
  landmark, per-row projection, Jacobian back-projection), i.e. the cost
  before the vector–Jacobian product, in the same process.

Reported: seconds per step, wall clock and process CPU time (best of
``--repeats`` timed runs each, the variants interleaved, after a warm-up round
that compiles everything) and the overhead (t_bias − t_plain)/t_plain.  The
cost of one gradient of U is 2·B·d·2 flop for a batch of B examples, so the
relative overhead falls with B.

``--cv-force`` also times the bias force alone for each design: µs per call
of the kernel's ``bias_energy_gradient`` (what the sampler calls) on points of
the trajectory, in a tight loop, best of 7.

Usage: ``python benchmarks/bench_metadynamics.py [--steps 2000] [--batch 100 1000]
[--designs pca] [--cv-force]``.
"""
from __future__ import annotations

import argparse
import json
import time

from typing import NamedTuple

import numpy as np
from numba import njit

from thermo.cv import CV, cv_value_gradient, register_cv


class JacobianOnlyData(NamedTuple):
    """A CV's data wrapped so that its bias force uses the full Jacobian."""
    inner: tuple


def jacobian_only_value_gradient(data, theta, values_out, jacobian_out):
    cv_value_gradient(data.inner, theta, values_out, jacobian_out)


register_cv(JacobianOnlyData, jacobian_only_value_gradient)


class LegacyData(NamedTuple):
    """A diffusion-map CV's data for :func:`legacy_value_gradient`."""
    inner: tuple
    work_grad: np.ndarray


@njit(cache=True, fastmath={"reassoc", "contract"})
def _legacy_centred_dot(row, theta, centre):
    total = 0.0
    for l in range(theta.size):
        total += row[l] * (theta[l] - centre[l])
    return total


def legacy_value_gradient(data, theta, values_out, jacobian_out):
    """The diffusion-map value and Jacobian as computed before the VJP
    protocol (copy of the former kernel, for timings only)."""
    dm = data.inner
    n, k = dm.landmarks.shape
    m = dm.coords.shape[1]
    y = dm.work_y
    if dm.use_features:
        for i in range(k):
            y[i] = _legacy_centred_dot(dm.projection[i], theta, dm.centre)
    else:
        for i in range(k):
            y[i] = theta[i]
    p = dm.work_p
    largest = -np.inf
    for j in range(n):
        r2 = 0.0
        for i in range(k):
            diff = y[i] - dm.landmarks[j, i]
            r2 += diff * diff
        a = dm.log_weight[j] - r2 * dm.inv_four_epsilon
        p[j] = a
        if a > largest:
            largest = a
    z = 0.0
    for j in range(n):
        e = np.exp(p[j] - largest)
        p[j] = e
        z += e
    xbar = dm.work_xbar
    xbar[:] = 0.0
    for l in range(m):
        values_out[l] = 0.0
    inv_z = 1.0 / z
    for j in range(n):
        pj = p[j] * inv_z
        p[j] = pj
        for i in range(k):
            xbar[i] += pj * dm.landmarks[j, i]
        for l in range(m):
            values_out[l] += pj * dm.coords[j, l]
    grad = data.work_grad
    grad[:, :] = 0.0
    for j in range(n):
        pj = p[j]
        for l in range(m):
            w = pj * dm.coords[j, l]
            for i in range(k):
                grad[l, i] += w * (dm.landmarks[j, i] - xbar[i])
    for l in range(m):
        factor = dm.scale[l] * dm.inv_mu[l]
        values_out[l] = dm.shift[l] + factor * values_out[l]
        g_factor = 2.0 * dm.inv_four_epsilon * factor
        for i in range(k):
            grad[l, i] *= g_factor
    if dm.use_features:
        d = theta.size
        for l in range(m):
            for c in range(d):
                jacobian_out[l, c] = 0.0
            for i in range(k):
                g = grad[l, i]
                for c in range(d):
                    jacobian_out[l, c] += g * dm.projection[i, c]
    else:
        for l in range(m):
            for i in range(k):
                jacobian_out[l, i] = grad[l, i]


register_cv(LegacyData, legacy_value_gradient)


def build(n_data, batch_size, seed=0):
    from thermo.data.mnist import load_mnist
    from thermo.networks import MLP
    from thermo.potentials import Posterior

    X, y = load_mnist("train", subset=n_data, seed=seed)
    net = MLP([784, 10], loss="cross_entropy")
    return net, Posterior(net, X, y, prior_precision=1.0, batch_size=batch_size)


def timed(potential, theta, n_steps, biases, repeats, step_size):
    """Best wall-clock and best process-CPU seconds per step for each bias (None:
    unbiased), runs interleaved so that a shared, noisy machine loads every
    variant alike; the first round compiles and is not timed.  Process CPU time
    (all threads of this process) is less sensitive to other processes than
    wall time on an oversubscribed machine."""
    import thermo

    best = [np.inf] * len(biases)
    best_cpu = [np.inf] * len(biases)
    for r in range(repeats + 1):
        for i, bias in enumerate(biases):
            started = time.perf_counter()
            cpu = time.process_time()
            thermo.sample(potential, "baoab", theta0=theta, n_steps=n_steps,
                          step_size=step_size, beta=1.0, friction=10.0, seed=r,
                          record_every=n_steps, bias=bias)
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu
            if r > 0:
                best[i] = min(best[i], elapsed / n_steps)
                best_cpu[i] = min(best_cpu[i], cpu / n_steps)
    return best, best_cpu


def _force_kernel():
    from numba import njit

    from thermo.bias.base import bias_energy_gradient

    @njit
    def force(data, thetas, gradient, n_calls):
        total = 0.0
        for i in range(n_calls):
            total += bias_energy_gradient(data, thetas[i % thetas.shape[0]], gradient)
        return total

    return force


def cv_force_cost(bias, samples, n_calls=20_000, repeats=7):
    """µs per bias-force call (the sampler's ``bias_energy_gradient``) and the
    gradient accumulated over one pass through the points (for comparing
    designs).  Hills are first deposited along ``samples`` (∂V/∂s ≠ 0)."""
    import time

    force = _force_kernel()
    for step, theta in enumerate(samples[::5], start=1):
        bias.update(theta, step * bias.pace)
    thetas = np.ascontiguousarray(samples[::7] + 1e-4)
    data = bias.kernel_data
    gradient = np.zeros(samples.shape[1])
    force(data, thetas, gradient, len(thetas))
    check = gradient.copy()
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        force(data, thetas, gradient, n_calls)
        best = min(best, (time.perf_counter() - started) / n_calls)
    return 1e6 * best, check


def main(argv=None):
    import thermo
    from thermo.bias import Metadynamics
    from thermo.cv import DiffusionMapCV

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--n-data", type=int, default=10_000)
    parser.add_argument("--landmarks", type=int, default=500)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--designs", nargs="+", default=["pca", "full"])
    parser.add_argument("--cv-force", action="store_true",
                        help="also time the bias force alone (VJP vs Jacobian path)")
    parser.add_argument("--no-sampling", action="store_true",
                        help="skip the sampler timings (with --cv-force)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)

    step_size = 1e-3
    results = []
    for batch in args.batch:
        net, potential = build(args.n_data, batch)
        theta = net.init(seed=0)
        # samples for the diffusion map: an unbiased trajectory
        run = thermo.sample(potential, "baoab", theta0=theta, n_steps=20 * args.landmarks,
                            step_size=step_size, beta=1.0, friction=10.0, seed=1,
                            record_every=20, record_trajectory=True)
        samples = run.trajectory
        theta = run.state.theta
        biases = [None]
        for design in args.designs:
            pca = design.startswith("pca")
            options = dict(features="pca", n_features=args.features) if pca else {}
            cv = DiffusionMapCV.fit(samples, n_coords=2, epsilon="bgh",
                                    n_landmarks=args.landmarks, **options)
            if design.endswith("-jacobian"):
                cv = CV(JacobianOnlyData(cv.kernel_data), cv.dimension, cv.n_coords)
            elif design.endswith("-legacy"):
                cv = CV(LegacyData(cv.kernel_data, np.empty((2, cv.kernel_data.work_y.size))),
                        cv.dimension, cv.n_coords)
            values = cv(samples)
            lo, hi = values.min(axis=0), values.max(axis=0)
            width = hi - lo
            sigma = 0.05 * width
            # round(): 3 width/(σ/4) = 240 up to rounding, int() could give 239
            grid = [(lo[k] - width[k], hi[k] + width[k],
                     int(round(3 * width[k] / (sigma[k] / 4))) + 1) for k in range(2)]
            # pace 10 so that deposition (and c(t) over the grid) is part of the cost
            biases.append(Metadynamics(cv, height=0.5, sigma=sigma, pace=10, temperature=1.0,
                                       bias_factor=10.0, grid=grid,
                                       max_hills=(args.repeats + 1) * args.steps // 10 + 10))
        row = {"batch": batch, "d": net.n_params}
        if not args.no_sampling:
            times, cpu = timed(potential, theta, args.steps, biases, args.repeats, step_size)
            row.update(plain_s_per_step=times[0], plain_cpu_s_per_step=cpu[0])
            for design, biased, biased_cpu in zip(args.designs, times[1:], cpu[1:]):
                row[f"{design}_s_per_step"] = biased
                row[f"{design}_overhead_percent"] = 100.0 * (biased - times[0]) / times[0]
                row[f"{design}_cpu_s_per_step"] = biased_cpu
                row[f"{design}_cpu_overhead_percent"] = 100.0 * (biased_cpu - cpu[0]) / cpu[0]
        if args.cv_force:
            reference = None
            for design, bias in zip(args.designs, biases[1:]):
                # the same hills in every bias: same forces expected
                bias.reset()
                n_calls = 20_000 if design.startswith("pca") else 200
                force_us, check = cv_force_cost(bias, samples, n_calls=n_calls)
                row[f"{design}_force_us"] = force_us
                if design.startswith("pca"):
                    if reference is None:
                        reference = check
                    row[f"{design}_force_relative_difference"] = float(
                        np.abs(check - reference).max() / np.abs(reference).max())
        results.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return results


if __name__ == "__main__":
    main()
