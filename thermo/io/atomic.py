"""Atomic file replacement: write to a temporary file, fsync, ``os.replace``.

A reader (or a resumed run after a crash) sees either the old file or the new
one, never a partly written file.
"""
from __future__ import annotations

import contextlib
import os
import tempfile

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "fsync_directory"]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_directory(path):
    """Flush a directory entry to disk (makes a preceding rename durable).

    Parameters
    ----------
    path : str or os.PathLike
        The directory.  Silently ignored on systems that cannot open
        directories.
    """
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Context manager yielding a file object that replaces ``path`` on success.

    The data go to a temporary file in the same directory, which is flushed,
    fsync'ed and renamed over ``path`` when the block exits normally.  On an
    exception the temporary file is removed and ``path`` is left untouched.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    mode : {"wb", "w"}
        Binary or text mode.

    Yields
    ------
    file object
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                                     suffix=".tmp", dir=directory)
    try:
        os.chmod(temporary, 0o666 & ~_umask())
        kwargs = {"encoding": "utf-8", "newline": ""} if mode == "w" else {}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    fsync_directory(directory)


def atomic_write_bytes(path, data):
    """Atomically replace ``path`` by ``data`` (bytes).

    Parameters
    ----------
    path : str or os.PathLike
    data : bytes
    """
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path, text):
    """Atomically replace ``path`` by ``text`` (UTF-8).

    Parameters
    ----------
    path : str or os.PathLike
    text : str
    """
    with atomic_write(path, "w") as handle:
        handle.write(text)
