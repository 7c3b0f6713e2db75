"""Walkers advanced in rounds of pure tasks; shared multiple-walker metadynamics.

A run with W walkers proceeds in rounds of ``round_steps`` steps.  In each
round every walker is one task,

    ``run_round(problem, walker, start, n_steps, shared_hills) -> RoundResult``

a pure function of its arguments: the walker's sampler state (or its start
point and seed in the first round) and the hills deposited by *all* walkers
up to the end of the previous round.  The task rebuilds the shared
metadynamics bias from those hills, samples ``n_steps`` steps with
:func:`thermo.sample` (adding the walker's own hills to its private copy of
the bias) and returns its new state, its records and the hills it deposited
in this round.  The driver (:class:`WalkerEnsemble`) merges the new hills of
all walkers **in walker order** and passes them to the next round.

Consequences:

* results are identical whichever executor runs the tasks (in this process,
  a process pool, Dask, MPI) and in whatever order they finish;
* a task that is retried (a Dask worker lost) cannot deposit its hills
  twice: hills enter the shared bias only through the driver's merge of the
  one result it accepts per walker and round;
* with one walker the rounds change nothing: the bias the walker sees is
  the one it built itself, so the run equals a plain ``thermo.sample`` with
  the bias, bit for bit.

Numba's thread count is set to ``problem.threads`` inside every task
(reductions in the network kernels depend on it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module

import numpy as np

__all__ = ["WalkerProblem", "RoundResult", "run_round", "WalkerEnsemble", "HillTable",
           "build_bias", "walker_seed", "share_potential", "bias_snapshot",
           "restore_snapshot", "add_hills"]

# Per-process cache of built potentials: key -> Potential.
_POTENTIALS: dict = {}


@dataclass(frozen=True)
class WalkerProblem:
    """Everything a walker task needs, picklable and small.

    Parameters
    ----------
    factory : str
        ``"module:function"`` building the potential from ``arguments``
        (a function returning a Potential, or a tuple whose first item is one).
    arguments : dict
        Keyword-free argument of ``factory`` (``factory(arguments)``).
    key : str
        Cache key of the built potential in a worker process.
    method : str
        Sampler name for :func:`thermo.sample`.
    sampler : dict
        Keyword arguments of :func:`thermo.sample` (``step_size``, ``beta``,
        ``friction``, ``record_every``, ``record_trajectory``, sampler
        options).
    threads : int
        Numba threads inside a task.
    metad : dict, optional
        Metadynamics parameters (see :func:`build_bias`); None: no bias.
    """

    factory: str
    arguments: dict
    key: str
    method: str
    sampler: dict
    threads: int = 1
    metad: dict | None = None


@dataclass
class HillTable:
    """Hills in deposition order (PLUMED file heights).

    Attributes
    ----------
    centres, sigmas : ndarray, shape (n, m)
    heights : ndarray, shape (n,)
        File heights H (see :mod:`thermo.bias.metadynamics`).
    steps : ndarray of int64, shape (n,)
    walkers : ndarray of int64, shape (n,)
        Walker that deposited each hill.
    """

    centres: np.ndarray
    sigmas: np.ndarray
    heights: np.ndarray
    steps: np.ndarray
    walkers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def empty(cls, m):
        """A table without hills for an m-component CV."""
        return cls(np.zeros((0, m)), np.zeros((0, m)), np.zeros(0), np.zeros(0, np.int64),
                   np.zeros(0, np.int64))

    def __len__(self):
        return int(self.heights.shape[0])

    @classmethod
    def concatenate(cls, tables):
        """Tables one after the other (the merge order)."""
        tables = list(tables)
        return cls(np.concatenate([t.centres for t in tables]),
                   np.concatenate([t.sigmas for t in tables]),
                   np.concatenate([t.heights for t in tables]),
                   np.concatenate([t.steps for t in tables]),
                   np.concatenate([t.walkers for t in tables]))

    def as_dict(self):
        """Plain dict (for checkpoints)."""
        return {"centres": self.centres, "sigmas": self.sigmas, "heights": self.heights,
                "steps": self.steps, "walkers": self.walkers}

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`as_dict`."""
        return cls(np.asarray(data["centres"], dtype=np.float64),
                   np.asarray(data["sigmas"], dtype=np.float64),
                   np.asarray(data["heights"], dtype=np.float64),
                   np.asarray(data["steps"], dtype=np.int64),
                   np.asarray(data["walkers"], dtype=np.int64))


@dataclass
class RoundResult:
    """What one walker task returns."""

    walker: int
    state: object
    observables: dict
    trajectory: np.ndarray | None
    hills: HillTable | None


def walker_seed(seed, walker, walkers):
    """Seed of one walker: ``seed`` itself for a single walker, else an
    independent stream ``SeedSequence(seed, spawn_key=(walker,))``.

    Parameters
    ----------
    seed : int
    walker : int
    walkers : int

    Returns
    -------
    int or numpy.random.SeedSequence
    """
    if walkers == 1:
        return int(seed)
    return np.random.SeedSequence(int(seed), spawn_key=(int(walker),))


def share_potential(key, potential):
    """Let in-process walker tasks use an already built potential (no second copy
    of the data in memory).

    Parameters
    ----------
    key : str
        The :attr:`WalkerProblem.key` it belongs to.
    potential : thermo.potentials.Potential
    """
    import copy

    initial = (copy.deepcopy(potential.minibatch_state())
               if hasattr(potential, "minibatch_state") else None)
    _POTENTIALS.clear()
    _POTENTIALS[key] = (potential, initial)


def _potential(problem, fresh):
    """The problem's potential, built once per process.

    Walkers share it; a fresh start restores the minibatch state the
    potential had when built, so that a walker's first round does not depend
    on which walkers ran before it in the same process.
    """
    import copy

    entry = _POTENTIALS.get(problem.key)
    if entry is None:
        module_name, _, function_name = problem.factory.partition(":")
        built = getattr(import_module(module_name), function_name)(problem.arguments)
        potential = built[0] if isinstance(built, tuple) else built
        initial = (copy.deepcopy(potential.minibatch_state())
                   if hasattr(potential, "minibatch_state") else None)
        _POTENTIALS.clear()  # one problem per process at a time
        _POTENTIALS[problem.key] = entry = (potential, initial)
    potential, initial = entry
    if fresh and initial is not None and hasattr(potential, "set_minibatch_state"):
        potential.set_minibatch_state(copy.deepcopy(initial))
    return potential


def build_bias(metad, n_hills_capacity=1):
    """A :class:`thermo.bias.Metadynamics` from a parameter dict.

    Parameters
    ----------
    metad : dict
        ``directions`` (m, d), ``centre`` (d,), ``names``, ``height``,
        ``sigma``, ``pace``, ``temperature``, ``bias_factor`` (None: plain),
        ``grid`` [(lower, upper, n)], ``walls`` [(lower, upper)] or None,
        ``wall_kappa``.
    n_hills_capacity : int
        Room for this many hills.

    Returns
    -------
    thermo.bias.Metadynamics
    """
    from thermo.bias.metadynamics import Metadynamics
    from thermo.cv.linear import Linear

    cv = Linear(metad["directions"], centre=metad["centre"], names=metad["names"])
    return Metadynamics(cv, height=metad["height"], sigma=metad["sigma"], pace=metad["pace"],
                        temperature=metad["temperature"], bias_factor=metad["bias_factor"],
                        grid=metad["grid"], walls=metad["walls"],
                        wall_kappa=metad["wall_kappa"], record_every=0, max_records=0,
                        max_hills=max(1, int(n_hills_capacity)))


def add_hills(bias, table):
    """Deposit the hills of ``table`` into ``bias`` in order (grid and c(t) as
    if they had been deposited by a sampler); see
    :meth:`thermo.bias.Metadynamics.add_hills`.

    Parameters
    ----------
    bias : thermo.bias.Metadynamics
    table : HillTable

    Returns
    -------
    None

    Examples
    --------
    >>> bias = build_bias({"directions": [[1.0]], "centre": [0.0], "names": ["x"],
    ...                    "height": 0.3, "sigma": [0.2], "pace": 10, "temperature": 1.0,
    ...                    "bias_factor": None, "grid": [(-2.0, 2.0, 81)], "walls": None,
    ...                    "wall_kappa": 100.0})
    >>> table = HillTable(np.array([[-0.5], [0.5]]), np.full((2, 1), 0.2),
    ...                   np.array([0.3, 0.3]), np.array([10, 20]))
    >>> add_hills(bias, table)
    >>> bias.n_hills
    2
    """
    if len(table) == 0:
        return
    bias.add_hills(table.centres, table.sigmas, table.heights, table.steps)


def bias_snapshot(bias):
    """The state of a bias that hills change: grid, c(t) and the hill count
    (:meth:`thermo.bias.Metadynamics.snapshot`, without the hill list).

    Sending this to a walker task costs one grid (instead of replaying every
    hill in every task), and a task that restores it sees exactly the bias
    that replaying the hills would give: the grid is the same sum, added in
    the same order.

    Parameters
    ----------
    bias : thermo.bias.Metadynamics

    Returns
    -------
    dict

    Examples
    --------
    >>> metad = {"directions": [[1.0]], "centre": [0.0], "names": ["x"], "height": 0.3,
    ...          "sigma": [0.2], "pace": 10, "temperature": 1.0, "bias_factor": None,
    ...          "grid": [(-2.0, 2.0, 81)], "walls": None, "wall_kappa": 100.0}
    >>> bias = build_bias(metad)
    >>> bias.update(np.array([0.4]), 10)
    >>> copy = restore_snapshot(build_bias(metad), bias_snapshot(bias))
    >>> bool(np.array_equal(copy.free_energy()[1], bias.free_energy()[1]))
    True
    """
    return bias.snapshot()


def restore_snapshot(bias, snapshot):
    """Load a :func:`bias_snapshot` into a bias
    (:meth:`thermo.bias.Metadynamics.restore`).

    Parameters
    ----------
    bias : thermo.bias.Metadynamics
    snapshot : dict

    Returns
    -------
    thermo.bias.Metadynamics
        ``bias``.

    Examples
    --------
    See :func:`bias_snapshot`.
    """
    return bias.restore(snapshot)


def _hills_after(bias, start, walker):
    hills = bias.hills
    n = hills["step"].shape[0]
    return HillTable(hills["centres"][start:n].copy(), hills["sigmas"][start:n].copy(),
                     hills["file_heights"][start:n].copy(),
                     hills["step"][start:n].astype(np.int64),
                     np.full(n - start, walker, dtype=np.int64))


def run_round(problem, walker, start, n_steps, shared):
    """Advance one walker by ``n_steps`` steps (a pure task).

    Parameters
    ----------
    problem : WalkerProblem
    walker : int
        Walker index (labels records and hills).
    start : NamedTuple or tuple
        The sampler state of the previous round, or ``("fresh", theta0,
        seed)`` for the first round.
    n_steps : int
    shared : HillTable, dict or None
        The shared bias built from the hills of all walkers up to the previous
        round (metadynamics only): the hills themselves, or the
        :func:`bias_snapshot` of a bias holding them.

    Returns
    -------
    RoundResult
    """
    import numba

    import thermo

    previous_threads = numba.get_num_threads()
    if problem.threads > numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"walker tasks need {problem.threads} Numba threads but this worker "
                         f"has only {numba.config.NUMBA_NUM_THREADS}")
    numba.set_num_threads(problem.threads)
    try:
        fresh = type(start) is tuple and len(start) == 3 and isinstance(start[0], str)
        potential = _potential(problem, fresh)
        bias = None
        n_shared = 0
        if problem.metad is not None:
            capacity = n_steps // int(problem.metad["pace"]) + 2
            if isinstance(shared, HillTable):
                bias = build_bias(problem.metad, len(shared) + capacity)
                add_hills(bias, shared)
                n_shared = len(shared)
            else:
                bias = build_bias(problem.metad, capacity)
                restore_snapshot(bias, shared)
        kwargs = dict(problem.sampler)
        if fresh:
            run = thermo.sample(potential, problem.method, theta0=start[1], seed=start[2],
                                n_steps=n_steps, bias=bias, **kwargs)
        else:
            run = thermo.sample(potential, problem.method, state=start, n_steps=n_steps,
                                bias=bias, **kwargs)
        hills = _hills_after(bias, n_shared, walker) if bias is not None else None
        return RoundResult(walker, run.state, dict(run.observables), run.trajectory, hills)
    finally:
        numba.set_num_threads(previous_threads)


class WalkerEnsemble:
    """W walkers advanced in rounds by an executor; merges shared hills.

    Parameters
    ----------
    problem : WalkerProblem
    walkers : int
    round_steps : int
        Steps per round (exchange period of the shared hills).
    executor : thermo.walkers.executors.Executor
    starts : list
        Per walker: ``("fresh", theta0, seed)``.

    Notes
    -----
    :meth:`advance` has the signature the run driver
    (:class:`thermo.cli.runner.Driver`) expects, with the state
    ``{"walkers": [...], "hills": dict or None, "step": int}``.
    """

    def __init__(self, problem, walkers, round_steps, executor, starts):
        self.problem = problem
        self.walkers = int(walkers)
        self.round_steps = int(round_steps)
        self.executor = executor
        self.starts = list(starts)
        m = len(problem.metad["names"]) if problem.metad is not None else 0
        self._empty = HillTable.empty(m) if problem.metad is not None else None
        self._shared = None  # (number of hills, bias holding them)

    def initial_state(self):
        """State before the first step."""
        return {"walkers": list(self.starts), "step": 0,
                "hills": None if self._empty is None else self._empty.as_dict()}

    def shared_bias(self, state):
        """The bias holding every hill of ``state`` (kept up to date incrementally)."""
        table = HillTable.from_dict(state["hills"])
        if self._shared is None or self._shared[0] != len(table):
            bias = build_bias(self.problem.metad, len(table) + 1)
            add_hills(bias, table)
            self._shared = (len(table), bias)
        return self._shared[1]

    def round(self, state, n_steps):
        """One round of all walkers: returns (new state, results in walker order,
        the new hills in merge order)."""
        shared = None
        if state["hills"] is not None:
            shared = bias_snapshot(self.shared_bias(state))
        arguments = [(self.problem, w, state["walkers"][w], n_steps, shared)
                     for w in range(self.walkers)]
        results = self.executor.map(run_round, arguments)
        results = sorted(results, key=lambda r: r.walker)
        if [r.walker for r in results] != list(range(self.walkers)):
            raise RuntimeError("walker tasks returned an incomplete set of results")
        new_hills = None
        merged = None
        if shared is not None:
            old = HillTable.from_dict(state["hills"])
            new_hills = HillTable.concatenate([r.hills for r in results])
            merged = HillTable.concatenate([old, new_hills]).as_dict()
            bias = self._shared[1]
            add_hills(bias, new_hills)  # in merge order (the hill list grows as needed)
            self._shared = (len(old) + len(new_hills), bias)
        new_state = {"walkers": [r.state for r in results], "step": state["step"] + n_steps,
                     "hills": merged}
        return new_state, results, new_hills
