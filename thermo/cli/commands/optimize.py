"""``thermo optimize``: train a network (or minimise a test potential) into a run directory.

Writes ``config.toml``, ``observables.csv`` (step, energy, gradient_norm
[, step_size]), ``trajectory.h5`` (θ per record), ``theta.npy`` (the final
point, usable as ``--theta0`` of ``thermo sample``), ``checkpoint.npz`` and
figures; ``--resume`` continues bit for bit (see :mod:`thermo.cli.runner`).
"""
from __future__ import annotations

import os

from thermo.cli.main import EXIT_FAILURE, CommandError

__all__ = ["main"]


def main(flags):
    """Run ``thermo optimize``.

    Parameters
    ----------
    flags : dict
        Options given on the command line (see :mod:`thermo.cli.options`).

    Returns
    -------
    int
        Exit status.
    """
    import numpy as np

    from thermo.cli.common import (build_model, initial_theta, load_theta, make_output_dir,
                                   prepare_output_dir, set_threads)
    from thermo.cli.runner import ChunkOutput, Driver
    from thermo.cli.sampling import _write_config, resolve_with_resume

    context, saved = resolve_with_resume("optimize", flags)
    options = context.options
    output, resume = options["output"], options["resume"]
    prepare_output_dir(output, overwrite=options["overwrite"], resume=resume)
    if resume:
        threads = int(saved.get("run", {}).get("task_threads", 0))
        set_threads(threads)
    else:
        threads = set_threads(options["threads"])
    potential, net, X, y, description = build_model(options, context)
    dimension, dtype = potential.dimension, potential.dtype
    if options["theta0"] is not None:
        theta0 = load_theta(options["theta0"], dimension, dtype)
    else:
        theta0 = initial_theta(options, net, dimension, dtype, options["seed"])
    method = options["optimizer"]
    if method == "bb" and options["momentum"]:
        raise CommandError("--momentum is not defined for the Barzilai-Borwein method")
    if not resume and options["check"] and method != "bb":
        from thermo.cli.checks import check_step_size

        check_step_size(context, potential, theta0, method, options["learning_rate"],
                        name="--learning-rate")
    checkpoint = None
    if resume:
        from thermo.io.checkpoint import CheckpointError, load_checkpoint

        try:
            checkpoint = load_checkpoint(os.path.join(output, "checkpoint.npz"))
        except CheckpointError as error:
            raise CommandError(f"cannot resume: {error}") from None
    import thermo

    common = {"learning_rate": options["learning_rate"], "momentum": options["momentum"],
              "record_every": options["record_every"],
              "record_trajectory": options["trajectory"],
              "tolerance": options["tolerance"] or None}

    def advance(state, n_steps):
        if state is None:
            run = thermo.optimize(potential, method, theta0=theta0, n_steps=n_steps,
                                  seed=options["seed"], **common)
            done = run.n_steps
        else:
            run = thermo.optimize(potential, method, state=state, n_steps=n_steps, **common)
            done = state.step + run.n_steps
        return ChunkOutput(run.state, done, dict(run.observables),
                           np.asarray(run.observables["step"]), run.trajectory,
                           finished=run.converged)

    if not resume:
        make_output_dir(output)
        for name in ("observables.csv", "trajectory.h5", "checkpoint.npz", "theta.npy",
                     "averages.csv"):
            if os.path.exists(os.path.join(output, name)):
                os.unlink(os.path.join(output, name))
        _write_config(output, "optimize", options, threads, dimension, description)
    driver = Driver(context, output, advance, total_steps=options["steps"],
                    record_every=options["record_every"],
                    checkpoint_every=options["checkpoint_every"], columns=None,
                    dimension=dimension, dtype=dtype, trajectory=options["trajectory"])
    try:
        if resume:
            driver.resume(checkpoint)
        else:
            driver.start()
        status = driver.run()
    except Exception as error:
        if type(error).__name__ == "DivergenceError":
            raise CommandError(f"{error}; lower --learning-rate", EXIT_FAILURE) from None
        raise
    if status:
        return status
    from thermo.io.atomic import atomic_write

    with atomic_write(os.path.join(output, "theta.npy")) as handle:
        np.save(handle, driver.state.theta)
    from thermo.cli.analysis import write_averages

    if driver.finished:
        context.note(f"converged after {driver.steps_done} steps")
    energy = potential.energy(driver.state.theta)
    message = f"final U = {energy:.6g}"
    if net is not None:
        message += f", training accuracy {net.accuracy(driver.state.theta, X, y):.4f}"
    context.note(message)
    write_averages(context, os.path.join(output, "observables.csv"),
                   os.path.join(output, "averages.csv"))
    if options["figures"]:
        from thermo.cli.figures import run_figures

        run_figures(context, output)
    return 0
