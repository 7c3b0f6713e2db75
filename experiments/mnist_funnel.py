"""The loss landscape of the MNIST perceptron around its minimum: a funnel.

Pipeline
--------
1. Optimise the single-layer MNIST network (softmax cross entropy plus a
   Gaussian prior ``(λ/2)|θ|²``; or TATi's default tanh output with MSE on
   one-hot labels, which is non-convex) with full-batch Barzilai–Borwein until
   ``|∇U| <= tolerance``, keeping the optimisation trajectory.
2. Sample ``exp(-β U)`` around the minimum θ* with BAOAB (full batch or
   minibatch), discard a burn-in, report the integrated autocorrelation time
   and check the kinetic temperature ``|p|²/d`` against ``1/β``.
3. Covariance of the sampled θ and its leading eigenvectors.
4. Loss landscape on the plane through θ* spanned by eigenvectors 1 and 64 (by
   default) at a wide and a zoomed scale, with the optimisation trajectory
   projected onto it; figures (PNG, PDF) and data (HDF5) in the output folder.

Run ``python experiments/mnist_funnel.py --help``; ``--size small`` is the CI
size (seconds), the default takes a few minutes on two cores.

Exactly flat directions
-----------------------
Softmax regression is invariant under adding the same vector to the weights
of all classes (784 + 1 directions), and weights of pixels that are zero in
every training image do not enter the loss.  With the prior their posterior
variance is exactly ``1/(β λ)`` -- the *largest* possible -- so they would
fill the top of the covariance spectrum with a degenerate block whose
eigenvectors are arbitrary and along which the loss is constant.  By default
the samples are therefore projected onto the complement of these known flat
directions (``--keep-flat-directions`` turns this off); see
:mod:`thermo.analysis.covariance`.

What the default run shows (N = 2000, λ = 1, β = 1, 10⁴ BAOAB steps)
--------------------------------------------------------------------
|∇U(θ*)| = 8.9e-4 after 621 BB steps, train/test accuracy 0.996/0.88,
kinetic temperature 0.9992 ± 0.0011, IAT of U ≈ 68 steps.  The covariance
eigenvalues 1 and 64 (77 and 43) are far above the largest possible
posterior variance 1/(βλ) = 1: with ~270 effective samples in ~5750
identifiable dimensions the top of the sample spectrum is Marchenko–Pastur
noise, so eigenvectors 1 and 64 are the directions the sampler happened to
wander furthest, and the loss along them is a nearly isotropic bowl (a
funnel in log scale: steep walls, flat bottom); the accuracy surface is
rough at the bottom.  Eigenvectors that resolve the curvature need
``n_eff >> d`` (far longer runs) or a smaller network.  The summary prints
this diagnosis whenever ``n_eff < d``.

Pitfalls (printed as warnings when detected)
--------------------------------------------
* A centre that is not converged: the leading eigenvector follows the
  descending direction and the map shows a slope, not a funnel.
* Minibatch sampling: gradient noise heats the directions with large
  gradient variance (kinetic temperature above 1/β).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

SIZES = {
    # n_data, optimisation steps (max), sampling steps, record every, grid points
    "small": dict(n_data=500, opt_steps=400, n_steps=1500, record_every=5, n_grid=15,
                  test_data=500),
    "default": dict(n_data=2000, opt_steps=3000, n_steps=10000, record_every=10, n_grid=41,
                    test_data=2000),
    "large": dict(n_data=10000, opt_steps=6000, n_steps=20000, record_every=20, n_grid=51,
                  test_data=10000),
}


def parse_args(argv=None):
    """Command line of the experiment (see ``--help``)."""
    p = argparse.ArgumentParser(
        description="Loss landscape of the MNIST perceptron along covariance eigenvectors "
                    "(the 'funnel' experiment).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="default",
                   help="problem size preset; 'small' is for CI")
    p.add_argument("--output-dir", default=os.path.join(os.path.dirname(__file__), "output"),
                   help="folder for figures, HDF5 data and summary.json")
    p.add_argument("--network", choices=("convex", "tati"), default="convex",
                   help="convex: softmax cross entropy; tati: TATi's default tanh output + "
                        "mse on one-hot labels (non-convex)")
    p.add_argument("--n-data", type=int, default=None, help="training images (preset)")
    p.add_argument("--prior-precision", type=float, default=1.0, help="λ of the prior")
    p.add_argument("--beta", type=float, default=1.0, help="inverse temperature of U")
    p.add_argument("--tolerance", type=float, default=1e-3, help="optimiser |∇U| target")
    p.add_argument("--opt-steps", type=int, default=None, help="maximum optimiser steps")
    p.add_argument("--sampling", choices=("full", "minibatch"), default="full",
                   help="full-batch or minibatch gradients in BAOAB")
    p.add_argument("--batch-size", type=int, default=100, help="minibatch size B")
    p.add_argument("--n-steps", type=int, default=None, help="BAOAB steps (preset)")
    p.add_argument("--burn-in", type=float, default=0.2,
                   help="fraction of the sampling records discarded")
    p.add_argument("--step-size", type=float, default=None,
                   help="BAOAB step size h; default 1/sqrt(largest Hessian eigenvalue)")
    p.add_argument("--friction", type=float, default=1.0, help="γ")
    p.add_argument("--record-every", type=int, default=None, help="record interval (preset)")
    p.add_argument("--ranks", type=int, nargs=2, default=(1, 64),
                   help="covariance eigenvector numbers spanning the plane (1 = largest)")
    p.add_argument("--units", choices=("theta_norm", "sqrt_eigenvalue"), default="theta_norm",
                   help="axis units: |θ*| (same length on both axes, shows the funnel) or "
                        "sqrt(eigenvalue) of each axis")
    p.add_argument("--wide", type=float, default=None,
                   help="half width of the wide map in axis units (default: 6 σ_1)")
    p.add_argument("--zoom", type=float, default=None,
                   help="half width of the zoomed map in axis units (default: 3 σ_64)")
    p.add_argument("--n-grid", type=int, default=None, help="grid points per axis (preset)")
    p.add_argument("--keep-flat-directions", action="store_true",
                   help="do not project out the exactly flat directions before the covariance")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--figure-copy", default=None,
                   help="also save the landscape PNG here (e.g. experiments/mnist_funnel.png)")
    args = p.parse_args(argv)
    preset = SIZES[args.size]
    for key in ("n_data", "opt_steps", "n_steps", "record_every", "n_grid"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    args.test_data = min(preset["test_data"], 10000)
    if args.n_data < 10:
        p.error("--n-data must be >= 10")
    if not 0 <= args.burn_in < 1:
        p.error("--burn-in must be in [0, 1)")
    if args.prior_precision < 0 or args.beta <= 0:
        p.error("--prior-precision must be >= 0 and --beta > 0")
    if args.ranks[0] == args.ranks[1] or min(args.ranks) < 1:
        p.error("--ranks must be two different eigenvector numbers >= 1")
    return args


def flat_projection(net, X, loss_name):
    """Projector onto the complement of the exactly flat directions of the data loss.

    Parameters
    ----------
    net : thermo.MLP
        Single-layer network ``[n_in, n_out]``.
    X : ndarray, shape (N, n_in)
        Training inputs.
    loss_name : str
        The network's loss; softmax shift invariance only for cross entropy.

    Returns
    -------
    project : callable
        ``project(thetas)`` for an array ``(n, d)`` or ``(d,)``: dead-pixel
        weights set to zero and, for cross entropy, the class mean of every
        pixel's weights (and of the biases) removed.
    n_flat : int
        Number of flat directions removed.
    """
    n_in, n_out = net.sizes
    lay = net.layout[0]
    dead = ~np.any(X != 0, axis=0)
    shift = loss_name == "cross_entropy"
    n_flat = int(dead.sum()) * n_out + (int((~dead).sum()) + 1 if shift else 0)

    def project(thetas):
        t = np.array(thetas, dtype=np.float64, copy=True)
        flat = t.reshape(-1, t.shape[-1])
        W = flat[:, lay.weight_offset:lay.bias_offset].reshape(-1, n_in, n_out)
        b = flat[:, lay.bias_offset:lay.bias_offset + n_out]
        W[:, dead, :] = 0.0
        if shift:
            W -= W.mean(axis=2, keepdims=True)
            b -= b.mean(axis=1, keepdims=True)
        flat[:, lay.weight_offset:lay.bias_offset] = W.reshape(flat.shape[0], -1)
        return t

    return project, n_flat


def run(args):
    """Run the experiment; returns the summary dictionary."""
    import thermo
    from thermo.analysis import (covariance_directions, hessian_directions,
                                 integrated_autocorrelation_time, landscape,
                                 principal_components, project, summarize)
    from thermo.data import load_mnist
    from thermo.plotting import plot_landscape_panels, save_figure
    from thermo.potentials import Posterior
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    os.makedirs(args.output_dir, exist_ok=True)
    stages = tqdm(total=6, desc="mnist funnel", unit="stage", disable=args.no_progress)
    summary = {"settings": {k: v for k, v in vars(args).items()}}
    summary["settings"]["ranks"] = list(args.ranks)

    # -- data and model
    stages.set_postfix_str("data")
    X, y = load_mnist("train", subset=args.n_data, seed=args.seed)
    X_test, y_test = load_mnist("test", subset=args.test_data, seed=args.seed)
    if args.network == "convex":
        net = thermo.MLP([784, 10], output_activation="linear", loss="cross_entropy")
        theta0 = np.zeros(net.n_params)
    else:
        net = thermo.MLP([784, 10], output_activation="tanh", loss="mse")
        theta0 = net.init(seed=args.seed, scheme="tati")
    posterior = Posterior(net, X, y, prior_precision=args.prior_precision)
    stages.update()

    # -- optimisation (full batch BB), trajectory kept
    stages.set_postfix_str("optimise")
    t0 = time.perf_counter()
    opt_record = max(1, args.opt_steps // 200)
    opt = thermo.optimize(posterior, "bb", theta0=theta0, n_steps=args.opt_steps,
                          learning_rate=1e-2 / args.n_data, tolerance=args.tolerance,
                          record_every=opt_record, record_trajectory=True)
    centre = np.asarray(opt.theta, dtype=np.float64)
    u_star, grad_star = posterior.energy_and_gradient(centre)
    grad_norm = float(np.linalg.norm(grad_star))
    summary["optimisation"] = {
        "steps": int(opt.n_steps), "converged": bool(opt.converged), "message": opt.message,
        "gradient_norm": grad_norm, "energy": float(u_star),
        "train_accuracy": float(net.accuracy(centre, X, y)),
        "test_accuracy": float(net.accuracy(centre, X_test, y_test)),
        "mean_loss": float(net.loss(centre, X, y)), "theta_norm": float(np.linalg.norm(centre)),
        "seconds": time.perf_counter() - t0}
    if not opt.converged:
        warnings.warn(f"optimiser did not reach |∇U| <= {args.tolerance} ({grad_norm:.3g} after "
                      f"{opt.n_steps} steps): the leading eigenvectors may follow the descent "
                      f"direction (a slope, not a funnel); raise --opt-steps", RuntimeWarning)
    stages.update()

    # -- sampling with BAOAB around θ*
    stages.set_postfix_str("sample")
    t0 = time.perf_counter()
    stiff = hessian_directions(posterior, centre, ranks=(1, 2), tol=1e-2, seed=args.seed)
    h_max = float(stiff.eigenvalues[0])
    step_size = args.step_size or 1.0 / np.sqrt(h_max)
    sampler_posterior = posterior
    if args.sampling == "minibatch":
        sampler_posterior = Posterior(net, X, y, prior_precision=args.prior_precision,
                                      batch_size=min(args.batch_size, args.n_data))
    sample_run = thermo.sample(
        sampler_posterior, "baoab", theta0=centre, n_steps=args.n_steps, step_size=step_size,
        beta=args.beta, friction=args.friction, seed=args.seed,
        record_every=args.record_every, record_trajectory=True,
        progress=not args.no_progress)
    n_records = sample_run.trajectory.shape[0]
    start = int(round(args.burn_in * n_records))
    samples = sample_run.trajectory[start:].astype(np.float64)
    obs = {k: np.asarray(v)[start:] for k, v in sample_run.observables.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kinetic = summarize(obs["kinetic_temperature"], on_short="ignore")
        energy_iat = integrated_autocorrelation_time(obs["energy"], on_short="ignore",
                                                     full_output=True)
    summary["sampling"] = {
        "method": "baoab", "minibatch": args.sampling == "minibatch",
        "batch_size": sampler_posterior.batch_size, "step_size": float(step_size),
        "largest_hessian_eigenvalue": h_max, "friction": args.friction, "beta": args.beta,
        "n_steps": args.n_steps, "record_every": args.record_every,
        "records_used": int(samples.shape[0]), "burn_in_records": start,
        "kinetic_temperature": kinetic.mean, "kinetic_temperature_error": kinetic.mcse_iat,
        "target_temperature": 1.0 / args.beta,
        "energy_iat_records": float(energy_iat.tau),
        "energy_iat_steps": float(energy_iat.tau * args.record_every),
        "energy_iat_reliable": bool(energy_iat.reliable),
        "seconds": time.perf_counter() - t0}
    if abs(kinetic.mean * args.beta - 1) > max(0.02, 4 * kinetic.mcse_iat * args.beta):
        warnings.warn(f"kinetic temperature {kinetic.mean:.4g} differs from 1/β = "
                      f"{1 / args.beta:.4g}" + (" (minibatch noise heats the sampler)"
                                               if args.sampling == "minibatch" else ""),
                      RuntimeWarning)
    stages.update()

    # -- covariance and eigenvectors
    stages.set_postfix_str("covariance")
    t0 = time.perf_counter()
    if args.keep_flat_directions:
        analysed, n_flat = samples, 0
    else:
        projector, n_flat = flat_projection(net, X, net.loss_name)
        analysed = projector(samples)
    k = max(args.ranks)
    if k > analysed.shape[0] - 1:
        raise SystemExit(f"eigenvector {k} needs more than {k} samples, have "
                         f"{analysed.shape[0]}; raise --n-steps or lower --record-every")
    pcs = principal_components(analysed, k=k)
    coords = project(analysed, pcs.vectors[:, [args.ranks[0] - 1]], analysed.mean(axis=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v1_iat = integrated_autocorrelation_time(coords[:, 0], on_short="ignore",
                                                 full_output=True)
    summary["covariance"] = {
        "flat_directions_removed": n_flat,
        "eigenvalues": pcs.values.tolist(),
        "eigenvalue_rank1": float(pcs.values[args.ranks[0] - 1]),
        "eigenvalue_rank2": float(pcs.values[args.ranks[1] - 1]),
        "prior_variance": (1.0 / (args.beta * args.prior_precision)
                           if args.prior_precision > 0 else None),
        "iat_along_v1_steps": float(v1_iat.tau * args.record_every),
        "effective_samples_v1": float(analysed.shape[0] / max(v1_iat.tau, 1.0)),
        "dimension": int(analysed.shape[1] - n_flat),
        "iat_along_v1_reliable": bool(v1_iat.reliable),
        "seconds": time.perf_counter() - t0}
    stages.update()

    # -- landscapes: wide and zoomed, optimisation trajectory overlaid
    stages.set_postfix_str("landscape")
    t0 = time.perf_counter()
    directions = covariance_directions(pcs, ranks=args.ranks, units=args.units, centre=centre)
    sigma = np.sqrt(pcs.values[np.array(args.ranks) - 1])
    to_units = directions.scales if args.units == "theta_norm" else np.ones(2)
    wide = args.wide if args.wide is not None else float(6 * sigma[0] / to_units[0])
    zoom = args.zoom if args.zoom is not None else float(3 * sigma[1] / to_units[1])
    trajectory = {"optimisation": opt.trajectory.astype(np.float64)}
    maps = {}
    for name, extent in (("wide", wide), ("zoom", zoom)):
        maps[name] = landscape(posterior, centre, directions, extent=extent,
                               n_grid=args.n_grid, trajectories=trajectory)
    h5_path = os.path.join(args.output_dir, "mnist_funnel.h5")
    if os.path.exists(h5_path):
        os.remove(h5_path)
    for name, land in maps.items():
        land.save(h5_path, group=name)
    _save_runs(h5_path, opt, sample_run, pcs, summary)
    centre_loss = float(maps["wide"].train_loss[args.n_grid // 2, args.n_grid // 2])
    summary["landscape"] = {
        "units": args.units, "wide_extent": wide, "zoom_extent": zoom,
        "loss_at_centre": centre_loss,
        "wide_loss_range": [float(maps["wide"].train_loss.min()),
                            float(maps["wide"].train_loss.max())],
        "zoom_loss_range": [float(maps["zoom"].train_loss.min()),
                            float(maps["zoom"].train_loss.max())],
        "seconds": time.perf_counter() - t0}
    stages.update()

    # -- figures
    stages.set_postfix_str("figures")
    unit = "|θ*|" if args.units == "theta_norm" else "√λ"
    titles = [f"wide: ±{wide:.3g} {unit}", f"zoom: ±{zoom:.3g} {unit}"]
    net_name = ("softmax + CE" if args.network == "convex" else "tanh + MSE (TATi)")
    fig = plot_landscape_panels(
        [maps["wide"], maps["zoom"]], kinds=("contourf", "surface"), log=[True, False],
        titles=titles, panel_size=(5.2, 4.3),
        suptitle=(f"MNIST perceptron ({net_name}, N = {args.n_data}, λ = "
                  f"{args.prior_precision:g}): mean training loss along covariance "
                  f"eigenvectors {args.ranks[0]} and {args.ranks[1]}"))
    files = save_figure(fig, os.path.join(args.output_dir, "mnist_funnel_landscape"), dpi=110)
    fig_acc = plot_landscape_panels([maps["wide"], maps["zoom"]], quantity="train_acc",
                                    kinds=("contourf",), titles=titles)
    files += save_figure(fig_acc, os.path.join(args.output_dir, "mnist_funnel_accuracy"),
                         dpi=110)
    fig_obs = _observable_figure(sample_run, start, args)
    files += save_figure(fig_obs, os.path.join(args.output_dir, "mnist_funnel_sampling"),
                         dpi=110)
    if args.figure_copy:
        fig.savefig(args.figure_copy, dpi=80, bbox_inches="tight")
        files.append(args.figure_copy)
    summary["files"] = files + [h5_path]
    stages.update()
    stages.close()
    summary["seconds"] = time.perf_counter() - t_start
    with open(os.path.join(args.output_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=float)
    return summary


def _save_runs(path, opt, sample_run, pcs, summary):
    import h5py

    with h5py.File(path, "a") as f:
        g = f.require_group("optimisation")
        for key, value in opt.observables.items():
            g.create_dataset(key, data=np.asarray(value))
        g.create_dataset("trajectory", data=opt.trajectory)
        g = f.require_group("sampling")
        for key, value in sample_run.observables.items():
            g.create_dataset(key, data=np.asarray(value))
        g = f.require_group("covariance")
        g.create_dataset("eigenvalues", data=pcs.values)
        g.create_dataset("eigenvectors", data=pcs.vectors)
        f.attrs["summary"] = json.dumps(summary, default=float)


def _observable_figure(sample_run, start, args):
    from matplotlib.figure import Figure

    from thermo.plotting import plot_autocorrelation

    obs = sample_run.observables
    steps = np.asarray(obs["step"])
    fig = Figure(figsize=(12, 3.6))
    ax = fig.add_subplot(1, 3, 1)
    ax.plot(steps, obs["energy"], linewidth=0.6)
    ax.axvline(steps[start] if start < steps.size else steps[-1], color="r", linestyle="--",
               label="end of burn-in")
    ax.set_xlabel("step")
    ax.set_ylabel("U")
    ax.legend()
    ax = fig.add_subplot(1, 3, 2)
    ax.plot(steps, obs["kinetic_temperature"], linewidth=0.6)
    ax.axhline(1 / args.beta, color="k", linestyle="--", label="1/β")
    ax.set_xlabel("step")
    ax.set_ylabel("kinetic temperature |p|²/d")
    ax.legend()
    plot_autocorrelation(np.asarray(obs["energy"])[start:], ax=fig.add_subplot(1, 3, 3),
                         label="U (per record)")
    fig.tight_layout()
    return fig


def format_summary(summary):
    """Human-readable summary lines."""
    o, s, c, land = (summary["optimisation"], summary["sampling"], summary["covariance"],
                     summary["landscape"])
    r1, r2 = summary["settings"]["ranks"]
    lines = [
        f"optimisation : {o['steps']} BB steps, |∇U(θ*)| = {o['gradient_norm']:.3g} "
        f"({'converged' if o['converged'] else 'NOT converged'}), U(θ*) = {o['energy']:.5g}, "
        f"mean loss {o['mean_loss']:.4g}",
        f"accuracy     : train {o['train_accuracy']:.4f}, test {o['test_accuracy']:.4f}",
        f"sampling     : BAOAB h = {s['step_size']:.3g} (H_max = "
        f"{s['largest_hessian_eigenvalue']:.4g}), γ = {s['friction']}, β = {s['beta']}, "
        f"{s['n_steps']} steps{' minibatch B=%d' % s['batch_size'] if s['minibatch'] else ''}",
        f"IAT          : energy {s['energy_iat_steps']:.4g} steps"
        f"{'' if s['energy_iat_reliable'] else ' (unreliable: run too short)'}; along "
        f"v{r1} {c['iat_along_v1_steps']:.4g} steps"
        f"{'' if c['iat_along_v1_reliable'] else ' (unreliable: run too short)'}",
        f"kinetic temp : {s['kinetic_temperature']:.5f} ± {s['kinetic_temperature_error']:.1g} "
        f"(target {s['target_temperature']:.5g})",
        f"covariance   : λ_{r1} = {c['eigenvalue_rank1']:.4g}, λ_{r2} = "
        f"{c['eigenvalue_rank2']:.4g} (ratio {c['eigenvalue_rank1'] / c['eigenvalue_rank2']:.3g};"
        f" prior variance 1/(βλ) = {c['prior_variance']}); {c['flat_directions_removed']} "
        f"flat directions removed",
        f"               effective samples along v{r1}: {c['effective_samples_v1']:.0f} for "
        f"{c['dimension']} identifiable dimensions"
        + (" -> sample covariance noise-dominated (Marchenko–Pastur): eigenvectors are the "
           "directions the sampler wandered furthest, not curvature eigenvectors"
           if c['effective_samples_v1'] < c['dimension'] else ""),
        f"landscape    : loss at centre {land['loss_at_centre']:.4g}; "
        f"wide ±{land['wide_extent']:.3g} "
        f"range {land['wide_loss_range'][0]:.3g}–{land['wide_loss_range'][1]:.3g}; zoom "
        f"±{land['zoom_extent']:.3g} range {land['zoom_loss_range'][0]:.3g}–"
        f"{land['zoom_loss_range'][1]:.3g} (units {land['units']})",
        f"total time   : {summary['seconds']:.1f} s",
    ]
    return "\n".join(lines)


def main(argv=None):
    """Entry point: run, print the summary, return it."""
    args = parse_args(argv)
    summary = run(args)
    print(format_summary(summary))
    print("files:", ", ".join(summary["files"]))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
