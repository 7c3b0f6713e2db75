"""Trajectories of θ in HDF5, streamed to disk in chunks.

File ``trajectory.h5`` of a run directory:

========== ================= ===================================================
dataset    shape             meaning
========== ================= ===================================================
``theta``  (n, d)            θ at each record (single walker), dtype of θ
``theta``  (n, W, d)         θ of each of W walkers at each record
``step``   (n,)              steps done at each record (int64, 1-based)
========== ================= ===================================================

Both datasets are resizable along the first axis (``maxshape=(None, ...)``)
and chunked in blocks of whole records (about 1 MiB per chunk), so a run of
any length is written record block by record block without ever holding the
whole trajectory in memory.  The file attributes ``format`` (``"thermo
trajectory 1"``), ``dimension`` and ``walkers`` describe the layout.

Reading needs h5py alone::

    with h5py.File("run/trajectory.h5", "r") as f:
        theta = f["theta"][1000::10]     # records 1000, 1010, ...
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["TrajectoryWriter", "read_trajectory", "trajectory_length", "FORMAT"]

FORMAT = "thermo trajectory 1"
_CHUNK_BYTES = 1 << 20


def _h5py():
    import h5py
    return h5py


class TrajectoryWriter:
    """Append records of θ to an HDF5 file.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.h5`` file; created (or truncated) unless resuming.
    dimension : int
        Length d of θ.
    dtype : numpy dtype
        Floating type of θ.
    walkers : int, optional
        Number of walkers W; ``None`` for a single trajectory of shape (n, d).
    resume_records : int, optional
        Continue an existing file: drop records after the first
        ``resume_records`` (those written after the checkpoint) and append.
    """

    def __init__(self, path, dimension, dtype=np.float64, walkers=None,
                 resume_records=None):
        h5py = _h5py()
        self.path = os.fspath(path)
        self.dimension = int(dimension)
        self.dtype = np.dtype(dtype)
        self.walkers = None if walkers is None else int(walkers)
        self._record_shape = ((self.dimension,) if self.walkers is None
                              else (self.walkers, self.dimension))
        record_bytes = int(np.prod(self._record_shape)) * self.dtype.itemsize
        chunk_records = min(4096, max(1, _CHUNK_BYTES // max(record_bytes, 1)))
        cache = max(4 * _CHUNK_BYTES, 2 * chunk_records * record_bytes)
        if resume_records is None:
            self._file = h5py.File(self.path, "w", rdcc_nbytes=cache)
            self._file.attrs["format"] = FORMAT
            self._file.attrs["dimension"] = self.dimension
            self._file.attrs["walkers"] = 0 if self.walkers is None else self.walkers
            self._theta = self._file.create_dataset(
                "theta", shape=(0,) + self._record_shape,
                maxshape=(None,) + self._record_shape,
                chunks=(chunk_records,) + self._record_shape, dtype=self.dtype)
            self._step = self._file.create_dataset(
                "step", shape=(0,), maxshape=(None,),
                chunks=(max(chunk_records, 1024),), dtype=np.int64)
        else:
            try:
                self._file = h5py.File(self.path, "r+", rdcc_nbytes=cache)
            except OSError as error:
                raise ValueError(f"cannot reopen {self.path} to resume: {error}") from None
            if "theta" not in self._file or "step" not in self._file:
                self._file.close()
                raise ValueError(f"{self.path} is not a thermo trajectory file")
            self._theta = self._file["theta"]
            self._step = self._file["step"]
            if self._theta.shape[1:] != self._record_shape:
                shape = self._theta.shape[1:]
                self._file.close()
                raise ValueError(f"{self.path} holds records of shape {shape}, "
                                 f"expected {self._record_shape}")
            if self._theta.shape[0] < resume_records or self._step.shape[0] < resume_records:
                n = min(self._theta.shape[0], self._step.shape[0])
                self._file.close()
                raise ValueError(f"{self.path} has {n} records but the checkpoint "
                                 f"expects {resume_records}; the run directory is damaged")
            self._theta.resize(resume_records, axis=0)
            self._step.resize(resume_records, axis=0)
            self._file.flush()

    @property
    def n_records(self):
        """Number of records in the file."""
        return int(self._step.shape[0])

    def append(self, theta, steps):
        """Append a block of records.

        Parameters
        ----------
        theta : array_like
            Shape (n, d) or (n, W, d).
        steps : array_like of int
            Shape (n,).
        """
        theta = np.asarray(theta)
        steps = np.asarray(steps, dtype=np.int64).reshape(-1)
        if theta.shape != (steps.shape[0],) + self._record_shape:
            raise ValueError(f"trajectory block has shape {theta.shape}, expected "
                             f"({steps.shape[0]}, {', '.join(map(str, self._record_shape))})")
        n = steps.shape[0]
        if n == 0:
            return
        start = self.n_records
        self._theta.resize(start + n, axis=0)
        self._theta[start:start + n] = theta
        self._step.resize(start + n, axis=0)
        self._step[start:start + n] = steps

    def flush(self):
        """Write everything to disk; return the number of records.

        Returns
        -------
        int
        """
        self._file.flush()
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return self.n_records

    def close(self):
        """Flush and close the file."""
        if self._file.id.valid:
            self._file.flush()
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def trajectory_length(path):
    """Number of records in a trajectory file.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    int
    """
    with _h5py().File(os.fspath(path), "r") as handle:
        return int(handle["step"].shape[0])


def read_trajectory(path, start=0, stop=None, every=1, walker=None):
    """Read (part of) a trajectory into memory.

    Parameters
    ----------
    path : str or os.PathLike
    start, stop, every : int
        Record slice ``start:stop:every``.
    walker : int, optional
        For multi-walker files, the walker to return; ``None`` returns all.

    Returns
    -------
    steps : ndarray of int64, shape (n,)
    theta : ndarray, shape (n, d) or (n, W, d)
    """
    with _h5py().File(os.fspath(path), "r") as handle:
        if "theta" not in handle or "step" not in handle:
            raise ValueError(f"{os.fspath(path)} is not a thermo trajectory file")
        selection = slice(start, stop, every)
        steps = handle["step"][selection]
        dataset = handle["theta"]
        if walker is not None:
            if dataset.ndim != 3:
                raise ValueError(f"{os.fspath(path)} holds a single walker")
            if not 0 <= walker < dataset.shape[1]:
                raise ValueError(f"walker {walker} out of range 0..{dataset.shape[1] - 1}")
            theta = dataset[selection, walker, :]
        else:
            theta = dataset[selection]
    return steps, theta
