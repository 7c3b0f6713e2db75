"""The sampling driver: ``thermo.sample``, the sampler registry, ``Run``, divergence.

Conventions
-----------
U(θ) is the *total* energy (sum of per-example losses plus negative log
prior), β the inverse temperature, h the step size (``step_size``), γ the
friction.  Samplers target exp(-β (U + V)) with V an optional bias.  Kinetic
energy K = |p|²/2 (unit masses) is measured with the momentum right after
the O (Ornstein–Uhlenbeck) step; see :mod:`thermo.samplers._solvers` for
every observable.

The driver (:func:`sample`) validates the input in Python, builds or
restores the sampler state, and then calls the sampler's Numba kernel on
chunks of many steps; between chunks it collects the records, updates an
optional tqdm bar and stops on divergence.  Chunk boundaries never change
the result: running n steps at once, in chunks, or as two ``sample`` calls
with ``state=run.state`` gives bit-identical trajectories and records.
Records are taken after every step whose *total* 1-based step count is a
multiple of ``record_every`` (the initial state is not recorded).

How to add a sampler
--------------------
A sampler is one module that calls :func:`register_sampler` at import
time; nothing in this file has to change.  Modules of the
``thermo.samplers`` package (e.g. ``thermo/samplers/hmc.py``) are imported
automatically the first time an unknown method name is asked for, so the
registration is found without editing ``__init__.py``.

1. **State**: a ``typing.NamedTuple`` class holding everything needed to
   continue bit for bit.  It *must* have the fields ``theta`` (1-D array),
   ``step`` (int, total completed steps), ``rng_state`` (the
   ``bit_generator.state`` dict, filled in by the driver) and
   ``minibatch_state`` (filled in by the driver from
   ``potential.minibatch_state()`` when the potential has one).  Add what
   the scheme needs: ``momentum``, the cached ``gradient`` (∇(U+V) at θ,
   so that each step costs one gradient evaluation), ``energy``,
   ``bias_energy``, thermostat variables, ...

2. ``init(potential, theta0, rng, bias, parameters) -> State``.
   ``theta0`` is a validated private copy of the start point; ``rng`` the
   ``numpy.random.Generator`` the whole run uses (draw initial momenta from
   it; :func:`thermo.samplers._solvers.evaluate_force` gives the first
   gradient).  Leave ``rng_state=None``, ``minibatch_state=None``.

3. ``validate(parameters, options, potential) -> dict``.  ``parameters``
   holds ``step_size`` (finite, > 0), ``beta`` (> 0, may be ``inf``) and
   ``friction`` (finite, >= 0), already checked here; ``options`` the
   remaining keyword arguments of ``sample``.  Check what is specific to the
   scheme (e.g. :func:`require_positive_friction`), pop the options you
   know and call :func:`reject_unknown_options` on the rest.  Return the
   dict that is passed to ``run_chunk`` and stored as ``Run.parameters``.
   Raise ``ValueError``/``TypeError`` with a clear message.

4. ``run_chunk(potential, bias, state, rng, n_steps, parameters, recording)
   -> ChunkResult``.  A thin Python wrapper around one ``@njit(cache=True)``
   kernel that does ``n_steps`` steps (the kernel takes
   ``potential.kernel_data``, ``bias.kernel_data`` and ``rng``).  After each
   completed step with total count ``n`` the kernel must

   * stop *before* accepting a step whose θ, U (or momentum/gradient) is not
     finite, leaving the last good values in place, and report
     ``diverged=True`` (the steps counted in ``steps_done`` are the good
     ones).  A cheap way: compute the new step into second buffers and
     swap them in only after the check;
   * call ``bias_update(bias_data, theta, n)``;
   * when ``n % recording.record_every == 0`` write row ``rows_written`` of
     ``recording.records`` with
     :func:`thermo.samplers._solvers.record_observables` (fixed column
     layout :data:`thermo.samplers._solvers.COLUMNS`; NaN for what is
     undefined, e.g. pass the HMC acceptance and NaN thermostat) and, to
     offer the ``bias_weight_log`` observable, then
     :func:`thermo.samplers._solvers.record_bias_weight_log`.

   ``recording.records`` has exactly as many rows as multiples of
   ``record_every`` in ``(state.step, state.step + n_steps]``; the driver
   allocates it.  Return ``ChunkResult(new_state, steps_done, rows_written,
   diverged)`` with ``new_state.step == state.step + steps_done``.  Do not
   modify the arrays of ``state`` in place if you want ``last_good_state``
   to be exact on divergence (the driver passes private copies, so
   modifying them is otherwise fine).

5. ``register_sampler("name", init=..., validate=..., run_chunk=...,
   state_class=State, observables=("step", "energy", ...))`` where
   ``observables`` lists the columns the scheme defines (``accuracy``,
   ``full_energy`` and ``laplacian`` are added by the driver when asked for
   or available; ``bias_weight_log`` is dropped when no bias is given).

``thermo/samplers/baoab.py`` is the reference implementation.
"""
from __future__ import annotations

import copy
import importlib
import math
import pkgutil
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numba
import numpy as np

from thermo.bias.base import NO_BIAS
from thermo.potentials.base import Potential
from thermo.samplers._solvers import N_COLUMNS, column_index, has_laplacian
from thermo.samplers._threads import AUTO, PROBE_FRACTION, check_threads, tuner_for

__all__ = ["sample", "Run", "DivergenceError", "register_sampler", "get_sampler",
           "available_samplers", "SamplerSpec", "Recording", "ChunkResult",
           "reject_unknown_options", "require_positive_friction"]


class DivergenceError(RuntimeError):
    """Raised when θ or U became non-finite.

    Attributes
    ----------
    step : int
        The 1-based total step count of the first non-finite step.
    last_good_state : NamedTuple
        Sampler state after the last finite step (``step - 1``); its
        ``rng_state`` (and minibatch state) are those *after* the failed
        step's draws, so resuming from it does not repeat that step's noise.
    partial_run : Run
        Records (and trajectory) up to the last good step.
    """

    def __init__(self, message, step, last_good_state, partial_run):
        super().__init__(message)
        self.step = step
        self.last_good_state = last_good_state
        self.partial_run = partial_run


class Recording(NamedTuple):
    """Output buffers of one chunk, allocated by the driver.

    Attributes
    ----------
    records : ndarray, shape (n_rows, N_COLUMNS), float64
        One row per record, columns as :data:`thermo.samplers._solvers.COLUMNS`.
    trajectory : ndarray, shape (n_rows, d) or (0, d)
        θ at each record when recording θ, else empty; dtype of θ.
    record_every : int
        Record after every step whose total count is a multiple of it.
    record_accuracy, record_full_energy : bool
        Whether the accuracy / the exact (full-batch) energy columns are filled.

    Examples
    --------
    >>> recording = Recording(records=np.zeros((2, N_COLUMNS)),
    ...                       trajectory=np.zeros((0, 3)), record_every=10,
    ...                       record_accuracy=False, record_full_energy=False)
    >>> recording.records.shape == (2, N_COLUMNS), recording.record_every
    (True, 10)
    """
    records: np.ndarray      # (n_rows, N_COLUMNS) float64, see _solvers.COLUMNS
    trajectory: np.ndarray   # (n_rows, d) when recording θ, else (0, d); dtype of θ
    record_every: int
    record_accuracy: bool
    record_full_energy: bool


class ChunkResult(NamedTuple):
    """What a sampler's ``run_chunk`` returns.

    Attributes
    ----------
    state : NamedTuple
        Sampler state after the last step done.
    steps_done : int
        Steps completed in this chunk.
    rows_written : int
        Rows of the :class:`Recording` filled.
    diverged : bool
        Whether θ or U became non-finite (the driver then raises
        :class:`DivergenceError`).

    Examples
    --------
    >>> result = ChunkResult(state=None, steps_done=100, rows_written=2, diverged=False)
    >>> result.steps_done, result.diverged
    (100, False)
    """
    state: Any
    steps_done: int
    rows_written: int
    diverged: bool


@dataclass(frozen=True)
class SamplerSpec:
    """A registered sampler (see the module docstring)."""
    name: str
    init: Callable
    run_chunk: Callable
    validate: Callable
    state_class: type
    observables: tuple
    description: str = ""


_REGISTRY: dict = {}
_BUILTIN_MODULES = {
    "sgld": "thermo.samplers.sgld",
    "gla1": "thermo.samplers.gla",
    "gla2": "thermo.samplers.gla",
    "baoab": "thermo.samplers.baoab",
    "overdamped": "thermo.samplers.overdamped",
    "ccadl": "thermo.samplers.ccadl",
}
_IMPORT_FAILURES: dict = {}
_SCANNED = False

_REQUIRED_STATE_FIELDS = ("theta", "step", "rng_state", "minibatch_state")
_DRIVER_OBSERVABLES = ("accuracy", "full_energy", "laplacian")


def register_sampler(name, *, init, run_chunk, state_class, observables,
                     validate=None, description="", replace=False):
    """Add a sampler under ``name`` (see "How to add a sampler" above).

    Parameters
    ----------
    name : str
        The method name users pass to :func:`sample`.
    init, run_chunk, validate : callable
        See the module docstring.  ``validate`` defaults to accepting no
        extra options.
    state_class : type
        NamedTuple class with at least the fields theta, step, rng_state,
        minibatch_state.
    observables : sequence of str
        Column names of :data:`thermo.samplers._solvers.COLUMNS` the scheme
        defines; must include ``"step"``.
    description : str
        One line shown in error messages listing the samplers.
    replace : bool
        Allow re-registering an existing name (default: error).

    Returns
    -------
    None
        The sampler is stored in the registry; :func:`get_sampler` returns it.

    Examples
    --------
    Register SGLD's functions again under its own name (``replace=True``; a new
    sampler would use a new name and its own ``init`` and ``run_chunk``):

    >>> spec = get_sampler("sgld")
    >>> register_sampler("sgld", init=spec.init, run_chunk=spec.run_chunk,
    ...                  state_class=spec.state_class, observables=spec.observables,
    ...                  validate=spec.validate, description=spec.description,
    ...                  replace=True)
    >>> get_sampler("sgld") == spec
    True
    """
    if not isinstance(name, str) or not name:
        raise TypeError("sampler name must be a non-empty string")
    if name in _REGISTRY and not replace:
        raise ValueError(f"sampler {name!r} is already registered")
    if not (isinstance(state_class, type) and hasattr(state_class, "_fields")):
        raise TypeError("state_class must be a NamedTuple class")
    missing = [f for f in _REQUIRED_STATE_FIELDS if f not in state_class._fields]
    if missing:
        raise TypeError(f"state_class {state_class.__name__} lacks fields {missing}")
    observables = tuple(observables)
    for observable in observables:
        column_index(observable)
    if "step" not in observables:
        raise ValueError("observables must include 'step'")
    if validate is None:
        def validate(parameters, options, potential, _name=name):
            reject_unknown_options(_name, options, ())
            return dict(parameters)
    for function_name, function in (("init", init), ("run_chunk", run_chunk),
                                    ("validate", validate)):
        if not callable(function):
            raise TypeError(f"{function_name} must be callable")
    _REGISTRY[name] = SamplerSpec(name, init, run_chunk, validate, state_class,
                                  observables, description)


def _scan_package():
    """Import every public module of thermo.samplers (finds external registrations)."""
    global _SCANNED
    if _SCANNED:
        return
    _SCANNED = True
    import thermo.samplers as package
    for module in pkgutil.iter_modules(package.__path__):
        if module.name.startswith("_"):
            continue
        full_name = f"thermo.samplers.{module.name}"
        try:
            importlib.import_module(full_name)
        except Exception as error:  # a broken module must not hide the others
            _IMPORT_FAILURES[full_name] = f"{type(error).__name__}: {error}"


def available_samplers():
    """Sorted list of the registered method names (imports all sampler modules).

    Returns
    -------
    list of str
        Method names accepted by :func:`sample`.

    Examples
    --------
    >>> names = available_samplers()
    >>> "baoab" in names and "sgld" in names, names == sorted(names)
    (True, True)
    """
    for module_name in set(_BUILTIN_MODULES.values()):
        importlib.import_module(module_name)
    _scan_package()
    return sorted(_REGISTRY)


def get_sampler(method):
    """The :class:`SamplerSpec` registered as ``method`` (ValueError listing valid names).

    Parameters
    ----------
    method : str
        A registered method name (see :func:`available_samplers`).

    Returns
    -------
    SamplerSpec
        Its ``init``, ``run_chunk``, ``validate``, ``state_class`` and ``observables``.

    Raises
    ------
    ValueError
        Unknown name; the message lists the valid ones.

    Examples
    --------
    >>> spec = get_sampler("baoab")
    >>> spec.name, "theta" in spec.state_class._fields, "kinetic_energy" in spec.observables
    ('baoab', True, True)
    """
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, got {type(method).__name__}")
    if method not in _REGISTRY and method in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[method])
    if method not in _REGISTRY:
        valid = available_samplers()      # imports every sampler module
    if method not in _REGISTRY:
        message = (f"unknown sampling method {method!r}; valid methods: "
                   f"{', '.join(valid)}")
        if _IMPORT_FAILURES:
            message += "; sampler modules that failed to import: " + "; ".join(
                f"{k} ({v})" for k, v in sorted(_IMPORT_FAILURES.items()))
        raise ValueError(message)
    return _REGISTRY[method]


# --- helpers for sampler modules' validate()

def reject_unknown_options(method, options, allowed):
    """Raise TypeError when ``options`` holds names not in ``allowed``."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        valid = sorted(set(allowed) | set(_DRIVER_OPTIONS))
        raise TypeError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for method {method!r}; "
            f"valid options: {', '.join(valid)}")


def require_positive_friction(method, parameters):
    """ValueError unless friction > 0 (schemes whose only noise source is the O step)."""
    if not parameters["friction"] > 0.0:
        raise ValueError(
            f"friction must be > 0 for {method!r} (γ = 0 switches off its noise and "
            f"friction, so it no longer samples), got {parameters['friction']}")


# --- the Run object

class Run:
    """Result of :func:`sample`.

    Attributes
    ----------
    method : str
    parameters : dict
        The validated parameters (step_size, beta, friction where used,
        options, record_every, seed).
    trajectory : ndarray of shape (n_records, d) or None
        θ at each record (``record_trajectory=True``).
    observables : dict of str -> 1-D ndarray
        One entry per recorded observable, always ``"step"`` (int64); see
        :mod:`thermo.samplers._solvers` for the meanings.
    state : NamedTuple
        Sampler state after the last step; ``sample(..., state=run.state)``
        continues bit for bit.

    Examples
    --------
    >>> import numpy as np
    >>> import thermo
    >>> from thermo.potentials import Gaussian
    >>> run = thermo.sample(Gaussian(np.zeros(3)), "sgld", theta0=np.ones(3),
    ...                     n_steps=100, step_size=0.01, seed=1, record_every=50,
    ...                     record_trajectory=True)
    >>> run.trajectory.shape, run.state.step
    ((2, 3), 100)
    """

    def __init__(self, method, parameters, trajectory, observables, state):
        self.method = method
        self.parameters = parameters
        self.trajectory = trajectory
        self.observables = observables
        self.state = state

    @property
    def theta(self):
        """θ after the last step."""
        return self.state.theta

    @property
    def n_records(self):
        return len(self.observables["step"])

    def configurational_temperature(self, discard=0):
        """Estimate kT from the configurations (records ``discard:``).

        mean(|∇U|²)/mean(∇²U) (Rugh/Butler) when a Laplacian was recorded,
        else the virial estimator mean(θ·∇U)/d.
        """
        if "laplacian" in self.observables:
            gradient_norm = self.observables["gradient_norm"][discard:]
            return float(np.mean(gradient_norm ** 2)
                         / np.mean(self.observables["laplacian"][discard:]))
        return float(np.mean(self.observables["virial"][discard:]))

    def __repr__(self):
        return (f"Run(method={self.method!r}, steps={self.state.step}, "
                f"records={self.n_records}, observables={sorted(self.observables)})")


# --- input checks

_DRIVER_OPTIONS = ("record_accuracy", "record_full_energy", "chunk_steps", "threads")


def _check_integer(name, value, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_real(name, value):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if math.isnan(value):
        raise ValueError(f"{name} is NaN")
    return value


def _check_common(n_steps, step_size, beta, friction, record_every):
    if n_steps is None:
        raise TypeError("n_steps is required")
    if step_size is None:
        raise TypeError("step_size is required")
    n_steps = _check_integer("n_steps", n_steps, 0)
    record_every = _check_integer("record_every", record_every, 1)
    step_size = _check_real("step_size", step_size)
    if not (step_size > 0.0 and math.isfinite(step_size)):
        raise ValueError(f"step_size must be finite and > 0, got {step_size}")
    beta = _check_real("beta", beta)
    if not beta > 0.0:
        raise ValueError(f"beta (inverse temperature) must be > 0, got {beta}")
    friction = _check_real("friction", friction)
    if not (friction >= 0.0 and math.isfinite(friction)):
        raise ValueError(f"friction must be finite and >= 0, got {friction}")
    return n_steps, step_size, beta, friction, record_every


def _generator_from_state(rng_state):
    if not isinstance(rng_state, dict) or "bit_generator" not in rng_state:
        raise ValueError("state.rng_state is not a bit_generator.state dict")
    bit_generator_class = getattr(np.random, rng_state["bit_generator"], None)
    if bit_generator_class is None:
        raise ValueError(f"unknown bit generator {rng_state['bit_generator']!r} in state")
    bit_generator = bit_generator_class()
    bit_generator.state = copy.deepcopy(rng_state)
    return np.random.Generator(bit_generator)


def _finish_state(state, rng, potential):
    minibatch_state = None
    if hasattr(potential, "minibatch_state"):
        minibatch_state = copy.deepcopy(potential.minibatch_state())
    return state._replace(rng_state=copy.deepcopy(rng.bit_generator.state),
                          minibatch_state=minibatch_state)


def _make_run(spec, parameters, records, trajectories, state, names, record_trajectory,
              dimension, dtype):
    table = (np.concatenate(records) if records
             else np.empty((0, N_COLUMNS), dtype=np.float64))
    observables = {}
    for name in names:
        column = table[:, column_index(name)]
        observables[name] = (column.astype(np.int64) if name == "step"
                             else np.ascontiguousarray(column))
    trajectory = None
    if record_trajectory:
        trajectory = (np.concatenate(trajectories) if trajectories
                      else np.empty((0, dimension), dtype=dtype))
    return Run(spec.name, parameters, trajectory, observables, state)


# --- the driver

def sample(potential, method, theta0=None, *, n_steps, step_size, beta=1.0, friction=1.0,
           seed=None, record_every=1, record_trajectory=False, state=None, bias=None,
           progress=False, device="cpu", **options):
    """Sample exp(-β (U + V)) with one of the registered samplers.

    Parameters
    ----------
    potential : thermo.potentials.Potential
        U(θ), the total energy (see :mod:`thermo.potentials.base`).
    method : str
        "sgld", "gla1", "gla2", "baoab", "overdamped", "ccadl", or any name
        added with :func:`register_sampler` (e.g. "hmc").
    theta0 : array_like, optional
        Start point (shape (d,), potential's dtype, finite).  Required unless
        ``state`` is given.
    n_steps : int
        Number of steps (>= 0).
    step_size : float
        h > 0.
    beta : float
        Inverse temperature β > 0; ``numpy.inf`` switches the noise off
        (SGLD then is gradient descent).
    friction : float
        γ >= 0 (Langevin schemes; ignored by SGLD and the overdamped scheme).
    seed : int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Seeds ``numpy.random.default_rng``; not allowed together with
        ``state`` (the state carries its generator).
    record_every : int
        Record after every step whose total count is a multiple of it.
    record_trajectory : bool
        Also keep θ at every record (memory n_records × d).
    state : NamedTuple, optional
        ``run.state`` of an earlier run with the same method: continue it.
    bias : thermo.bias.Bias, optional
        Added potential V (default none).  Its state lives in the object.
        A bias with ``check_beta(beta)`` is asked to accept β; one with a
        ``beta`` attribute must match β.
    progress : bool
        Show a tqdm bar over the chunks (steps/s).
    device : {"cpu", "cuda"}
        Where the steps run (default "cpu").  ``"cuda"`` runs SGLD or BAOAB
        on an NVIDIA GPU through ``numba.cuda`` (the kernels of
        :mod:`thermo.samplers.gpu`): only for a :class:`thermo.Posterior` of
        a softmax classifier (linear output, cross-entropy loss, minibatches
        without replacement), without ``bias``, with the option
        ``chunk_steps`` only (steps per host round trip, default 1000);
        anything else raises ``ValueError``/``TypeError`` before any work.
        The data stay on the device; the minibatches are drawn on the host
        as on the CPU (without replacement, reshuffled each epoch, the
        epoch's tail shorter than a batch dropped), the noise comes from one
        xoroshiro128+ stream per parameter.  So the random numbers, and
        hence the trajectories, differ from a CPU run with the same seed
        (same scheme, same target; not bit-identical to CPU).  A GPU run is
        reproducible and chunk-invariant in itself: ``run.state`` is a
        ``thermo.samplers.gpu.GPUState`` (θ, momentum, gradient, step count,
        noise streams, minibatch generator state), continued with
        ``sample(..., state=run.state, device="cuda")`` bit for bit in
        float64.  Observables: ``step``, ``energy`` (U of the minibatch,
        with the prior) and for BAOAB ``kinetic_energy`` and
        ``kinetic_temperature``; ``seed`` must be an int, a SeedSequence or
        None.  Without a GPU (and outside Numba's CUDA simulator,
        ``NUMBA_ENABLE_CUDASIM=1``) a ``RuntimeError`` says so.
    **options
        ``record_accuracy`` (bool, default False: classification accuracy
        per record, costly), ``record_full_energy`` (bool, default False:
        exact U per record, costly for posteriors), ``chunk_steps`` (int,
        steps per kernel call; default adaptive, about 0.5 s per call —
        never changes the result), ``threads`` (None, default: Numba's
        current count; an int: run with that many threads; ``"auto"``: the
        run times its own chunks on 1, 2, 4, ... threads up to Numba's
        current count and runs on the fastest, probing the others now and
        then, and remembers its timings for later runs on the same
        potential (:mod:`thermo.samplers._threads`); never changes the
        result, and Numba's count is restored afterwards) and the sampler's
        own options.

    Returns
    -------
    Run

    Raises
    ------
    ValueError, TypeError
        For invalid input, before any step is taken.
    RuntimeError
        ``device="cuda"`` without a usable GPU.
    DivergenceError
        When θ or U became non-finite; carries the last good state and the
        records up to it.  (On the GPU, checked once per ``chunk_steps``;
        the last good state is the one at the start of that chunk.)

    Examples
    --------
    >>> import numpy as np
    >>> import thermo
    >>> from thermo.potentials import Gaussian
    >>> target = Gaussian(np.zeros(2), [[1.0, 0.5], [0.5, 2.0]])
    >>> run = thermo.sample(target, "baoab", theta0=np.zeros(2), n_steps=1000,
    ...                     step_size=0.1, friction=1.0, seed=0, record_every=10)
    >>> run.observables["step"][:3]
    array([10, 20, 30])
    >>> more = thermo.sample(target, "baoab", state=run.state, n_steps=1000,
    ...                      step_size=0.1, friction=1.0, record_every=10)
    >>> more.state.step
    2000

    On an NVIDIA GPU, for a classifier posterior:

    >>> net = thermo.MLP([4, 3])
    >>> rng = np.random.default_rng(0)
    >>> posterior = thermo.Posterior(net, rng.normal(size=(20, 4)),
    ...                              rng.integers(0, 3, 20), batch_size=5)
    >>> run = thermo.sample(posterior, "sgld", theta0=net.init(seed=0), n_steps=100,
    ...                     step_size=1e-3, seed=0, device="cuda")  # doctest: +SKIP
    >>> run = thermo.sample(posterior, "sgld", state=run.state, n_steps=100,
    ...                     step_size=1e-3, device="cuda")  # doctest: +SKIP
    """
    if not (isinstance(device, str) and device in ("cpu", "cuda")):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda":
        from thermo.samplers.gpu import sample_cuda
        return sample_cuda(potential, method, theta0, n_steps=n_steps, step_size=step_size,
                           beta=beta, friction=friction, seed=seed, record_every=record_every,
                           record_trajectory=record_trajectory, state=state, bias=bias,
                           progress=progress, **options)
    spec = get_sampler(method)
    if not isinstance(potential, Potential):
        raise TypeError(f"potential must be a thermo Potential, got {type(potential).__name__}")
    n_steps, step_size, beta, friction, record_every = _check_common(
        n_steps, step_size, beta, friction, record_every)
    options = dict(options)
    record_accuracy = bool(options.pop("record_accuracy", False))
    record_full_energy = bool(options.pop("record_full_energy", False))
    chunk_steps = options.pop("chunk_steps", None)
    if chunk_steps is not None:
        chunk_steps = _check_integer("chunk_steps", chunk_steps, 1)
    threads = check_threads(options.pop("threads", None))
    record_trajectory = bool(record_trajectory)
    if bias is None:
        bias = NO_BIAS
    elif not hasattr(bias, "kernel_data"):
        raise TypeError(f"bias must be a thermo.bias.Bias, got {type(bias).__name__}")
    elif hasattr(bias, "check_beta"):
        bias.check_beta(beta)
    elif getattr(bias, "beta", None) is not None and float(bias.beta) != beta:
        raise ValueError(f"the bias was built for beta={bias.beta}, the sampler runs at "
                         f"beta={beta}")

    parameters = spec.validate({"step_size": step_size, "beta": beta, "friction": friction},
                               options, potential)

    if state is None:
        if theta0 is None:
            raise ValueError("theta0 is required (or pass state= to continue a run)")
        theta0 = np.array(potential.check_theta(theta0, "theta0"), copy=True)
        rng = np.random.default_rng(seed)
        if hasattr(potential, "reset_minibatch_state"):
            potential.reset_minibatch_state()
        state = spec.init(potential, theta0, rng, bias, parameters)
        if not (math.isfinite(state.energy) if hasattr(state, "energy") else True):
            raise ValueError(f"U(theta0) is not finite ({state.energy})")
    else:
        if theta0 is not None:
            raise ValueError("give either theta0 or state, not both")
        if seed is not None:
            raise ValueError("seed cannot be combined with state (the state carries "
                             "its random generator)")
        if not isinstance(state, spec.state_class):
            raise TypeError(f"state is a {type(state).__name__}; method {method!r} "
                            f"needs a {spec.state_class.__name__}")
        state = copy.deepcopy(state)
        potential.check_theta(state.theta, "state.theta")
        if state.theta.dtype != potential.dtype:
            raise TypeError(f"state.theta has dtype {state.theta.dtype}, "
                            f"potential needs {potential.dtype}")
        rng = _generator_from_state(state.rng_state)
        if state.minibatch_state is not None and hasattr(potential, "set_minibatch_state"):
            potential.set_minibatch_state(copy.deepcopy(state.minibatch_state))

    parameters = dict(parameters)
    parameters["record_every"] = record_every
    parameters["seed"] = seed if isinstance(seed, (int, np.integer, type(None))) else repr(seed)

    names = list(spec.observables)
    if bias is NO_BIAS and "bias_weight_log" in names:
        names.remove("bias_weight_log")
    if record_accuracy:
        names.append("accuracy")
    if record_full_energy:
        names.append("full_energy")
    if has_laplacian(potential):
        names.append("laplacian")

    dimension = state.theta.shape[0]
    dtype = state.theta.dtype
    records, trajectories = [], []
    max_chunk = max(1, min(10_000_000, record_every * 100_000,
                           record_every * max(1, 10_000_000 // dimension)
                           if record_trajectory else 10_000_000))
    chunk = chunk_steps if chunk_steps is not None else min(1000, max_chunk)
    target_seconds = 0.5

    previous_threads = numba.get_num_threads()
    tuner = tuner_for(potential, spec.name, previous_threads) if threads == AUTO else None
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n_steps, unit="step", desc=spec.name)
    try:
        if isinstance(threads, int):
            numba.set_num_threads(threads)
        remaining = n_steps
        while remaining > 0:
            probe = False
            if tuner is not None:
                chunk_threads, probe = tuner.choose()
                numba.set_num_threads(chunk_threads)
            n = min(max(1, chunk // PROBE_FRACTION) if probe else chunk, remaining)
            first = state.step
            n_rows = (first + n) // record_every - first // record_every
            recording = Recording(
                np.empty((n_rows, N_COLUMNS), dtype=np.float64),
                np.empty((n_rows if record_trajectory else 0, dimension), dtype=dtype),
                record_every, record_accuracy, record_full_energy)
            started = time.perf_counter()
            result = spec.run_chunk(potential, bias, state, rng, n, parameters, recording)
            elapsed = time.perf_counter() - started
            if tuner is not None:
                tuner.report(chunk_threads, result.steps_done, elapsed)
            state = result.state
            records.append(recording.records[:result.rows_written])
            if record_trajectory:
                trajectories.append(recording.trajectory[:result.rows_written])
            if bar is not None:
                bar.update(result.steps_done)
            if result.diverged:
                bad_step = state.step + 1
                state = _finish_state(state, rng, potential)
                partial = _make_run(spec, parameters, records, trajectories, state, names,
                                    record_trajectory, dimension, dtype)
                raise DivergenceError(
                    f"{spec.name} diverged at step {bad_step}: non-finite θ, energy or "
                    f"force (step_size={step_size} may be too large); the last good "
                    f"state is step {state.step}", bad_step, state, partial)
            remaining -= n
            if chunk_steps is None and not probe:
                per_step = elapsed / max(n, 1)
                wanted = int(target_seconds / per_step) if per_step > 0 else max_chunk
                chunk = max(1, min(max_chunk, 8 * chunk, wanted))
    finally:
        numba.set_num_threads(previous_threads)
        if bar is not None:
            bar.close()
    state = _finish_state(state, rng, potential)
    return _make_run(spec, parameters, records, trajectories, state, names,
                     record_trajectory, dimension, dtype)
