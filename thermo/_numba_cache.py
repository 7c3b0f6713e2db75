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

3. Make a cached kernel stale when any thermo module changes.

Numba checks only the source file of the cached function itself, while a
compiled kernel contains the code of every jitted function and intrinsic it
calls, from other modules too.  After an update that changes a helper but
not its callers' files (``git pull`` on the editable install the README
uses), the callers would keep running the old helper's code, silently.  So
the freshness stamp of every cached function whose file lies outside the
installed third-party packages (thermo's modules, the project's tests and
benchmarks, user scripts) also carries a fingerprint of thermo's source: the
SHA-256 of all its ``.py`` files (~90 files, 1.2 MB, read once per process
when the first cached kernel is looked up).  Any change to thermo
recompiles those kernels once.
"""
from __future__ import annotations

import functools
import hashlib
import os
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


PACKAGE = os.path.dirname(os.path.abspath(__file__))
_THIRD_PARTY = ("site-packages", "dist-packages")


def source_fingerprint(root=PACKAGE):
    """SHA-256 (hex) of the ``.py`` files below ``root``, with their relative paths.

    Parameters
    ----------
    root : str
        A package directory (default: thermo's).

    Returns
    -------
    str
        64 hex digits; changes when any module is edited, added, removed or
        renamed.

    Examples
    --------
    >>> len(source_fingerprint())
    64
    """
    digest = hashlib.sha256()
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                digest.update(os.path.relpath(path, root).encode() + b"\0")
                with open(path, "rb") as handle:
                    digest.update(handle.read())
                digest.update(b"\0")
    return digest.hexdigest()


_package_fingerprint = functools.lru_cache(maxsize=1)(source_fingerprint)


def _stamped_by_package(py_file):
    """Whether a cached function in ``py_file`` depends on thermo's fingerprint
    (thermo itself, or any file outside installed third-party packages)."""
    path = os.path.abspath(py_file)
    if path.startswith(PACKAGE + os.sep):
        return True
    return not any(part in _THIRD_PARTY for part in path.split(os.sep))


def _install_fingerprint():
    mixin = caching._SourceFileBackedLocatorMixin
    if getattr(mixin, "_thermo_fingerprint", False):
        return
    original = mixin.get_source_stamp

    def get_source_stamp(self):
        stamp = original(self)
        if _stamped_by_package(getattr(self, "_py_file", "")):
            return (stamp, _package_fingerprint())
        return stamp

    mixin.get_source_stamp = get_source_stamp
    mixin._thermo_fingerprint = True
    mixin._thermo_original_get_source_stamp = original      # to compare against


def _launch_threading_layer():
    try:
        from numba.np.ufunc.parallel import _launch_threads
    except ImportError:  # pragma: no cover - private API moved in a later Numba
        return
    _launch_threads()


_launch_threading_layer()
_install()
_install_fingerprint()
