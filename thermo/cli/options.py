"""The option table of the ``thermo`` command: the one source of truth for defaults.

Every option of every subcommand is one :class:`Option` row of
:data:`OPTIONS`.  The table is used

* by :mod:`thermo.cli.main` to build the argparse parsers (flag ``--step-size``
  for option ``step_size``; the help text shows default and unit),
* by :mod:`thermo.cli.config` to read TOML/JSON config files (key
  ``step_size`` or ``step-size``) and to validate values from either source,
* by :func:`markdown_table`, which documentation generators call.

This module imports nothing heavy (no NumPy), so ``thermo --help`` is fast.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Option", "OPTIONS", "COMMANDS", "options_for", "convert",
           "OptionError", "markdown_table", "default_text"]


class OptionError(ValueError):
    """An option value is of the wrong type or out of range."""


#: Subcommands: name -> (module implementing ``run(config)``, one-line summary).
COMMANDS = {
    "dataset": ("thermo.cli.commands.dataset", "write a toy classification data set to CSV"),
    "optimize": ("thermo.cli.commands.optimize", "train a network (GD, SGD, Barzilai-Borwein)"),
    "sample": ("thermo.cli.commands.sample", "sample the loss landscape with a thermostat "
               "(run directory, checkpoints, --resume)"),
    "analyse": ("thermo.cli.commands.analyse", "analyse a run or TATi CSV files: averages, iat, "
                "covariance, diffmap, free-energy"),
    "landscape": ("thermo.cli.commands.landscape", "loss on a 1-D or 2-D grid of directions "
                  "through a point"),
    "metad": ("thermo.cli.commands.metad", "(multiple-walker) metadynamics along collective "
              "variables; hills file and free energy"),
    "info": ("thermo.cli.commands.info", "versions, Numba threads, CUDA GPU"),
}

ALL = tuple(COMMANDS)
RUNS = ("optimize", "sample", "metad")               # write a run directory with checkpoints
MODEL = ("optimize", "sample", "metad", "landscape")  # build a potential
SAMPLING = ("sample", "metad")


@dataclass(frozen=True)
class Option:
    """One option of the ``thermo`` command.

    Parameters
    ----------
    name : str
        Python/TOML name (``step_size``); the flag is ``--step-size``.
    kind : str
        ``int``, ``float``, ``str``, ``bool``, ``path``, ``int_list``,
        ``float_list`` or ``str_list``.
    default : object
        Default value (``None``: unset).
    help : str
        One sentence.
    unit : str
        Physical unit (U: energy = total loss; θ: parameter units; steps,
        records, ...), empty if dimensionless or not numeric.
    commands : tuple of str
        Subcommands accepting the option.
    choices : tuple
        Allowed values (for lists: allowed elements).
    low, high : float, optional
        Bounds; ``low_open`` / ``high_open`` make them strict.
    allow_inf : bool
        Accept ``inf`` (e.g. the well-tempered bias factor).
    result : bool
        Whether the value changes the numbers a run produces; such options
        may not change on ``--resume``.  ``steps`` may grow on resume.
    """

    name: str
    kind: str
    default: object
    help: str
    unit: str = ""
    commands: tuple = ALL
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    allow_inf: bool = False
    result: bool = True
    metavar: str | None = field(default=None, compare=False)

    @property
    def flag(self):
        """The command-line flag, e.g. ``--step-size``."""
        return "--" + self.name.replace("_", "-")


_RESULTLESS = dict(result=False)

OPTIONS = [
    # --- every command
    Option("config", "path", None, "TOML or JSON file of option values; flags override it",
           commands=tuple(c for c in ALL if c != "info"), result=False),
    Option("quiet", "bool", False, "no progress bars and no notes on stderr", result=False),
    # --- output
    Option("output", "path", "dataset.csv", "CSV file to write", commands=("dataset",),
           result=False),
    Option("output", "path", "thermo-run", "run directory (created; config.toml, "
           "observables.csv, trajectory.h5, checkpoint.npz, ...)",
           commands=RUNS, result=False),
    Option("output", "path", "thermo-landscape", "output directory (landscape.csv, "
           "figures)", commands=("landscape",), result=False),
    Option("output", "path", "thermo-analysis", "output directory (may be the run "
           "directory itself)", commands=("analyse",), result=False),
    Option("overwrite", "bool", False, "replace existing output files",
           commands=("dataset",) + RUNS + ("landscape", "analyse"), result=False),
    # --- potential and data
    Option("potential", "str", "network", "what to sample: the network posterior of --data, "
           "or an analytic test potential (double-well: a(x²-1)² + y²/2 with a = --barrier)",
           commands=MODEL, choices=("network", "double-well", "mueller-brown", "gaussian")),
    Option("barrier", "float", 1.0, "barrier height a of the double-well potential", "U",
           commands=MODEL, low=0, low_open=True),
    Option("dimension", "int", 2, "dimension of the gaussian potential (standard normal)",
           commands=MODEL, low=1),
    Option("data", "str", "two_clusters", "training data: a toy set (two_clusters, squares, "
           "spiral, two_circles), 'mnist', or a CSV file (features..., label)",
           commands=MODEL),
    Option("dataset", "str", "two_clusters", "toy data set to generate",
           commands=("dataset",), choices=("two_clusters", "squares", "spiral", "two_circles")),
    Option("n_points", "int", 500, "number of points of a toy data set, or of the MNIST "
           "subset (0: all 60000)", "points", commands=MODEL + ("dataset",), low=0),
    Option("noise", "float", 0.1, "noise level of a toy data set", "",
           commands=MODEL + ("dataset",), low=0),
    Option("data_seed", "int", 0, "seed of the toy data set / MNIST subset",
           commands=MODEL + ("dataset",), low=0),
    Option("signed_labels", "bool", False, "write labels as -1/+1 (TATi) instead of 0/1",
           commands=("dataset",)),
    # --- model
    Option("hidden", "int_list", (), "hidden layer widths, comma separated (empty: "
           "perceptron)", "units", commands=MODEL, low=1),
    Option("activation", "str", "tanh", "hidden-layer activation", commands=MODEL,
           choices=("linear", "relu", "tanh", "sigmoid", "softplus")),
    Option("output_activation", "str", "linear", "output-layer activation", commands=MODEL,
           choices=("linear", "tanh", "sigmoid")),
    Option("loss", "str", "cross_entropy", "per-example loss", commands=MODEL,
           choices=("cross_entropy", "mse", "logistic")),
    Option("prior_precision", "float", 0.0, "precision λ of the Gaussian prior (λ/2)|θ|²",
           "1/θ²", commands=MODEL, low=0),
    Option("batch_size", "int", 0, "minibatch size B (0: full batch)", "points",
           commands=MODEL, low=0),
    Option("dtype", "str", "float64", "floating type of θ and the data", commands=MODEL,
           choices=("float64", "float32")),
    Option("input_format", "str", "auto", "how a perceptron (no hidden layer, cross "
           "entropy) reads the inputs: sparse rows (work per nonzero), dense rows, or auto "
           "(sparse when at most half of the inputs are nonzero, e.g. MNIST)", commands=MODEL,
           choices=("auto", "sparse", "dense")),
    Option("init", "str", "glorot", "initialisation scheme of θ when --theta0 is not given",
           commands=MODEL, choices=("glorot", "tati")),
    Option("theta0", "path", None, "file with the starting θ (.npy, or CSV with one row, "
           "or a run directory: its theta.npy)", commands=RUNS),
    Option("theta", "path", None, "centre point θ of the landscape (.npy, CSV or run "
           "directory); default: the initial θ", commands=("landscape",)),
    Option("threads", "int", 0, "Numba threads of this process (0: Numba's default); "
           "reductions depend on it, so a resumed run keeps it", "threads",
           commands=MODEL, low=0),
    # --- run control
    Option("seed", "int", 0, "seed of the random numbers (sampler noise, θ initialisation, "
           "random landscape directions)", commands=MODEL, low=0),
    Option("steps", "int", 1000, "number of steps (may grow on --resume)", "steps",
           commands=RUNS, low=1),
    Option("record_every", "int", 10, "take a record (CSV row, trajectory frame) every n steps",
           "steps", commands=RUNS, low=1),
    Option("trajectory", "bool", True, "write θ at every record to trajectory.h5",
           commands=RUNS),
    Option("checkpoint_every", "int", 100, "write checkpoint.npz every n records (0: only at "
           "the end and on SIGINT/SIGTERM)", "records", commands=RUNS, low=0, result=False),
    Option("check", "bool", True, "estimate the curvature at the start point and warn when "
           "the step size looks unstable", commands=MODEL, result=False),
    Option("resume", "bool", False, "continue the run in --output from its checkpoint",
           commands=RUNS, result=False),
    # --- optimizer
    Option("optimizer", "str", "gd", "optimisation method", commands=("optimize",),
           choices=("gd", "sgd", "bb")),
    Option("learning_rate", "float", 1e-3, "step length h (first trial step for bb)",
           "θ²/U", commands=("optimize",), low=0, low_open=True),
    Option("momentum", "float", 0.0, "heavy-ball momentum μ (gd, sgd)", "",
           commands=("optimize",), low=0, high=1, high_open=True),
    Option("tolerance", "float", 0.0, "stop when |∇U| <= tolerance (0: never)", "U/θ",
           commands=("optimize",), low=0),
    # --- sampler
    Option("sampler", "str", "baoab", "sampling method", commands=SAMPLING,
           choices=("baoab", "gla1", "gla2", "sgld", "overdamped", "ccadl", "hmc")),
    Option("step_size", "float", 0.01, "time step h", "time", commands=SAMPLING,
           low=0, low_open=True),
    Option("beta", "float", 1.0, "inverse temperature β of exp(-β U)", "1/U",
           commands=SAMPLING + ("analyse",), low=0, low_open=True),
    Option("friction", "float", 10.0, "friction γ of the Langevin thermostat", "1/time",
           commands=SAMPLING, low=0),
    Option("hmc_steps", "int", 10, "leapfrog steps per HMC trajectory", "steps",
           commands=SAMPLING, low=1),
    Option("accuracy", "bool", False, "record the training accuracy (one full pass over "
           "the data per record)", commands=SAMPLING),
    Option("device", "str", "cpu", "where the steps run: cpu, or cuda (an NVIDIA GPU via "
           "numba.cuda: --potential network with a softmax classifier, --sampler sgld or "
           "baoab, no --accuracy, no EQN, --executor inprocess; other random numbers than "
           "on the CPU)", commands=("sample",), choices=("cpu", "cuda")),
    # --- walkers
    Option("walkers", "int", 1, "number of walkers", "walkers", commands=SAMPLING, low=1),
    Option("round_steps", "int", 100, "steps per round between exchanges of coupled walkers "
           "(shared metadynamics hills)", "steps", commands=SAMPLING, low=1),
    Option("executor", "str", "inprocess", "where walker rounds run", commands=SAMPLING,
           choices=("inprocess", "process", "dask", "mpi"), result=False),
    Option("workers", "int", 2, "worker processes (process pool, Dask LocalCluster)",
           "processes", commands=SAMPLING, low=1, result=False),
    Option("scheduler", "str", "", "Dask scheduler address (empty: start a LocalCluster)",
           commands=SAMPLING, result=False),
    Option("eqn_strength", "float", 0.0, "ensemble quasi-Newton coupling η of the walkers "
           "(M = I + η Cov of the other walkers; 0: independent walkers); runs in-process, "
           "samplers baoab, gla2, sgld", "", commands=("sample",), low=0),
    Option("eqn_every", "int", 1, "steps between updates of the EQN preconditioners", "steps",
           commands=("sample",), low=1),
    Option("walker_threads", "int", 1, "Numba threads per walker task (fixed so that every "
           "executor gives the same numbers)", "threads", commands=SAMPLING, low=1),
    Option("auto_threads", "bool", False, "time the run's own chunks on 1, 2, 4, ... threads "
           "(up to its thread count) and run on the fastest, probing the others now and "
           "then; the numbers do not change (not with --eqn-strength or --device cuda)",
           commands=SAMPLING, result=False),
    # --- metadynamics
    Option("cv", "str", "pca:1", "collective variables: 'coordinates:i,j' (θ components), "
           "'pca:k' (first k principal axes of the unbiased pilot run) or a .npy file of "
           "direction rows (m, d); m = 1 or 2", commands=("metad",)),
    Option("hill_height", "float", 0.1, "height w of each Gaussian hill", "U",
           commands=("metad",), low=0, low_open=True),
    Option("hill_width", "float", 0.1, "width σ of the hills (one per CV or one for all)",
           "CV units", commands=("metad",), low=0, low_open=True),
    Option("pace", "int", 50, "deposit a hill every n steps", "steps", commands=("metad",),
           low=1),
    Option("bias_factor", "float", math.inf, "well-tempered bias factor γ (inf: plain "
           "metadynamics)", "", commands=("metad",), low=1, low_open=True, allow_inf=True),
    Option("cv_range", "float_list", (), "lower,upper bounds of the CVs (one pair for all "
           "or one per CV); harmonic walls keep the CVs inside (empty: from the pilot run)",
           "CV units", commands=("metad",)),
    Option("wall_kappa", "float", 100.0, "spring constant κ of the walls at --cv-range",
           "U/CV²", commands=("metad",), low=0, low_open=True),
    Option("grid_bins", "int", 0, "grid points per CV of the bias grid (0: spacing σ/4)",
           "points", commands=("metad",), low=0),
    Option("pilot_steps", "int", 500, "steps of the unbiased pilot run that defines 'pca:k' "
           "CVs and the automatic --cv-range", "steps", commands=("metad",), low=10),
    # --- landscape
    Option("directions", "str", "random", "directions of the grid: 'random' (normalised "
           "Gaussian), 'pca' (principal axes of --trajectory-file) or a .npy file",
           commands=("landscape",)),
    Option("trajectory_file", "path", None, "trajectory (run directory, trajectory.h5 or "
           "TATi CSV) for 'pca' directions", commands=("landscape",)),
    Option("dimensions", "int", 2, "number of directions: 1 (a line) or 2 (a plane)", commands=("landscape",), low=1,
           high=2),
    Option("extent", "float", 1.0, "grid spans [-extent, extent] along each direction",
           "θ", commands=("landscape",), low=0, low_open=True),
    Option("grid_points", "int", 21, "grid points per direction", "points",
           commands=("landscape",), low=2),
    # --- analyse
    Option("input", "path", None, "run directory, trajectory.h5/observables.csv, or TATi "
           "trajectory/run CSV file (required)", commands=("analyse",)),
    Option("run_file", "path", None, "TATi run CSV file (observables) to analyse alongside "
           "a TATi trajectory", commands=("analyse",)),
    Option("analyses", "str_list", ("averages", "iat"), "analyses to run, comma separated",
           commands=("analyse",),
           choices=("averages", "iat", "covariance", "diffmap", "free-energy")),
    Option("burn_in", "int", 0, "drop records with step < burn_in", "steps",
           commands=("analyse",), low=0),
    Option("every", "int", 1, "use every n-th record", "records", commands=("analyse",),
           low=1),
    Option("walker", "int", -1, "walker to analyse (-1: all, chains pooled)",
           commands=("analyse",), low=-1),
    Option("eigenvectors", "int", 3, "number of covariance / diffusion-map eigenvectors",
           commands=("analyse",), low=1),
    Option("max_points", "int", 2000, "subsample the trajectory to at most this many "
           "points for the diffusion map", "points", commands=("analyse",), low=10),
    Option("bins", "int", 50, "histogram bins of the free energy", "bins",
           commands=("analyse",), low=2),
    Option("figures", "bool", True, "write PNG figures into the output directory",
           commands=("analyse", "landscape") + RUNS, result=False),
    # --- info
    Option("json", "bool", False, "print machine-readable JSON", commands=("info",),
           result=False),
]


def options_for(command):
    """The options of one subcommand, in table order.

    Parameters
    ----------
    command : str

    Returns
    -------
    dict
        name -> :class:`Option`.
    """
    if command not in COMMANDS:
        raise OptionError(f"unknown command {command!r}")
    return {o.name: o for o in OPTIONS if command in o.commands}


def default_text(option):
    """Human-readable default of an option (for help texts and docs).

    Parameters
    ----------
    option : Option

    Returns
    -------
    str
    """
    value = option.default
    if value is None:
        return "unset"
    if option.kind == "bool":
        return "on" if value else "off"
    if option.kind.endswith("_list"):
        return ",".join(str(v) for v in value) if value else "empty"
    if option.kind == "str" and value == "":
        return "empty"
    return str(value)


def _number(option, value, text):
    if option.kind == "int":
        if isinstance(value, bool):
            raise OptionError(f"{option.flag}: expected an integer, got {text}")
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise OptionError(f"{option.flag}: expected an integer, got {text}") from None
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise OptionError(f"{option.flag}: expected an integer, got {text}")
    else:
        if isinstance(value, bool):
            raise OptionError(f"{option.flag}: expected a number, got {text}")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise OptionError(f"{option.flag}: expected a number, got {text}") from None
        if not isinstance(value, (int, float)):
            raise OptionError(f"{option.flag}: expected a number, got {text}")
        value = float(value)
        if math.isnan(value) or (math.isinf(value) and not option.allow_inf):
            raise OptionError(f"{option.flag}: must be a finite number, got {text}")
    if option.low is not None:
        if value < option.low or (option.low_open and value == option.low):
            relation = ">" if option.low_open else ">="
            raise OptionError(f"{option.flag}: must be {relation} {option.low:g}, got {text}")
    if option.high is not None:
        if value > option.high or (option.high_open and value == option.high):
            relation = "<" if option.high_open else "<="
            raise OptionError(f"{option.flag}: must be {relation} {option.high:g}, got {text}")
    return value


def convert(option, value):
    """Convert and validate a value from the command line (str) or a config file.

    Parameters
    ----------
    option : Option
    value : object
        A string from argparse, or a TOML/JSON value.

    Returns
    -------
    object
        int, float, str, bool, tuple (lists) or None.

    Raises
    ------
    OptionError
        With a one-line message naming the flag.
    """
    text = repr(value) if not isinstance(value, str) else value
    if value is None:
        return None
    kind = option.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "off", "0"):
            return False
        raise OptionError(f"{option.flag}: expected true or false, got {text}")
    if kind in ("int", "float"):
        return _number(option, value, text)
    if kind.endswith("_list"):
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",")] if value.strip() else []
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise OptionError(f"{option.flag}: expected a comma-separated list, got {text}")
        element = Option(option.name, kind[:-5], None, option.help, low=option.low,
                         high=option.high, choices=option.choices)
        converted = tuple(convert(element, item) for item in items)
        return converted
    if not isinstance(value, str):
        raise OptionError(f"{option.flag}: expected a string, got {text}")
    if kind == "path":
        if not value.strip():
            raise OptionError(f"{option.flag}: empty path")
        return value
    if option.choices and value not in option.choices:
        raise OptionError(f"{option.flag}: {value!r} is not one of "
                          f"{', '.join(map(str, option.choices))}")
    return value


def markdown_table(command):
    """Markdown table (flag, default, unit, meaning) of a subcommand's options.

    Parameters
    ----------
    command : str

    Returns
    -------
    str
    """
    lines = ["| option | default | unit | meaning |", "|---|---|---|---|"]
    for option in options_for(command).values():
        meaning = option.help
        if option.choices:
            meaning += " (" + ", ".join(map(str, option.choices)) + ")"
        lines.append(f"| `{option.flag}` | {default_text(option)} | {option.unit} | "
                     f"{meaning} |")
    return "\n".join(lines)
