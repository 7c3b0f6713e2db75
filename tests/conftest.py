"""Test-session set-up.

Under pytest-xdist each worker process runs on its own core: one Numba thread
per worker avoids oversubscribing the cores (which slowed small parallel
kernels down by an order of magnitude on a 2-core machine).  Must run before
Numba is imported, which conftest.py does.
"""
import os

if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
