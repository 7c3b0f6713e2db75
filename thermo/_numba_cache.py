"""Numba set-up done once before any thermo kernel compiles or loads.

1. Start Numba's threading layer.  A kernel loaded from the disk cache that
   calls a ``parallel=True`` kernel (the network gradients) segfaults when the
   threading layer was never launched in this process, which happens whenever
   nothing was compiled fresh (Numba launches it lazily during compilation).

2. Make Numba's on-disk cache index tolerant of unpicklable signatures.

thermo's kernels are specialised on the NamedTuple class of each potential
(see :mod:`thermo.potentials.base`).  Numba keeps one index file per cached
function that pickles *every* signature compiled so far, so a potential class
defined in a user's script (``__main__``) or a test module ends up in the index
of shared kernels such as the samplers'.  Another process that cannot import
that class then fails inside ``pickle.loads`` with ``ModuleNotFoundError`` or
``AttributeError`` before compiling anything.

We treat such an index like a stale one: it is ignored (Numba recompiles and
writes a fresh index).  Entries for importable classes are lost with it and
recompiled once; correctness never depends on the cache.
"""
from __future__ import annotations

import pickle

from numba.core import caching

_UNREADABLE = (ImportError, AttributeError, pickle.UnpicklingError, EOFError,
               TypeError, ValueError)


def _install():
    index_class = caching.IndexDataCacheFile
    if getattr(index_class, "_thermo_tolerant", False):
        return
    original = index_class._load_index

    def _load_index(self):
        try:
            return original(self)
        except _UNREADABLE:
            return {}

    index_class._load_index = _load_index
    index_class._thermo_tolerant = True


def _launch_threading_layer():
    try:
        from numba.np.ufunc.parallel import _launch_threads
    except ImportError:  # pragma: no cover - private API moved in a later Numba
        return
    _launch_threads()


_launch_threading_layer()
_install()
