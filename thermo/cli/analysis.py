"""``thermo analyse``: averages, IAT, covariance, diffusion map and free energy.

Inputs
------
* a thermo run directory (``observables.csv`` and ``trajectory.h5``), or one
  of those files;
* TATi CSV files: a trajectory file (``step, loss, weight0, ..., bias0, ...``,
  optionally a leading ``id`` column for walkers) as ``--input``, and/or a
  run file (``step, epoch, accuracy, loss, kinetic_energy, ...``) as
  ``--run-file`` (or as ``--input`` alone).

Records with ``step < --burn-in`` are dropped, then every ``--every``-th is
kept.  ``--walker -1`` pools all walkers (chains are analysed per walker and
combined); ``--walker k`` picks one.

Outputs (in ``--output``)
-------------------------
================== ============================================================
file               content
================== ============================================================
``averages.csv``   per observable: mean, std, mcse (IAT), tau, ess, n, reliable
``iat.csv``        integrated autocorrelation times of the observables and of
                   the leading principal coordinates of θ
``covariance.csv`` eigenvalues of the θ covariance (descending)
``pca.npz``        ``mean``, ``eigenvalues``, ``eigenvectors`` (d, k)
``diffmap.csv``    step (, walker) and diffusion coordinates of the points used
``diffmap_eigenvalues.csv`` eigenvalues of the diffusion-map generator
``free_energy.csv`` F along the first diffusion coordinate (or the first
                   principal coordinate when no diffusion map was asked for)
``figures/*.png``  plots of the above
================== ============================================================
"""
from __future__ import annotations

import os

import numpy as np

from thermo.cli.main import CommandError

__all__ = ["write_averages", "RunData", "load_input", "main_analyse"]


class RunData:
    """Observables and trajectory of a run, after burn-in and thinning.

    Attributes
    ----------
    observables : dict
        name -> array (rows of all walkers); ``step`` always, ``walker`` when
        present.
    theta : callable or None
        ``theta(max_points=None) -> (steps, walkers, array (n, d))`` of the kept
        records (all walkers stacked in record order).
    dimension : int or None
    beta : float or None
        Inverse temperature stored with the run (thermo runs), None if unknown.
    source : str
    """

    def __init__(self, observables, theta, dimension, beta, source):
        self.observables = observables
        self.theta = theta
        self.dimension = dimension
        self.beta = beta
        self.source = source


def _select(observables, burn_in, every, walker):
    step = np.asarray(observables["step"])
    keep = step >= burn_in
    if "walker" in observables:
        walkers = np.asarray(observables["walker"])
        if walker >= 0:
            if not np.any(walkers == walker):
                raise CommandError(f"--walker {walker}: the input has walkers "
                                   f"{sorted(set(walkers.tolist()))}")
            keep &= walkers == walker
    elif walker > 0:
        raise CommandError(f"--walker {walker}: the input holds a single walker")
    index = np.flatnonzero(keep)
    if "walker" in observables and walker < 0:
        # thin per walker
        walkers = np.asarray(observables["walker"])[index]
        chosen = []
        for w in np.unique(walkers):
            chosen.append(index[walkers == w][::every])
        index = np.sort(np.concatenate(chosen)) if chosen else index
    else:
        index = index[::every]
    return index


def _tati_observables(tati):
    observables = dict(tati.observables)
    observables["step"] = tati.step
    if tati.walker is not None:
        observables["walker"] = tati.walker
    return observables


def load_input(options):
    """Read the input named by ``--input`` / ``--run-file``.

    Parameters
    ----------
    options : dict

    Returns
    -------
    RunData
    """
    from thermo.io.tati import read_tati

    source = options["input"]
    run_file = options["run_file"]
    burn_in, every, walker = options["burn_in"], options["every"], options["walker"]
    if source is None and run_file is None:
        raise CommandError("--input is required (a run directory, trajectory.h5, "
                           "observables.csv or TATi CSV file)")
    for path in (source, run_file):
        if path is not None and not os.path.exists(path):
            raise CommandError(f"input {path} does not exist")
    observables_path = trajectory_path = None
    beta = None
    tati_trajectory = None
    if source is not None and os.path.isdir(source):
        observables_path = os.path.join(source, "observables.csv")
        trajectory_path = os.path.join(source, "trajectory.h5")
        if not os.path.isfile(observables_path):
            raise CommandError(f"{source} is not a run directory (no observables.csv)")
        if not os.path.isfile(trajectory_path):
            trajectory_path = None
        config = os.path.join(source, "config.toml")
        if os.path.isfile(config):
            from thermo.io.config import ConfigError, load_config

            try:
                beta = load_config(config).get("options", {}).get("beta")
            except ConfigError:
                beta = None
    elif source is not None and source.endswith((".h5", ".hdf5")):
        trajectory_path = source
        sibling = os.path.join(os.path.dirname(os.path.abspath(source)), "observables.csv")
        observables_path = sibling if os.path.isfile(sibling) else None
    elif source is not None:
        try:
            tati = read_tati(source)
        except ValueError as error:
            raise CommandError(str(error)) from None
        if tati.theta is not None:
            tati_trajectory = tati
        else:
            observables_path = source
    if run_file is not None:
        observables_path = run_file

    observables = None
    if observables_path is not None:
        try:
            observables = _tati_observables(read_tati(observables_path))
        except ValueError as error:
            raise CommandError(str(error)) from None
    elif tati_trajectory is not None:
        observables = _tati_observables(tati_trajectory)
    theta = None
    dimension = None
    if tati_trajectory is not None:
        trajectory_observables = _tati_observables(tati_trajectory)
        index = _select(trajectory_observables, burn_in, every, walker)
        dimension = tati_trajectory.theta.shape[1]

        def theta(max_points=None, _t=tati_trajectory, _i=index, _o=trajectory_observables):
            chosen = _i if max_points is None or _i.size <= max_points else \
                _i[np.linspace(0, _i.size - 1, max_points).astype(int)]
            walkers = _o["walker"][chosen] if "walker" in _o else np.zeros(chosen.size, int)
            return _o["step"][chosen], walkers, _t.theta[chosen]
    elif trajectory_path is not None:
        theta, dimension = _h5_theta(trajectory_path, burn_in, every, walker)
    if observables is None:
        if theta is None:
            raise CommandError("no observables or trajectory found in the input")
    else:
        index = _select(observables, burn_in, every, walker)
        observables = {k: np.asarray(v)[index] for k, v in observables.items()}
        if observables["step"].size == 0:
            raise CommandError(f"no records left after --burn-in {burn_in}")
    return RunData(observables, theta, dimension, beta, source or run_file)


def _h5_theta(path, burn_in, every, walker):
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "theta" not in handle or "step" not in handle:
                raise CommandError(f"{path} is not a thermo trajectory file")
            steps = handle["step"][:]
            shape = handle["theta"].shape
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error}") from None
    multi = len(shape) == 3
    if multi and walker >= shape[1]:
        raise CommandError(f"--walker {walker}: the trajectory has {shape[1]} walkers")
    if not multi and walker > 0:
        raise CommandError(f"--walker {walker}: the trajectory holds a single walker")
    records = np.flatnonzero(steps >= burn_in)[::every]
    dimension = shape[-1]

    def theta(max_points=None):
        chosen = records if max_points is None or records.size <= max_points else \
            records[np.linspace(0, records.size - 1, max_points).astype(int)]
        with h5py.File(path, "r") as handle:
            dataset = handle["theta"]
            blocks = []
            # read in slabs (never the whole file at once when thinning)
            for start in range(0, chosen.size, 4096):
                part = chosen[start:start + 4096]
                blocks.append(dataset[part] if part.size else
                              np.zeros((0,) + shape[1:], dataset.dtype))
            data = np.concatenate(blocks) if blocks else np.zeros((0,) + shape[1:])
        if multi:
            if walker >= 0:
                return steps[chosen], np.full(chosen.size, walker), data[:, walker, :]
            n_walkers = shape[1]
            return (np.repeat(steps[chosen], n_walkers),
                    np.tile(np.arange(n_walkers), chosen.size),
                    data.reshape(-1, dimension))
        return steps[chosen], np.zeros(chosen.size, int), data

    return theta, dimension


def _chains(values, walkers):
    if walkers is None:
        return values[:, None]
    unique = np.unique(walkers)
    lengths = [int(np.sum(walkers == w)) for w in unique]
    n = min(lengths)
    return np.stack([values[walkers == w][:n] for w in unique], axis=1)


def _summaries(observables):
    """Per observable: (name, mean, std, mcse, tau, ess, n, reliable)."""
    import warnings

    from thermo.analysis.statistics import summarize

    rows = []
    walkers = observables.get("walker")
    for name, values in observables.items():
        if name in ("step", "walker", "epoch", "id"):
            continue
        values = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.any():
            continue
        chains = _chains(values, walkers)
        estimates = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for k in range(chains.shape[1]):
                series = chains[:, k]
                series = series[np.isfinite(series)]
                if series.size >= 4 and np.ptp(series) > 0:
                    estimates.append(summarize(series, on_short="ignore"))
        n = int(finite.sum())
        mean = float(np.mean(values[finite]))
        std = float(np.std(values[finite], ddof=1)) if n > 1 else float("nan")
        if estimates:
            tau = float(np.mean([e.tau for e in estimates]))
            ess = float(np.sum([e.ess for e in estimates]))
            mcse = std / np.sqrt(ess) if ess > 0 else float("nan")
            reliable = all(e.reliable for e in estimates)
        else:
            tau, ess, mcse, reliable = float("nan"), float("nan"), float("nan"), False
        rows.append((name, mean, std, mcse, tau, ess, n, reliable))
    return rows


def _write_rows(path, header, rows):
    from thermo.io.atomic import atomic_write

    with atomic_write(path, "w") as handle:
        handle.write(",".join(header) + "\n")
        for row in rows:
            cells = []
            for value in row:
                if isinstance(value, bool):
                    cells.append("true" if value else "false")
                elif isinstance(value, (int, np.integer)):
                    cells.append(str(int(value)))
                elif isinstance(value, (float, np.floating)):
                    cells.append(repr(float(value)))
                else:
                    cells.append(str(value))
            handle.write(",".join(cells) + "\n")


AVERAGES_HEADER = ("observable", "mean", "std", "mcse", "tau", "ess", "n", "reliable")


def write_averages(context, observables_csv, output_csv):
    """Averages of every observable of ``observables.csv`` into ``averages.csv``.

    Parameters
    ----------
    context : thermo.cli.common.Context
    observables_csv : str
    output_csv : str
    """
    from thermo.io.tables import read_table

    columns, values = read_table(observables_csv)
    if values.shape[0] == 0:
        return
    observables = {c: values[:, i] for i, c in enumerate(columns)}
    _write_rows(output_csv, AVERAGES_HEADER, _summaries(observables))


def _iat_rows(data, options):
    import warnings

    from thermo.analysis.autocorrelation import integrated_autocorrelation_time

    rows = []
    for name, mean, std, mcse, tau, ess, n, reliable in _summaries(data.observables or {}):
        rows.append((name, tau, ess, n, reliable))
    if data.theta is not None:
        steps, walkers, theta = data.theta()
        if theta.shape[0] >= 4:
            k = min(options["eigenvectors"], theta.shape[1], theta.shape[0] - 1)
            vectors, mean = _pca(theta, k)[1:]
            coordinates = (theta - mean) @ vectors
            for j in range(k):
                chains = _chains(coordinates[:, j], walkers if len(set(walkers)) > 1 else None)
                taus = []
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    for c in range(chains.shape[1]):
                        result = integrated_autocorrelation_time(
                            chains[:, c], on_short="ignore", full_output=True)
                        taus.append(result)
                tau = float(np.mean([t.tau for t in taus]))
                n = int(chains.size)
                rows.append((f"pc{j + 1}", tau, n / max(tau, 1e-12), n,
                             all(t.reliable for t in taus)))
    return rows


def _pca(theta, k):
    from thermo.analysis.covariance import principal_components

    theta = np.asarray(theta, dtype=np.float64)
    pairs = principal_components(theta, k=k)
    return pairs.values, pairs.vectors, theta.mean(axis=0)


def main_analyse(flags):
    """Run ``thermo analyse``.

    Parameters
    ----------
    flags : dict

    Returns
    -------
    int
    """
    from thermo.cli.common import make_output_dir, parse_flags, prepare_output_dir

    context = parse_flags("analyse", flags)
    options = context.options
    analyses = options["analyses"]
    if not analyses:
        raise CommandError("--analyses is empty")
    data = load_input(options)
    needs_theta = {"covariance", "diffmap"} & set(analyses)
    if needs_theta and data.theta is None:
        raise CommandError(f"{', '.join(sorted(needs_theta))} need a trajectory (θ), the "
                           "input has none")
    if "free-energy" in analyses and data.theta is None:
        raise CommandError("free-energy needs a trajectory (θ), the input has none")
    beta = data.beta if data.beta is not None else options["beta"]
    output = options["output"]
    prepare_output_dir(output, overwrite=True)
    outputs = {"averages": ["averages.csv"], "iat": ["iat.csv"],
               "covariance": ["covariance.csv", "pca.npz"],
               "diffmap": ["diffmap.csv", "diffmap_eigenvalues.csv"],
               "free-energy": ["free_energy.csv"]}
    if not options["overwrite"]:
        for analysis in analyses:
            for name in outputs[analysis]:
                if os.path.exists(os.path.join(output, name)):
                    raise CommandError(f"{os.path.join(output, name)} exists; pass "
                                       "--overwrite to replace it")
    # compute everything before writing
    results = {}
    if "averages" in analyses:
        if data.observables is None:
            raise CommandError("averages need observables (observables.csv or a TATi "
                               "run/trajectory file)")
        results["averages"] = _summaries(data.observables)
    if "iat" in analyses:
        results["iat"] = _iat_rows(data, options)
    if "covariance" in analyses or ("free-energy" in analyses and "diffmap" not in analyses):
        steps, walkers, theta = data.theta()
        if theta.shape[0] < 3:
            raise CommandError(f"covariance needs at least 3 records, have {theta.shape[0]}")
        k = min(options["eigenvectors"], theta.shape[1], theta.shape[0] - 1)
        values, vectors, mean = _pca(theta, k)
        results["pca"] = (values, vectors, mean, steps, walkers, (theta - mean) @ vectors)
    if "diffmap" in analyses:
        from thermo.analysis.diffusion_map import DiffusionMapError, diffusion_map

        steps, walkers, theta = data.theta(max_points=options["max_points"])
        if theta.shape[0] < 10:
            raise CommandError(f"diffmap needs at least 10 records, have {theta.shape[0]}")
        try:
            result = diffusion_map(theta, n_evecs=options["eigenvectors"],
                                   k=min(64, theta.shape[0] - 1))
        except DiffusionMapError as error:
            raise CommandError(f"diffusion map failed: {error}", 1) from None
        results["diffmap"] = (steps[result.indices], walkers[result.indices], result)
    if "free-energy" in analyses:
        from thermo.analysis.free_energy import free_energy

        if "diffmap" in results:
            values = results["diffmap"][2].coordinates[:, 0]
            label = "dc1"
        else:
            values = results["pca"][5][:, 0]
            label = "pc1"
        profile = free_energy(values, beta, bins=options["bins"], error="iat")
        results["free-energy"] = (label, profile)

    make_output_dir(output)
    written = []

    def path(name):
        written.append(name)
        return os.path.join(output, name)

    if "averages" in results:
        _write_rows(path("averages.csv"), AVERAGES_HEADER, results["averages"])
    if "iat" in results:
        _write_rows(path("iat.csv"), ("quantity", "tau", "ess", "n", "reliable"),
                    results["iat"])
    if "pca" in results and "covariance" in analyses:
        values, vectors, mean = results["pca"][:3]
        _write_rows(path("covariance.csv"), ("index", "eigenvalue"),
                    [(i + 1, float(v)) for i, v in enumerate(values)])
        from thermo.io.atomic import atomic_write

        with atomic_write(path("pca.npz")) as handle:
            np.savez(handle, mean=mean, eigenvalues=values, eigenvectors=vectors)
    if "diffmap" in results:
        steps, walkers, result = results["diffmap"]
        k = result.coordinates.shape[1]
        from thermo.io.tables import write_table

        table = np.column_stack([steps, walkers, result.coordinates])
        write_table(path("diffmap.csv"), ["step", "walker", *[f"dc{i + 1}" for i in range(k)]],
                    table, integer_columns=("step", "walker"))
        _write_rows(path("diffmap_eigenvalues.csv"), ("index", "eigenvalue"),
                    [(i + 1, float(v)) for i, v in enumerate(result.eigenvalues)])
    if "free-energy" in results:
        label, profile = results["free-energy"]
        _write_rows(path("free_energy.csv"), (label, "free_energy", "error", "count"),
                    [(float(c), float(f), float(e), int(n)) for c, f, e, n in
                     zip(profile.centres, profile.free_energy, profile.error, profile.counts)])
    if options["figures"]:
        from thermo.cli.figures import analysis_figures

        analysis_figures(context, output, results)
    for name in written:
        context.note(f"wrote {os.path.join(output, name)}")
    if not options["quiet"] and "averages" in results:
        for name, mean, std, mcse, tau, ess, n, reliable in results["averages"]:
            flag = "" if reliable else "  (unreliable: run longer)"
            print(f"{name:>28s}  {mean: .6g} ± {mcse:.2g}   tau {tau:.3g}{flag}")
    return 0
