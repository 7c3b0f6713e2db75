"""The chunked run driver: streaming output, checkpoints, resume, signals.

A long computation (sampling, optimisation, walker rounds) is advanced in
chunks of steps by an *advance* function that continues from a state, as
``thermo.sample(..., state=run.state)`` does.  After each chunk the driver

* appends the chunk's records to ``observables.csv`` and its θ records to
  ``trajectory.h5`` (and hill lines to ``HILLS``), so memory holds one
  chunk at most;
* every ``checkpoint_every`` records, flushes and fsyncs those files and
  then atomically replaces ``checkpoint.npz`` with the state, the step and
  record counts and the file sizes at that moment;
* on SIGINT/SIGTERM (caught between chunks) writes a checkpoint and stops
  with exit status 128 + signal number.

``--resume`` loads the checkpoint, truncates every output file to the size
it had at checkpoint time (dropping records written after it) and continues.
Because chunk boundaries never change the numbers (chunked == whole), the
resumed run is bit-identical to an uninterrupted one.
"""
from __future__ import annotations

import os
import signal
import time

__all__ = ["Driver", "ChunkOutput", "CHECKPOINT", "OBSERVABLES", "TRAJECTORY", "HILLS"]

CHECKPOINT = "checkpoint.npz"
OBSERVABLES = "observables.csv"
TRAJECTORY = "trajectory.h5"
HILLS = "HILLS"

#: Most bytes of θ records one chunk may hold in memory.
CHUNK_TRAJECTORY_BYTES = 32 << 20
#: Target wall time of one chunk (signals are handled between chunks).
CHUNK_SECONDS = 1.0


class ChunkOutput:
    """What an advance function returns for one chunk.

    Parameters
    ----------
    state : object
        State after the chunk (encodable by :mod:`thermo.io.checkpoint`).
    steps_done : int
        Total steps done after the chunk.
    observables : dict
        Column -> 1-D array of the chunk's records (rows of all walkers,
        with a ``walker`` column in multi-walker runs).
    record_steps : ndarray of int
        Step of each trajectory record of the chunk.
    trajectory : ndarray or None
        θ records, shape (n, d) or (n, W, d).
    hills : str
        Lines to append to the hills file.
    finished : bool
        The computation ended early (an optimizer converged); no more chunks.
    """

    __slots__ = ("state", "steps_done", "observables", "record_steps", "trajectory", "hills",
                 "finished")

    def __init__(self, state, steps_done, observables, record_steps, trajectory=None,
                 hills="", finished=False):
        self.state = state
        self.steps_done = int(steps_done)
        self.observables = observables
        self.record_steps = record_steps
        self.trajectory = trajectory
        self.hills = hills
        self.finished = bool(finished)


class _Signals:
    """Catch SIGINT/SIGTERM while the block runs; remember the first one."""

    def __init__(self):
        self.received = None
        self._previous = {}

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.received is None:
            self.received = signum
        else:  # second signal: give up at once
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class Driver:
    """Run an advance function in chunks with streamed output and checkpoints.

    Parameters
    ----------
    context : thermo.cli.common.Context
    directory : str
        The run directory (exists).
    advance : callable
        ``advance(state, n_steps) -> ChunkOutput``; ``state`` is ``None`` for
        the first chunk of a fresh run.
    total_steps : int
    record_every : int
        Steps between records.
    checkpoint_every : int
        Records between checkpoints (0: only at the end and on signals).
    columns : sequence of str or None
        Observable columns of the CSV file; None takes those of the first
        chunk (or, on resume, the header of the existing file).
    dimension : int
        Length of θ.
    dtype : numpy dtype
        dtype of θ.
    trajectory : bool
        Write ``trajectory.h5``.
    walkers : int, optional
        Number of walkers for a (n, W, d) trajectory; None for one walker.
    quantum : int
        Chunk lengths are multiples of this many steps (e.g. the round length
        of coupled walkers), except the last.
    hills : bool
        Keep a hills file.
    hills_header : str
        Text written at the top of a new hills file.
    extra : callable, optional
        ``extra() -> dict`` of further checkpoint content (e.g. bias state).
    """

    def __init__(self, context, directory, advance, *, total_steps, record_every,
                 checkpoint_every, columns, dimension, dtype, trajectory=True, walkers=None,
                 quantum=1, hills=False, hills_header="", extra=None):
        self.context = context
        self.directory = directory
        self.advance = advance
        self.total_steps = int(total_steps)
        self.record_every = int(record_every)
        self.checkpoint_every = int(checkpoint_every)
        self.columns = None if columns is None else list(columns)
        self.dimension = int(dimension)
        self.dtype = dtype
        self.trajectory = bool(trajectory)
        self.walkers = walkers
        self.quantum = max(1, int(quantum))
        self.hills = bool(hills)
        self.hills_header = hills_header
        self.extra = extra
        self.state = None
        self.steps_done = 0
        self.records = 0
        self.finished = False
        self._writers = {}

    # -- paths
    def path(self, name):
        """Path of a file of the run directory."""
        return os.path.join(self.directory, name)

    # -- opening and resuming
    def _open(self, resume):
        from thermo.io.trajectory import TrajectoryWriter

        marks = resume or {}
        self._csv_resume = marks.get("csv_bytes")
        if resume is not None and self.columns is None:
            with open(self.path(OBSERVABLES), encoding="utf-8") as handle:
                self.columns = handle.readline().strip().split(",")
        if self.columns is not None:
            self._open_csv()
        if self.trajectory:
            self._writers["h5"] = TrajectoryWriter(
                self.path(TRAJECTORY), self.dimension, dtype=self.dtype, walkers=self.walkers,
                resume_records=marks.get("h5_records"))
        if self.hills:
            from thermo.io.observables import truncate_file

            path = self.path(HILLS)
            if resume is not None:
                truncate_file(path, marks.get("hills_bytes", 0))
                self._writers["hills"] = open(path, "a", encoding="utf-8")
            else:
                self._writers["hills"] = open(path, "w", encoding="utf-8")
                self._writers["hills"].write(self.hills_header)

    def _open_csv(self):
        from thermo.io.observables import ObservableWriter

        self._writers["csv"] = ObservableWriter(self.path(OBSERVABLES), self.columns,
                                                resume_size=self._csv_resume)

    def resume(self, checkpoint):
        """Continue from a loaded checkpoint (truncates the output files).

        Parameters
        ----------
        checkpoint : dict
            As written by :meth:`checkpoint`.
        """
        self.state = checkpoint["state"]
        self.steps_done = int(checkpoint["steps_done"])
        self.records = int(checkpoint["records"])
        self.finished = bool(checkpoint.get("finished", False))
        self._open(checkpoint["files"])
        return checkpoint

    def start(self):
        """Start a fresh run (creates the output files)."""
        self._open(None)

    # -- checkpoints
    def _flush(self):
        if "csv" not in self._writers:  # no chunk yet: an empty table
            if self.columns is None:
                self.columns = ["step"]
            self._open_csv()
        marks = {"csv_bytes": self._writers["csv"].flush()}
        if "h5" in self._writers:
            marks["h5_records"] = self._writers["h5"].flush()
        if "hills" in self._writers:
            handle = self._writers["hills"]
            handle.flush()
            os.fsync(handle.fileno())
            marks["hills_bytes"] = os.path.getsize(self.path(HILLS))
        return marks

    def checkpoint(self):
        """Flush all outputs, then atomically write ``checkpoint.npz``."""
        from thermo.io.checkpoint import save_checkpoint

        content = {"state": self.state, "steps_done": self.steps_done,
                   "records": self.records, "files": self._flush(),
                   "finished": self.finished}
        if self.extra is not None:
            content["extra"] = self.extra()
        save_checkpoint(self.path(CHECKPOINT), content)

    def close(self):
        """Close the output files (flushing them)."""
        for key in ("csv", "h5"):
            if key in self._writers:
                self._writers[key].close()
        if "hills" in self._writers:
            self._writers["hills"].close()
        self._writers = {}

    # -- the loop
    def _chunk_steps(self, seconds_per_step):
        remaining = self.total_steps - self.steps_done
        record_bytes = self.dimension * self._itemsize() * (self.walkers or 1)
        limit_records = max(1, CHUNK_TRAJECTORY_BYTES // max(record_bytes, 1))
        limit = limit_records * self.record_every if self.trajectory else remaining
        if seconds_per_step is not None and seconds_per_step > 0:
            limit = min(limit, max(1, int(CHUNK_SECONDS / seconds_per_step)))
        else:
            limit = min(limit, 10 * self.record_every)
        if self.checkpoint_every:
            # end chunks on checkpoint boundaries (records at multiples of
            # record_every * checkpoint_every steps)
            period = self.record_every * self.checkpoint_every
            next_boundary = (self.steps_done // period + 1) * period
            limit = min(limit, next_boundary - self.steps_done)
        n = min(limit, remaining)
        if self.quantum > 1 and n < remaining:
            n = max(self.quantum, n // self.quantum * self.quantum)
            n = min(n, remaining)
        return max(1, n)

    def _itemsize(self):
        import numpy as np
        return np.dtype(self.dtype).itemsize

    def _write(self, output):
        import numpy as np

        if "csv" not in self._writers:
            if self.columns is None:
                from thermo.io.observables import order_columns

                self.columns = order_columns(output.observables)
            self._open_csv()
        elif set(output.observables) != set(self.columns):
            raise RuntimeError(f"records have columns {sorted(output.observables)}, the "
                               f"file {sorted(self.columns)}")
        self._writers["csv"].write(output.observables)
        if "h5" in self._writers and output.trajectory is not None:
            self._writers["h5"].append(output.trajectory, output.record_steps)
        if "hills" in self._writers and output.hills:
            self._writers["hills"].write(output.hills)
        self.records += int(np.asarray(output.record_steps).shape[0])

    def run(self):
        """Advance to ``total_steps``; return the exit status (0, or 128+signal).

        Returns
        -------
        int
        """
        seconds_per_step = None
        last_checkpoint_records = self.records
        progress = self.context.progress(self.total_steps, initial=self.steps_done)
        status = 0
        try:
            with _Signals() as signals:
                while self.steps_done < self.total_steps and not self.finished:
                    n = self._chunk_steps(seconds_per_step)
                    started = time.perf_counter()
                    output = self.advance(self.state, n)
                    elapsed = time.perf_counter() - started
                    if output.steps_done != self.steps_done + n and not output.finished:
                        raise RuntimeError(f"advance did {output.steps_done - self.steps_done}"
                                           f" steps instead of {n}")
                    self._write(output)
                    self.state = output.state
                    progress.update(output.steps_done - self.steps_done)
                    self.steps_done = output.steps_done
                    seconds_per_step = elapsed / n if n else None
                    due = (self.checkpoint_every
                           and self.records - last_checkpoint_records >= self.checkpoint_every)
                    if due or signals.received is not None:
                        self.checkpoint()
                        last_checkpoint_records = self.records
                    if signals.received is not None:
                        status = 128 + int(signals.received)
                        break
                    if output.finished:
                        self.finished = True
                        break
                if status == 0:
                    self.checkpoint()
        finally:
            progress.close()
            self.close()
        if status:
            name = signal.Signals(status - 128).name
            self.context.warn(f"stopped by {name} after step {self.steps_done}; checkpoint "
                              f"written, continue with --resume")
        return status

