"""Shared machinery of the subcommands: messages, progress bars, data, model, θ files.

Everything here is imported lazily by the subcommand modules; heavy packages
(NumPy, Numba, h5py, tqdm) are imported inside the functions that need them.
"""
from __future__ import annotations

import os
import sys
import time

from thermo.cli.main import CommandError

__all__ = ["Context", "build_data", "build_model", "load_theta", "prepare_output_dir",
           "provenance", "set_threads", "check_writable_file"]


class Context:
    """Options of one invocation plus messaging helpers.

    Parameters
    ----------
    command : str
    options : dict
        Resolved options (see :func:`thermo.cli.config.resolve`).
    """

    def __init__(self, command, options):
        self.command = command
        self.options = options
        self.quiet = bool(options.get("quiet", False))
        self._started = time.time()

    def note(self, message):
        """Print an informational line on stderr unless ``--quiet``."""
        if not self.quiet:
            print(f"thermo {self.command}: {message}", file=sys.stderr, flush=True)

    def warn(self, message):
        """Print a one-line warning on stderr (also with ``--quiet``)."""
        print(f"thermo {self.command}: warning: {message}", file=sys.stderr, flush=True)

    def progress(self, total, initial=0, unit="step", description=None):
        """A tqdm progress bar on stderr (disabled by ``--quiet``).

        Parameters
        ----------
        total : int
        initial : int
        unit : str
        description : str, optional

        Returns
        -------
        tqdm.tqdm
        """
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit=unit, unit_scale=True,
                    desc=description or self.command, disable=self.quiet, file=sys.stderr,
                    dynamic_ncols=True, smoothing=0.1, mininterval=0.5)


def resolve_options(command, flags, base=None):
    """Resolve options, turning option errors into :class:`CommandError`.

    Parameters
    ----------
    command : str
    flags : dict
    base : dict, optional

    Returns
    -------
    dict
    """
    from thermo.cli.config import resolve

    return resolve(command, flags, base=base)


def set_threads(requested):
    """Set Numba's thread count; return the count in use.

    Parameters
    ----------
    requested : int
        0 keeps Numba's default.

    Returns
    -------
    int
    """
    import numba

    if requested:
        maximum = numba.config.NUMBA_NUM_THREADS
        if requested > maximum:
            raise CommandError(f"--threads {requested} exceeds the {maximum} threads Numba "
                               "was started with (NUMBA_NUM_THREADS)")
        numba.set_num_threads(int(requested))
    return int(numba.get_num_threads())


def provenance(seed=None):
    """Versions of thermo and its dependencies, command line, host and time.

    Parameters
    ----------
    seed : int, optional

    Returns
    -------
    dict
    """
    import platform
    from importlib import metadata

    import thermo

    versions = {"thermo": thermo.__version__, "python": platform.python_version()}
    for package in ("numpy", "numba", "scipy", "h5py"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    info = {"versions": versions, "command_line": " ".join(["thermo"] + sys.argv[1:]),
            "host": platform.node(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if seed is not None:
        info["seed"] = int(seed)
    return info


def check_writable_file(path, overwrite):
    """Refuse to overwrite an existing file or to write into a missing directory.

    Parameters
    ----------
    path : str
    overwrite : bool
    """
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CommandError(f"{path} is a directory")
    if os.path.exists(path) and not overwrite:
        raise CommandError(f"{path} exists; pass --overwrite to replace it")
    if not os.path.isdir(directory):
        raise CommandError(f"directory {directory} does not exist")
    _probe_directory(directory)


#: Files a run directory may hold (used to decide whether a directory is a run).
RUN_FILES = ("config.toml", "observables.csv", "trajectory.h5", "checkpoint.npz", "HILLS",
             "theta.npy", "averages.csv", "landscape.csv")


def _probe_directory(path):
    """Raise CommandError unless a file can be created in the existing ``path``."""
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=".thermo-probe-", dir=path)
    except OSError as error:
        raise CommandError(f"output directory {path} is not writable: "
                           f"{error.strerror}") from None
    os.close(fd)
    os.unlink(probe)


def prepare_output_dir(path, overwrite=False, resume=False):
    """Check that a run directory can be (re)used and written; create nothing.

    Parameters
    ----------
    path : str
    overwrite : bool
        Allow replacing an existing run's files.
    resume : bool
        The directory must hold a checkpointed run.

    Returns
    -------
    bool
        Whether the directory already exists.
    """
    exists = os.path.exists(path)
    if exists and not os.path.isdir(path):
        raise CommandError(f"output {path} exists and is not a directory")
    if resume:
        if not exists:
            raise CommandError(f"cannot resume: {path} does not exist")
        if not os.path.isfile(os.path.join(path, "checkpoint.npz")):
            raise CommandError(f"cannot resume: {path} has no checkpoint.npz")
        _probe_directory(path)
        return True
    if exists:
        used = [f for f in RUN_FILES if os.path.exists(os.path.join(path, f))]
        if used and not overwrite:
            raise CommandError(f"output directory {path} already holds a run ({used[0]}); "
                               "pass --overwrite to replace it or --resume to continue it")
        _probe_directory(path)
    else:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise CommandError(f"cannot create output directory {path}: {parent} is not a "
                               "directory")
        # create and remove it again: the only reliable test (root, read-only mounts)
        try:
            os.mkdir(path)
            os.rmdir(path)
        except OSError as error:
            raise CommandError(f"cannot create output directory {path}: "
                               f"{error.strerror}") from None
    return exists


def make_output_dir(path):
    """Create the run directory (after all input was validated).

    Parameters
    ----------
    path : str
    """
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise CommandError(f"cannot create output directory {path}: {error.strerror}") from None


def build_data(options):
    """Training data from ``--data`` (toy set name, 'mnist' or CSV file).

    Parameters
    ----------
    options : dict

    Returns
    -------
    X : ndarray, shape (n, d)
    y : ndarray of int64, shape (n,)
    description : str
    """
    import numpy as np

    dtype = np.dtype(options.get("dtype", "float64"))
    source = options["data"]
    n_points = options.get("n_points", 500)
    if source.lower() == "mnist":
        from thermo.data import load_mnist

        subset = n_points if n_points else None
        X, y = load_mnist("train", subset=subset, seed=options.get("data_seed", 0),
                          dtype=dtype)
        return X, y, f"MNIST training set ({X.shape[0]} images)"
    looks_like_file = (os.sep in source or source.lower().endswith((".csv", ".txt"))
                       or os.path.exists(source))
    if looks_like_file:
        from thermo.data import load_csv

        if not os.path.isfile(source):
            raise CommandError(f"data file {source} does not exist")
        X, y = load_csv(source, dtype=dtype)
        if y.ndim != 1:
            raise CommandError(f"data file {source}: expected one label column, got "
                               f"{y.shape[1]}")
        return X, y, f"{source} ({X.shape[0]} points, {X.shape[1]} features)"
    from thermo.data import make_dataset

    if n_points < 2:
        raise CommandError("--n-points must be at least 2 for a toy data set")
    X, y = make_dataset(source, n=n_points, noise=options.get("noise", 0.1),
                        seed=options.get("data_seed", 0))
    return X.astype(dtype), y, f"toy set {source} ({n_points} points)"


def build_model(options, context=None):
    """Network, data and posterior potential from the model options.

    Parameters
    ----------
    options : dict
    context : Context, optional
        For warnings about dubious settings.

    Returns
    -------
    potential : thermo.potentials.Potential
    net : thermo.networks.MLP
    X, y : ndarray
    description : str
    """
    import numpy as np

    import thermo

    kind = options.get("potential", "network")
    if kind != "network":
        from thermo.potentials import analytic

        if kind == "double-well":
            potential = analytic.DoubleWell(a=options.get("barrier", 1.0),
                                            transverse_stiffness=1.0)
        elif kind == "mueller-brown":
            potential = analytic.MuellerBrown()
        elif kind == "gaussian":
            potential = analytic.Gaussian(np.zeros(options.get("dimension", 2)))
        else:
            raise CommandError(f"unknown potential {kind!r}")
        return potential, None, None, None, f"analytic potential {kind}"
    X, y, description = build_data(options)
    if y.dtype.kind not in "iu":
        raise CommandError("labels must be integer class indices")
    n_classes = int(y.max()) + 1 if y.size else 0
    if n_classes < 2:
        raise CommandError(f"the data have {n_classes} class(es); need at least 2")
    loss = options["loss"]
    n_out = 1 if loss == "logistic" else n_classes
    if loss == "logistic" and n_classes != 2:
        raise CommandError(f"--loss logistic needs 2 classes, the data have {n_classes}")
    sizes = [X.shape[1], *options["hidden"], n_out]
    net = thermo.MLP(sizes, activation=options["activation"],
                     output_activation=options["output_activation"], loss=loss,
                     dtype=np.dtype(options["dtype"]))
    batch = options["batch_size"] or None
    if batch is not None and batch > X.shape[0]:
        raise CommandError(f"--batch-size {batch} exceeds the {X.shape[0]} data points")
    sparse_inputs = {"auto": None, "sparse": True, "dense": False}[
        options.get("input_format", "auto")]
    try:
        potential = thermo.Posterior(net, X, y, prior_precision=options["prior_precision"],
                                     batch_size=batch, sparse_inputs=sparse_inputs)
    except ValueError as err:
        raise CommandError(f"--input-format sparse: {err}") from None
    return potential, net, X, y, description


#: Start points of the analytic potentials (a minimum of each).
ANALYTIC_STARTS = {"double-well": (-1.0, 0.0), "mueller-brown": (-0.558, 1.442)}


def initial_theta(options, net, dimension, dtype, seed):
    """Start point: ``net.init`` for networks, a minimum for analytic potentials.

    Parameters
    ----------
    options : dict
    net : thermo.networks.MLP or None
    dimension : int
    dtype : numpy dtype
    seed : int

    Returns
    -------
    ndarray
    """
    import numpy as np

    if net is not None:
        return net.init(seed=seed, scheme=options["init"])
    start = ANALYTIC_STARTS.get(options.get("potential"))
    if start is None:
        return np.zeros(dimension, dtype=dtype)
    return np.array(start, dtype=dtype)


def load_theta(path, dimension, dtype, name="--theta0"):
    """Read θ from a .npy file, a one-row CSV file or a run directory.

    Parameters
    ----------
    path : str
    dimension : int
    dtype : numpy dtype
    name : str
        Flag named in error messages.

    Returns
    -------
    ndarray
    """
    import numpy as np

    if os.path.isdir(path):
        candidate = os.path.join(path, "theta.npy")
        if not os.path.isfile(candidate):
            raise CommandError(f"{name}: run directory {path} has no theta.npy")
        path = candidate
    if not os.path.isfile(path):
        raise CommandError(f"{name}: file {path} does not exist")
    try:
        if path.endswith(".npy"):
            theta = np.load(path, allow_pickle=False)
        else:
            from thermo.io.tables import read_table

            columns, values = read_table(path)
            from thermo.io.tati import PARAMETER_COLUMN

            keep = [i for i, c in enumerate(columns) if PARAMETER_COLUMN.match(c)]
            values = values[:, keep] if keep else values
            if values.shape[0] < 1:
                raise CommandError(f"{name}: {path} has no rows")
            theta = values[-1]
    except (OSError, ValueError) as error:
        raise CommandError(f"{name}: cannot read {path}: {error}") from None
    theta = np.asarray(theta)
    if theta.dtype.kind != "f":
        raise CommandError(f"{name}: {path} holds {theta.dtype} values, expected floats")
    theta = theta.reshape(-1) if theta.ndim == 2 and 1 in theta.shape else theta
    if theta.ndim != 1 or theta.shape[0] != dimension:
        raise CommandError(f"{name}: {path} holds {theta.shape} values, the model has "
                           f"{dimension} parameters")
    if not np.all(np.isfinite(theta)):
        raise CommandError(f"{name}: {path} contains NaN or inf")
    return np.ascontiguousarray(theta, dtype=dtype)


def parse_flags(command, flags):
    """Resolve flags (and ``--config``) into a :class:`Context`.

    Parameters
    ----------
    command : str
    flags : dict

    Returns
    -------
    Context
    """
    from thermo.cli.options import OptionError
    from thermo.io.config import ConfigError

    try:
        options = resolve_options(command, flags)
    except (OptionError, ConfigError) as error:
        raise CommandError(str(error)) from None
    return Context(command, options)
