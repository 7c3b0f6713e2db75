"""Scalar observables as CSV: one row per record, streamed to disk.

File ``observables.csv`` of a run directory.  The first line is the header;
every further line is one record.  Numbers are written with Python's
shortest round-trip representation, so reading the file back gives the
float64 values bit for bit.  Only the columns that the run produces appear,
in the order of the table below; unknown columns are refused.

Columns
-------
============================ ======= ==================================================================
column                       unit    meaning
============================ ======= ==================================================================
walker                       1       walker index (0-based), only in multi-walker runs
step                         1       number of steps done when the record was taken (1-based)
energy                       U       potential energy U(θ): total loss over the data + prior
kinetic_energy               U       |p|²/2 with p right after the O step
kinetic_temperature          1/β     |p|²/d, equals 1/β at equilibrium
configurational_temperature  1/β     θ·∇(U+V)/d; its average estimates 1/β
virial                       1/β     θ·∇(U+V)/d (same as configurational_temperature, TATi's name)
gradient_norm                U/θ     |∇(U+V)(θ)| as used by the step (minibatch estimate)
noise_norm                   θ       norm of the noise vector added to θ or p in the step
bias_energy                  U       bias V(θ) (metadynamics), 0 without bias
bias_weight_log              1       log reweighting factor β (V(s) − c(t)); 0 without bias
accuracy                     1       classification accuracy on the training data (NaN if none)
acceptance                   1       HMC Metropolis acceptance (0/1 per step or a rate)
thermostat                   1/time  CCAdL thermostat variable ξ
full_energy                  U       exact (full-batch) U(θ), when asked for with a minibatch potential
laplacian                    U/θ²    ∇²U(θ), for the configurational temperature |∇U|²/∇²U
step_size                    θ²/U    optimizer step length α of the step (Barzilai-Borwein)
loss                         U/N     mean loss per training point (optimizer runs)
============================ ======= ==================================================================

Units: ``U`` is the unit of the potential energy (the loss summed over the N
training points, the prior included), ``θ`` the unit of the parameters, ``β``
the inverse temperature in 1/U.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["COLUMNS", "ObservableWriter", "order_columns", "truncate_file",
           "format_value"]

#: Documented columns: name -> (unit, description).  Order is file order.
COLUMNS = {
    "walker": ("1", "walker index (0-based), only in multi-walker runs"),
    "step": ("1", "number of steps done when the record was taken (1-based)"),
    "energy": ("U", "potential energy U(θ): total loss over the data + prior"),
    "kinetic_energy": ("U", "|p|²/2 with p right after the O step"),
    "kinetic_temperature": ("1/β", "|p|²/d, equals 1/β at equilibrium"),
    "configurational_temperature": ("1/β", "θ·∇(U+V)/d; its average estimates 1/β"),
    "virial": ("1/β", "θ·∇(U+V)/d (same as configurational_temperature, TATi's name)"),
    "gradient_norm": ("U/θ", "|∇(U+V)(θ)| as used by the step (minibatch estimate)"),
    "noise_norm": ("θ", "norm of the noise vector added to θ or p in the step"),
    "bias_energy": ("U", "bias V(θ) (metadynamics), 0 without bias"),
    "bias_weight_log": ("1", "log reweighting factor β (V(s) − c(t)); 0 without bias"),
    "accuracy": ("1", "classification accuracy on the training data (NaN if none)"),
    "acceptance": ("1", "HMC Metropolis acceptance (0/1 per step or a rate)"),
    "thermostat": ("1/time", "CCAdL thermostat variable ξ"),
    "full_energy": ("U", "exact (full-batch) U(θ), when asked for with a minibatch potential"),
    "laplacian": ("U/θ²", "∇²U(θ), for the configurational temperature |∇U|²/∇²U"),
    "step_size": ("θ²/U", "optimizer step length α of the step (Barzilai-Borwein)"),
    "loss": ("U/N", "mean loss per training point (optimizer runs)"),
}

_INTEGER_COLUMNS = {"walker", "step"}


def order_columns(names):
    """Sort observable names into file order, refusing undocumented ones.

    Parameters
    ----------
    names : iterable of str

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        For a name not in :data:`COLUMNS`.
    """
    names = list(names)
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise ValueError(f"observable column(s) {', '.join(unknown)} are not documented "
                         "in thermo.io.observables.COLUMNS")
    order = list(COLUMNS)
    return sorted(set(names), key=order.index)


def format_value(value, integer=False):
    """Text of one CSV cell (shortest round-trip float representation).

    Parameters
    ----------
    value : number
    integer : bool
        Write as an integer.

    Returns
    -------
    str
    """
    if integer:
        return str(int(value))
    return repr(float(value))


def truncate_file(path, size):
    """Cut a file down to ``size`` bytes and fsync it.

    Parameters
    ----------
    path : str or os.PathLike
    size : int

    Raises
    ------
    ValueError
        If the file is shorter than ``size`` (records the checkpoint relies
        on are missing).
    """
    actual = os.path.getsize(path)
    if actual < size:
        raise ValueError(f"{os.fspath(path)} has {actual} bytes but the checkpoint "
                         f"expects at least {size}; the run directory is damaged")
    with open(path, "r+b") as handle:
        handle.truncate(size)
        handle.flush()
        os.fsync(handle.fileno())


class ObservableWriter:
    """Append records to ``observables.csv`` as they are produced.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.
    columns : sequence of str
        Column names (documented in :data:`COLUMNS`), put into file order.
    resume_size : int, optional
        Continue an existing file: truncate it to this many bytes (the size
        saved in the checkpoint) and append.  The header must match.
    """

    def __init__(self, path, columns, resume_size=None):
        self.path = os.fspath(path)
        self.columns = order_columns(columns)
        header = ",".join(self.columns) + "\n"
        if resume_size is None:
            self._handle = open(self.path, "w", encoding="utf-8", newline="")
            self._handle.write(header)
        else:
            with open(self.path, encoding="utf-8") as handle:
                existing = handle.readline()
            if existing != header:
                raise ValueError(f"{self.path} has columns {existing.strip()!r}, "
                                 f"expected {header.strip()!r}")
            truncate_file(self.path, resume_size)
            self._handle = open(self.path, "a", encoding="utf-8", newline="")

    def write(self, observables, walker=None):
        """Append the records in ``observables``.

        Parameters
        ----------
        observables : dict
            name -> 1-D array, all of one length; must contain every column
            of the file (``walker`` is filled from the argument).
        walker : int, optional
            Walker index for the ``walker`` column.
        """
        data = dict(observables)
        if "walker" in self.columns and "walker" not in data:
            if walker is None:
                raise ValueError("this file has a walker column; pass walker=")
            n = len(np.asarray(data["step"]))
            data["walker"] = np.full(n, walker, dtype=np.int64)
        missing = [c for c in self.columns if c not in data]
        if missing:
            raise ValueError(f"records lack column(s) {', '.join(missing)}")
        arrays = [np.asarray(data[c]) for c in self.columns]
        n = len(arrays[0])
        if any(len(a) != n for a in arrays):
            raise ValueError("observable arrays differ in length")
        converted = [a.astype(np.int64).tolist() if c in _INTEGER_COLUMNS
                     else a.astype(np.float64).tolist()
                     for c, a in zip(self.columns, arrays)]
        lines = []
        for row in zip(*converted):
            lines.append(",".join(str(v) if isinstance(v, int) else repr(v) for v in row))
        if lines:
            self._handle.write("\n".join(lines) + "\n")

    def flush(self):
        """Flush and fsync; return the file size in bytes.

        Returns
        -------
        int
        """
        self._handle.flush()
        os.fsync(self._handle.fileno())
        return os.path.getsize(self.path)

    def close(self):
        """Flush and close the file."""
        if not self._handle.closed:
            self.flush()
            self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
