"""``thermo sample`` and ``thermo metad``: walkers, run directory, checkpoints, resume.

Run directory
-------------
================== ===========================================================
file               content
================== ===========================================================
``config.toml``    resolved options, ``[run]`` (threads per task, dimension,
                   data) and ``[provenance]`` (versions, seed, command line)
``observables.csv`` one row per record (and walker); columns in
                   :mod:`thermo.io.observables`
``trajectory.h5``  θ per record, streamed (:mod:`thermo.io.trajectory`)
``checkpoint.npz`` sampler states, shared hills, record counts, file sizes
``HILLS``          metadynamics hills, PLUMED layout (metad)
``cv.npz``         CV directions and centre (metad)
``theta.npy``      final θ ((d,) or (W, d) for W walkers)
``averages.csv``   mean, standard error and IAT of every observable
``free_energy.csv`` F along the CV(s) from the bias (metad)
``figures/``       PNG figures
================== ===========================================================

The walkers are advanced by :class:`thermo.walkers.rounds.WalkerEnsemble`
in rounds (see there); a single walker is one plain ``thermo.sample`` chain
(chunked, which never changes the numbers).
"""
from __future__ import annotations

import os

from thermo.cli.common import (Context, build_model, initial_theta, load_theta,
                               make_output_dir, prepare_output_dir, provenance, set_threads)
from thermo.cli.main import EXIT_FAILURE, CommandError

__all__ = ["main_sampling", "resolve_with_resume", "model_arguments"]

CONTROL_OPTIONS = ("config", "quiet", "resume", "overwrite", "output")
RUN_FORMAT = "thermo run 1"


def resolve_with_resume(command, flags):
    """Resolve options; for ``--resume`` start from the run's saved options.

    Parameters
    ----------
    command : str
    flags : dict

    Returns
    -------
    context : Context
    saved : dict or None
        The run's saved configuration when resuming.
    """
    from thermo.cli.config import compare_for_resume, resolve
    from thermo.cli.options import OptionError
    from thermo.io.config import ConfigError, load_config

    try:
        options = resolve(command, flags)
        saved = None
        if options.get("resume"):
            path = os.path.join(options["output"], "config.toml")
            if not os.path.isfile(path):
                raise CommandError(f"cannot resume: {options['output']} has no config.toml")
            saved = load_config(path)
            if saved.get("command") != command or "options" not in saved:
                raise CommandError(f"cannot resume: {options['output']} holds a "
                                   f"'{saved.get('command')}' run, not '{command}'")
            options = resolve(command, flags, base=saved["options"])
            compare_for_resume(command, saved["options"], options)
    except (OptionError, ConfigError) as error:
        raise CommandError(str(error)) from None
    return Context(command, options), saved


def model_arguments(options):
    """The options that define the potential (sent to walker processes).

    Parameters
    ----------
    options : dict

    Returns
    -------
    dict
    """
    keys = ("potential", "barrier", "dimension", "data", "n_points", "noise", "data_seed", "hidden", "activation",
            "output_activation", "loss", "prior_precision", "batch_size", "dtype",
            "input_format")
    return {k: options[k] for k in keys}


def build_potential(arguments):
    """Walker-side factory: the potential from :func:`model_arguments`.

    Parameters
    ----------
    arguments : dict

    Returns
    -------
    thermo.potentials.Potential
    """
    return build_model(arguments)[0]


def _key(arguments):
    import hashlib
    import json

    text = json.dumps(arguments, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sampler_kwargs(options):
    kwargs = {"step_size": options["step_size"], "beta": options["beta"],
              "friction": options["friction"], "record_every": options["record_every"],
              "record_trajectory": options["trajectory"]}
    if options["sampler"] == "hmc":
        kwargs["n_leapfrog"] = options["hmc_steps"]
    if options["accuracy"]:
        kwargs["record_accuracy"] = True
    if options.get("device", "cpu") != "cpu":
        kwargs["device"] = options["device"]
    elif options.get("auto_threads"):     # not with EQN: rejected before the run
        kwargs["threads"] = "auto"
    return kwargs


def _check_device(options, potential=None):
    """CommandError unless ``--device cuda`` can run this request (before any output).

    Without ``potential``: the option-level checks and the GPU's presence;
    with it: whether the network posterior suits the GPU kernels.
    """
    if options.get("device", "cpu") == "cpu":
        return
    if potential is not None:
        from thermo.potentials.posterior import Posterior
        from thermo.samplers.gpu import GPUProblem

        if not isinstance(potential, Posterior):
            raise CommandError(f"--device cuda needs a network posterior, got a "
                               f"{type(potential).__name__}")
        try:
            GPUProblem.from_posterior(potential)
        except (TypeError, ValueError) as error:
            raise CommandError(f"--device cuda: {error}") from None
        return
    problems = []
    if options["potential"] != "network":
        problems.append(f"--potential network (not {options['potential']})")
    if options["sampler"] not in ("sgld", "baoab"):
        problems.append(f"--sampler sgld or baoab (not {options['sampler']})")
    if options["accuracy"]:
        problems.append("no --accuracy")
    if options.get("eqn_strength", 0) > 0:
        problems.append("no --eqn-strength")
    if options.get("auto_threads"):
        problems.append("no --auto-threads (the GPU runs no Numba threads)")
    if options["executor"] != "inprocess":
        problems.append(f"--executor inprocess (not {options['executor']})")
    if problems:
        raise CommandError("--device cuda needs " + ", ".join(problems))
    from thermo.samplers.gpu import require_device

    try:
        require_device()
    except RuntimeError as error:
        raise CommandError(str(error)) from None


def _check_eqn(command, options):
    """CommandError unless an EQN request (``--eqn-strength`` > 0) can run
    (before any output)."""
    if command != "sample" or options["eqn_strength"] <= 0:
        return
    if options["walkers"] < 2:
        raise CommandError("--eqn-strength needs --walkers >= 2 (the preconditioner is "
                           "the covariance of the other walkers)")
    if options["sampler"] not in ("baoab", "gla2", "sgld"):
        raise CommandError(f"--eqn-strength works with --sampler baoab, gla2 or sgld, "
                           f"not {options['sampler']}")
    if options["executor"] != "inprocess":
        raise CommandError("EQN couples the walkers at every step and runs in one "
                           "process; use --executor inprocess")
    if options.get("auto_threads"):
        raise CommandError("--auto-threads does not apply to EQN runs (one kernel call "
                           "moves all walkers); set --threads instead")


def _starts(options, net, dimension, dtype):
    from thermo.walkers.rounds import walker_seed

    walkers = options["walkers"]
    if options["theta0"] is not None:
        theta0 = load_theta(options["theta0"], dimension, dtype)
        thetas = [theta0] * walkers
    else:
        thetas = [initial_theta(options, net, dimension, dtype, options["seed"] + w)
                  for w in range(walkers)]
    return [("fresh", thetas[w], walker_seed(options["seed"], w, walkers))
            for w in range(walkers)]


# --- metadynamics set-up

def _cv_directions(options, dimension, pilot):
    import numpy as np

    spec = options["cv"]
    if spec.startswith("coordinates:"):
        try:
            indices = [int(i) for i in spec.split(":", 1)[1].split(",")]
        except ValueError:
            raise CommandError(f"--cv {spec!r}: expected 'coordinates:i' or "
                               "'coordinates:i,j'") from None
        if not 1 <= len(indices) <= 2:
            raise CommandError("--cv: metadynamics takes 1 or 2 CVs")
        for i in indices:
            if not 0 <= i < dimension:
                raise CommandError(f"--cv: coordinate {i} out of range 0..{dimension - 1}")
        directions = np.zeros((len(indices), dimension))
        for row, i in enumerate(indices):
            directions[row, i] = 1.0
        return directions, np.zeros(dimension), [f"theta{i}" for i in indices]
    if spec.startswith("pca:"):
        try:
            k = int(spec.split(":", 1)[1])
        except ValueError:
            raise CommandError(f"--cv {spec!r}: expected 'pca:1' or 'pca:2'") from None
        if k not in (1, 2):
            raise CommandError("--cv: metadynamics takes 1 or 2 CVs")
        from thermo.analysis.covariance import principal_components

        trajectory = pilot().astype(np.float64)
        pairs = principal_components(trajectory, k=k)
        return (np.ascontiguousarray(pairs.vectors.T), trajectory.mean(axis=0),
                [f"pc{i + 1}" for i in range(k)])
    if spec.endswith(".npy"):
        if not os.path.isfile(spec):
            raise CommandError(f"--cv: file {spec} does not exist")
        try:
            directions = np.load(spec, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise CommandError(f"--cv: cannot read {spec}: {error}") from None
        directions = np.atleast_2d(np.asarray(directions, dtype=np.float64))
        if directions.ndim != 2 or directions.shape[1] != dimension \
                or directions.shape[0] not in (1, 2):
            raise CommandError(f"--cv: {spec} must hold 1 or 2 rows of {dimension} values, "
                               f"got shape {directions.shape}")
        if not np.all(np.isfinite(directions)):
            raise CommandError(f"--cv: {spec} contains NaN or inf")
        return directions, np.zeros(dimension), [f"s{i + 1}" for i in range(len(directions))]
    raise CommandError(f"--cv {spec!r}: expected 'coordinates:i[,j]', 'pca:k' or a .npy file")


def _metad_parameters(options, directions, centre, names, pilot_values):
    import math

    import numpy as np

    m = directions.shape[0]
    sigma = float(options["hill_width"])
    bounds = list(options["cv_range"])
    if bounds:
        if len(bounds) == 2:
            bounds = bounds * m
        if len(bounds) != 2 * m:
            raise CommandError(f"--cv-range needs 2 or {2 * m} numbers, got {len(bounds)}")
        pairs = [(bounds[2 * k], bounds[2 * k + 1]) for k in range(m)]
    else:
        values = pilot_values()
        pairs = []
        for k in range(m):
            low, high = float(values[:, k].min()), float(values[:, k].max())
            margin = max(high - low, 10.0 * sigma)
            pairs.append((low - margin, high + margin))
    for k, (low, high) in enumerate(pairs):
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            raise CommandError(f"--cv-range: need lower < upper, got {low}, {high}")
        if high - low < 2 * sigma:
            raise CommandError(f"--cv-range [{low}, {high}] is narrower than two hill widths")
    grid = []
    for low, high in pairs:
        lo, hi = low - 6.0 * sigma, high + 6.0 * sigma
        n = options["grid_bins"] or int(math.ceil((hi - lo) / (sigma / 4.0))) + 1
        if m == 2 and n * n > 4_000_000:
            raise CommandError(f"the bias grid would have {n}x{n} points; widen --hill-width "
                               "or narrow --cv-range")
        grid.append((lo, hi, max(n, 4)))
    bias_factor = options["bias_factor"]
    return {"directions": np.ascontiguousarray(directions, dtype=np.float64),
            "centre": np.ascontiguousarray(centre, dtype=np.float64), "names": list(names),
            "height": options["hill_height"], "sigma": [sigma] * m, "pace": options["pace"],
            "temperature": 1.0 / options["beta"],
            "bias_factor": None if math.isinf(bias_factor) else bias_factor,
            "grid": grid, "walls": pairs, "wall_kappa": options["wall_kappa"]}


def _hill_lines(table, metad, header):
    """Hills in PLUMED's HILLS layout (as thermo.bias.Metadynamics.write_hills)."""
    lines = []
    if header:
        names = metad["names"]
        fields = ["time", *names, *[f"sigma_{n}" for n in names], "height", "biasf"]
        lines.append("#! FIELDS " + " ".join(fields))
        lines.append("#! SET multivariate false")
        lines.append(f"#! SET kbt {float(metad['temperature'])!r}")
    biasf = metad["bias_factor"] if metad["bias_factor"] is not None else 1.0
    for i in range(len(table)):
        row = [float(table.steps[i]) * 1.0, *table.centres[i], *table.sigmas[i],
               table.heights[i], biasf]
        lines.append(" ".join(f"{x:.17g}" for x in row))
    return "".join(line + "\n" for line in lines)


# --- the command

def main_sampling(command, flags):
    """Run ``thermo sample`` or ``thermo metad``.

    Parameters
    ----------
    command : {"sample", "metad"}
    flags : dict

    Returns
    -------
    int
    """
    import numpy as np

    context, saved = resolve_with_resume(command, flags)
    options = context.options
    _check_device(options)
    _check_eqn(command, options)
    output = options["output"]
    resume = options["resume"]
    prepare_output_dir(output, overwrite=options["overwrite"], resume=resume)
    walkers = options["walkers"]
    metad_run = command == "metad"

    # threads: the process's and the one inside walker tasks
    if resume:
        task_threads = int(saved.get("run", {}).get("task_threads", 1))
    elif options["executor"] == "inprocess" and walkers == 1:
        task_threads = set_threads(options["threads"])
    else:
        task_threads = options["walker_threads"]
    if options["threads"]:
        set_threads(options["threads"])

    if options["record_every"] > options["steps"]:
        context.warn(f"--record-every {options['record_every']} exceeds --steps "
                     f"{options['steps']}: no records will be taken")
    potential, net, X, y, description = build_model(options, context)
    _check_device(options, potential)
    from thermo.walkers.rounds import share_potential

    # in-process walker tasks reuse this potential (one copy of the data), in the
    # minibatch state it has now, before any pilot run
    share_potential(_key(model_arguments(options)), potential)
    dimension = potential.dimension
    dtype = potential.dtype
    starts = _starts(options, net, dimension, dtype)

    eqn = command == "sample" and options["eqn_strength"] > 0
    from thermo.samplers import available_samplers

    if options["sampler"] not in available_samplers():
        raise CommandError(f"--sampler {options['sampler']!r} is not available; installed: "
                           f"{', '.join(available_samplers())}")

    if not resume and options["check"]:
        from thermo.cli.checks import check_step_size

        check_step_size(context, potential, starts[0][1], options["sampler"],
                        options["step_size"])
    if options["sampler"] == "hmc" and options["batch_size"] and options["potential"] == "network":
        context.warn("--sampler hmc with --batch-size: the Metropolis test needs exact "
                     "energies; minibatch estimates bias the samples")
    if options["sampler"] in ("baoab", "gla1", "gla2", "ccadl") and \
            options["friction"] * options["step_size"] > 20:
        context.warn(f"friction × step size = {options['friction'] * options['step_size']:g}: "
                     "the dynamics are overdamped and diffuse slowly; consider --sampler "
                     "overdamped or a smaller --friction")
    if walkers > 1 and options["executor"] in ("process", "dask") \
            and options["workers"] > (os.cpu_count() or 1):
        context.warn(f"--workers {options['workers']} exceeds the {os.cpu_count()} CPUs")

    # metadynamics: CV, grid, walls (fixed at the start; reloaded on resume)
    metad = None
    if metad_run:
        cv_path = os.path.join(output, "cv.npz")
        if resume:
            if not os.path.isfile(cv_path):
                raise CommandError(f"cannot resume: {output} has no cv.npz")
            with np.load(cv_path, allow_pickle=False) as archive:
                directions, centre = archive["directions"], archive["centre"]
                names = [str(n) for n in archive["names"]]
                walls = archive["walls"]
                grid = archive["grid"]
            metad = _metad_parameters(dict(options, cv_range=tuple(walls.ravel())),
                                      directions, centre, names, None)
            metad["grid"] = [(float(a), float(b), int(n)) for a, b, n in grid]
        else:
            pilot_cache = {}

            def pilot():
                if "trajectory" not in pilot_cache:
                    import thermo

                    context.note(f"pilot run of {options['pilot_steps']} unbiased steps")
                    run = thermo.sample(potential, options["sampler"], theta0=starts[0][1],
                                        seed=options["seed"], n_steps=options["pilot_steps"],
                                        record_every=max(1, options["pilot_steps"] // 500),
                                        **{k: v for k, v in _sampler_kwargs(options).items()
                                           if k not in ("record_every", "record_trajectory",
                                                        "record_accuracy")},
                                        record_trajectory=True)
                    pilot_cache["trajectory"] = run.trajectory
                return pilot_cache["trajectory"]

            directions, centre, names = _cv_directions(options, dimension, pilot)

            def pilot_values():
                trajectory = np.asarray(pilot(), dtype=np.float64)
                return (trajectory - centre) @ directions.T

            metad = _metad_parameters(options, directions, centre, names, pilot_values)

    from thermo.walkers.executors import ExecutorUnavailable, check_executor, make_executor
    from thermo.walkers.rounds import WalkerEnsemble, WalkerProblem

    arguments = model_arguments(options)
    problem = WalkerProblem(factory="thermo.cli.sampling:build_potential",
                            arguments=arguments, key=_key(arguments),
                            method=options["sampler"], sampler=_sampler_kwargs(options),
                            threads=task_threads, metad=metad)

    checkpoint = None
    if resume:
        from thermo.io.checkpoint import CheckpointError, load_checkpoint

        try:
            checkpoint = load_checkpoint(os.path.join(output, "checkpoint.npz"))
        except CheckpointError as error:
            raise CommandError(f"cannot resume: {error}") from None

    try:
        check_executor(options["executor"])
    except ExecutorUnavailable as error:
        raise CommandError(str(error)) from None

    # --- from here on the run directory is written
    from thermo.cli.runner import Driver

    if not resume:
        make_output_dir(output)
        for name in ("observables.csv", "trajectory.h5", "checkpoint.npz", "HILLS",
                     "theta.npy", "averages.csv", "free_energy.csv", "cv.npz"):
            path = os.path.join(output, name)
            if os.path.exists(path):
                os.unlink(path)
        _write_config(output, command, options, task_threads, dimension, description)
        if metad is not None:
            from thermo.io.atomic import atomic_write

            with atomic_write(os.path.join(output, "cv.npz")) as handle:
                np.savez(handle, directions=metad["directions"], centre=metad["centre"],
                         names=np.array(metad["names"]), walls=np.array(metad["walls"]),
                         grid=np.array(metad["grid"], dtype=np.float64))
    try:
        executor = make_executor(options["executor"], options["workers"],
                                 options["scheduler"])
    except ExecutorUnavailable as error:
        raise CommandError(str(error), EXIT_FAILURE) from None
    round_steps = options["round_steps"] if walkers > 1 else None
    ensemble = WalkerEnsemble(problem, walkers, round_steps or 1, executor, starts)

    def advance(state, n_steps):
        if eqn:
            return _advance_eqn(potential, options, starts, state, n_steps, task_threads)
        return _advance(ensemble, state, n_steps, round_steps, walkers, metad)

    driver = Driver(context, output, advance, total_steps=options["steps"],
                    record_every=options["record_every"],
                    checkpoint_every=options["checkpoint_every"], columns=None,
                    dimension=dimension, dtype=dtype, trajectory=options["trajectory"],
                    walkers=walkers if walkers > 1 else None,
                    quantum=round_steps or 1, hills=metad is not None,
                    hills_header=_hill_lines(_empty_table(metad), metad, True) if metad else "")
    try:
        if walkers == 1 and options["executor"] != "inprocess":
            context.note("one walker: the executor only adds start-up time")
        if resume:
            driver.resume(checkpoint)
            context.note(f"resuming at step {driver.steps_done} of {options['steps']}")
        else:
            driver.start()
        status = driver.run()
    except Exception as error:
        if type(error).__name__ == "DivergenceError":
            raise CommandError(f"{error}; the last checkpoint is intact: lower --step-size "
                               "and start again, or inspect the run", EXIT_FAILURE) from None
        raise
    finally:
        executor.close()
    if status:
        return status
    _finish(context, output, driver.state, walkers, metad, options)
    return 0


def _empty_table(metad):
    from thermo.walkers.rounds import HillTable

    return HillTable.empty(len(metad["names"]))


def _advance(ensemble, state, n_steps, round_steps, walkers, metad):
    import numpy as np

    from thermo.cli.runner import ChunkOutput

    if state is None:
        state = ensemble.initial_state()
    done = 0
    pieces = []
    hills_text = []
    while done < n_steps:
        if round_steps:
            k = min(round_steps - state["step"] % round_steps, n_steps - done)
        else:
            k = n_steps - done
        state, results, new_hills = ensemble.round(state, k)
        pieces.append(results)
        if new_hills is not None and len(new_hills):
            hills_text.append(_hill_lines(new_hills, metad, False))
        done += k
    # records: record-major, walkers interleaved
    observables = {}
    trajectories = []
    steps = []
    for results in pieces:
        first = results[0]
        n_records = len(first.observables["step"])
        steps.append(np.asarray(first.observables["step"], dtype=np.int64))
        if walkers == 1:
            block = dict(first.observables)
            trajectory = first.trajectory
        else:
            block = {name: np.stack([np.asarray(r.observables[name]) for r in results],
                                    axis=1).reshape(-1) for name in first.observables}
            block["walker"] = np.tile(np.arange(walkers, dtype=np.int64), n_records)
            trajectory = (np.stack([r.trajectory for r in results], axis=1)
                          if first.trajectory is not None else None)
        for name, values in block.items():
            observables.setdefault(name, []).append(values)
        if trajectory is not None:
            trajectories.append(trajectory)
    observables = {name: np.concatenate(values) for name, values in observables.items()}
    trajectory = np.concatenate(trajectories) if trajectories else None
    return ChunkOutput(state, state["step"], observables, np.concatenate(steps), trajectory,
                       "".join(hills_text))


def _advance_eqn(potential, options, starts, state, n_steps, threads):
    """One chunk of an EQN ensemble (all walkers coupled, in this process)."""
    import numba
    import numpy as np

    from thermo.cli.runner import ChunkOutput
    from thermo.samplers.ensemble import sample_ensemble

    kwargs = {k: v for k, v in _sampler_kwargs(options).items() if k != "record_accuracy"}
    kwargs.update(preconditioning="eqn", eqn_strength=options["eqn_strength"],
                  eqn_every=options["eqn_every"])
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        if state is None:
            run = sample_ensemble(potential, options["sampler"],
                                  theta0=np.stack([s[1] for s in starts]),
                                  seed=options["seed"], n_steps=n_steps, **kwargs)
        else:
            run = sample_ensemble(potential, options["sampler"], state=state["eqn"],
                                  n_steps=n_steps, **kwargs)
    finally:
        numba.set_num_threads(previous)
    walkers = len(starts)
    steps = np.asarray(run.observables["step"], dtype=np.int64)
    observables = {"step": np.repeat(steps, walkers),
                   "walker": np.tile(np.arange(walkers, dtype=np.int64), steps.size)}
    for name, values in run.observables.items():
        if name != "step":
            observables[name] = np.asarray(values).T.reshape(-1)
    trajectory = (np.ascontiguousarray(run.trajectory.transpose(1, 0, 2))
                  if run.trajectory is not None else None)
    new_state = {"eqn": run.state, "step": int(run.state.step), "hills": None}
    return ChunkOutput(new_state, new_state["step"], observables, steps, trajectory)


def _write_config(output, command, options, task_threads, dimension, description):
    from thermo.io.config import write_config

    saved = {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()
             if k not in CONTROL_OPTIONS}
    content = {"command": command, "format": RUN_FORMAT, "options": saved,
               "run": {"task_threads": int(task_threads), "dimension": int(dimension),
                       "data": description},
               "provenance": provenance(options.get("seed"))}
    write_config(os.path.join(output, "config.toml"), content)


def _finish(context, output, state, walkers, metad, options):
    """Final θ, averages, free energy and figures of a completed run."""
    import numpy as np

    from thermo.io.atomic import atomic_write

    if "eqn" in state:
        thetas = np.asarray(state["eqn"].theta)
    else:
        thetas = np.stack([s.theta for s in state["walkers"]])
    with atomic_write(os.path.join(output, "theta.npy")) as handle:
        np.save(handle, thetas[0] if walkers == 1 else thetas)
    from thermo.cli.analysis import write_averages

    write_averages(context, os.path.join(output, "observables.csv"),
                   os.path.join(output, "averages.csv"))
    if metad is not None:
        from thermo.walkers.rounds import HillTable, add_hills, build_bias

        table = HillTable.from_dict(state["hills"])
        bias = build_bias(metad, len(table) + 1)
        add_hills(bias, table)
        axes, free = bias.free_energy()
        from thermo.io.tables import write_table

        if len(metad["names"]) == 1:
            columns = [metad["names"][0], "free_energy"]
            values = np.column_stack([axes, free])
        else:
            mesh = np.meshgrid(axes[0], axes[1], indexing="ij")
            columns = [*metad["names"], "free_energy"]
            values = np.column_stack([mesh[0].ravel(), mesh[1].ravel(), free.ravel()])
        write_table(os.path.join(output, "free_energy.csv"), columns, values)
        context.note(f"{len(table)} hills; free energy in {output}/free_energy.csv")
    if options.get("figures", True):
        from thermo.cli.figures import run_figures

        run_figures(context, output, metad is not None)
    context.note(f"done: {output}")
