"""Executors that run walker tasks: in-process, process pool, Dask, MPI.

All executors share one interface, :meth:`Executor.map`, which runs a
top-level (picklable) function on a list of argument tuples and returns the
results **in input order**.  Walker tasks are pure (state in, state out), so
the numbers do not depend on the executor, on the order in which workers
finish, or on retries.

=============  ===========================================================
name           runs tasks
=============  ===========================================================
``inprocess``  one after the other in this process (default)
``process``    in a ``concurrent.futures.ProcessPoolExecutor`` ("spawn")
``dask``       on a ``distributed.Client``: a ``LocalCluster`` of worker
               processes, or an existing scheduler (``scheduler`` address)
``mpi``        in an ``mpi4py.futures.MPIPoolExecutor``; start the command
               under ``mpiexec -n N python -m mpi4py.futures -m thermo.cli
               ...`` (N - 1 workers) or let MPI spawn ``workers`` processes
=============  ===========================================================

Numba's thread count is set inside every task (see
:func:`thermo.walkers.rounds.run_round`): Dask and Ray start workers with
``NUMBA_NUM_THREADS`` equal to all cores, and the network kernels' reductions
depend on the thread count.
"""
from __future__ import annotations

__all__ = ["Executor", "InProcessExecutor", "ProcessPoolExecutor", "DaskExecutor",
           "MPIExecutor", "make_executor", "check_executor", "EXECUTORS",
           "ExecutorUnavailable"]


class ExecutorUnavailable(RuntimeError):
    """The packages an executor needs are not installed (or MPI is not running)."""


class Executor:
    """Base class: run picklable tasks and return their results in order.

    Subclasses set ``name`` and implement :meth:`map` (and :meth:`close` when
    they hold workers).  Executors are context managers that close on exit.

    Examples
    --------
    >>> import operator
    >>> class Reversed(Executor):
    ...     name = "reversed"
    ...     def map(self, function, arguments):  # any order inside, input order out
    ...         results = [function(*args) for args in reversed(arguments)]
    ...         return results[::-1]
    >>> with Reversed() as executor:
    ...     executor.map(operator.add, [(1, 2), (3, 4)])
    [3, 7]
    """

    name = "base"

    def map(self, function, arguments):
        """Run ``function(*args)`` for every tuple in ``arguments``.

        Parameters
        ----------
        function : callable
            A module-level function (picklable by reference).
        arguments : list of tuple

        Returns
        -------
        list
            Results in the order of ``arguments``.
        """
        raise NotImplementedError

    def close(self):
        """Release workers."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class InProcessExecutor(Executor):
    """Run tasks one after another in this process.

    Examples
    --------
    >>> import operator
    >>> InProcessExecutor().map(operator.mul, [(2, 3), (4, 5)])
    [6, 20]
    """

    name = "inprocess"

    def map(self, function, arguments):
        return [function(*args) for args in arguments]


class ProcessPoolExecutor(Executor):
    """``concurrent.futures.ProcessPoolExecutor`` with spawned workers.

    Parameters
    ----------
    workers : int
        Number of worker processes.

    Notes
    -----
    "spawn" avoids forking a process whose Numba thread pool is running.
    Workers live as long as the executor, so per-process caches (the built
    potential, compiled kernels) serve every round.

    Examples
    --------
    Starting worker processes takes a second, so this only shows the use
    (from a script guarded by ``if __name__ == "__main__":``, as "spawn" needs)::

        with ProcessPoolExecutor(workers=2) as executor:
            executor.map(operator.add, [(1, 2), (3, 4)])   # [3, 7]

    Workers start at the first task, so creating and closing one is cheap:

    >>> executor = ProcessPoolExecutor(workers=2)
    >>> executor.name
    'process'
    >>> executor.close()
    """

    name = "process"

    def __init__(self, workers=2):
        import concurrent.futures
        import multiprocessing

        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=int(workers), mp_context=multiprocessing.get_context("spawn"))

    def map(self, function, arguments):
        futures = [self._pool.submit(function, *args) for args in arguments]
        return [future.result() for future in futures]

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(Executor):
    """Tasks on a Dask ``distributed.Client``.

    Parameters
    ----------
    workers : int
        Worker processes of the ``LocalCluster`` (ignored with ``scheduler``).
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``); empty or None
        starts a ``LocalCluster`` (one thread per worker process).

    Examples
    --------
    Starting a cluster takes seconds, so this only shows the use::

        with DaskExecutor(workers=2) as executor:
            executor.map(operator.add, [(1, 2), (3, 4)])   # [3, 7]

    It is registered under its name for :func:`make_executor`:

    >>> DaskExecutor.name, EXECUTORS["dask"] is DaskExecutor
    ('dask', True)
    """

    name = "dask"

    def __init__(self, workers=2, scheduler=None):
        try:
            import distributed
        except ImportError:
            raise ExecutorUnavailable("the dask executor needs 'dask[distributed]' "
                                      "(pip install 'dask[distributed]')") from None
        self._cluster = None
        if scheduler:
            try:
                self._client = distributed.Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as error:
                raise ExecutorUnavailable(f"cannot reach Dask scheduler {scheduler}: "
                                          f"{error}") from None
        else:
            import dask

            # Quiet, local-only cluster; no dashboard (port clashes on shared hosts).
            with dask.config.set({"distributed.worker.daemon": False}):
                self._cluster = distributed.LocalCluster(
                    n_workers=int(workers), threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=40)
            self._client = distributed.Client(self._cluster)
        self._counter = 0

    def map(self, function, arguments):
        import uuid

        token = uuid.uuid4().hex[:8]
        futures = []
        for index, args in enumerate(arguments):
            self._counter += 1
            futures.append(self._client.submit(function, *args, pure=False,
                                               key=f"thermo-{token}-{self._counter}-{index}"))
        return self._client.gather(futures)

    def close(self):
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


class MPIExecutor(Executor):
    """``mpi4py.futures.MPIPoolExecutor``.

    Parameters
    ----------
    workers : int
        Processes to spawn when not started under ``python -m mpi4py.futures``
        (then the existing ranks are the workers).

    Examples
    --------
    Spawning MPI processes needs a working MPI launch, so this only shows the use::

        with MPIExecutor(workers=2) as executor:
            executor.map(operator.add, [(1, 2), (3, 4)])   # [3, 7]

    It is registered under its name for :func:`make_executor`:

    >>> MPIExecutor.name, EXECUTORS["mpi"] is MPIExecutor
    ('mpi', True)
    """

    name = "mpi"

    def __init__(self, workers=2):
        try:
            from mpi4py import futures
        except ImportError:
            raise ExecutorUnavailable("the mpi executor needs mpi4py and an MPI library "
                                      "(pip install mpi4py mpich)") from None
        self._pool = futures.MPIPoolExecutor(max_workers=int(workers))

    def map(self, function, arguments):
        futures = [self._pool.submit(function, *args) for args in arguments]
        return [future.result() for future in futures]

    def close(self):
        self._pool.shutdown(wait=True)


EXECUTORS = {"inprocess": InProcessExecutor, "process": ProcessPoolExecutor,
             "dask": DaskExecutor, "mpi": MPIExecutor}


def check_executor(name):
    """Raise unless the packages of executor ``name`` can be imported.

    Parameters
    ----------
    name : str

    Raises
    ------
    ValueError
        Unknown name.
    ExecutorUnavailable
        Missing packages.
    """
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")
    if name == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ExecutorUnavailable("the dask executor needs 'dask[distributed]' "
                                      "(pip install 'dask[distributed]')") from None
    if name == "mpi":
        try:
            from mpi4py import futures  # noqa: F401
        except ImportError:
            raise ExecutorUnavailable("the mpi executor needs mpi4py and an MPI library "
                                      "(pip install mpi4py mpich)") from None


def make_executor(name, workers=2, scheduler=None):
    """Create an executor by name.

    Parameters
    ----------
    name : {"inprocess", "process", "dask", "mpi"}
    workers : int
    scheduler : str, optional
        Dask scheduler address.

    Returns
    -------
    Executor

    Raises
    ------
    ValueError
        Unknown name.
    ExecutorUnavailable
        Missing packages.

    Examples
    --------
    >>> import operator
    >>> with make_executor("inprocess") as executor:
    ...     executor.map(operator.sub, [(5, 3), (1, 1)])
    [2, 0]
    >>> make_executor("spark")
    Traceback (most recent call last):
    ...
    ValueError: unknown executor 'spark'; choose from inprocess, process, dask, mpi
    """
    if name == "inprocess":
        return InProcessExecutor()
    if name == "process":
        return ProcessPoolExecutor(workers)
    if name == "dask":
        return DaskExecutor(workers, scheduler or None)
    if name == "mpi":
        return MPIExecutor(workers)
    raise ValueError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")
