"""Walkers: executors (in-process, process pool, Dask, MPI) and rounds of pure tasks.

See :mod:`thermo.walkers.executors` and :mod:`thermo.walkers.rounds`.
"""
from thermo.walkers.executors import (EXECUTORS, DaskExecutor, Executor, ExecutorUnavailable,
                                      InProcessExecutor, MPIExecutor, ProcessPoolExecutor,
                                      make_executor)

__all__ = ["Executor", "InProcessExecutor", "ProcessPoolExecutor", "DaskExecutor",
           "MPIExecutor", "make_executor", "EXECUTORS", "ExecutorUnavailable"]
