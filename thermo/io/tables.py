"""Numeric CSV tables: strict reading with one-line error messages.

Used for thermo's own ``observables.csv`` and for TATi's run, trajectory and
averages files (:mod:`thermo.io.tati`).
"""
from __future__ import annotations

import csv
import math
import os

import numpy as np

__all__ = ["read_table", "write_table"]


def read_table(path, allow_nonfinite=True):
    """Read a CSV file with a header line and numeric cells.

    Parameters
    ----------
    path : str or os.PathLike
    allow_nonfinite : bool
        Accept ``nan``/``inf`` cells (observables such as accuracy may be NaN).

    Returns
    -------
    columns : list of str
    values : ndarray of float64, shape (n_rows, n_columns)

    Raises
    ------
    ValueError
        For a missing or empty file, ragged rows or non-numeric cells, with
        the file name and line number.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"file {path!r} does not exist")
    try:
        handle = open(path, encoding="utf-8", newline="")
    except OSError as error:
        raise ValueError(f"cannot read {path!r}: {error.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path} is empty") from None
        except (csv.Error, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not a CSV file: {error}") from None
        columns = [c.strip() for c in header]
        if not columns or any(not c for c in columns):
            raise ValueError(f"{path}: header line has empty column names")
        if len(set(columns)) != len(columns):
            raise ValueError(f"{path}: header line repeats a column name")
        rows = []
        try:
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(columns):
                    raise ValueError(f"{path}, line {reader.line_num}: {len(row)} fields, "
                                     f"header has {len(columns)}")
                try:
                    values = [float(c) for c in row]
                except ValueError:
                    raise ValueError(f"{path}, line {reader.line_num}: "
                                     "non-numeric value") from None
                if not allow_nonfinite and not all(math.isfinite(v) for v in values):
                    raise ValueError(f"{path}, line {reader.line_num}: NaN or inf value")
                rows.append(values)
        except (csv.Error, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not a CSV file: {error}") from None
    values = np.array(rows, dtype=np.float64).reshape(len(rows), len(columns))
    return columns, values


def write_table(path, columns, values, integer_columns=()):
    """Atomically write a numeric table as CSV (round-trip float format).

    Parameters
    ----------
    path : str or os.PathLike
    columns : sequence of str
    values : array_like, shape (n_rows, n_columns)
    integer_columns : collection of str
        Columns written as integers.
    """
    from thermo.io.atomic import atomic_write

    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(columns):
        raise ValueError(f"table of shape {values.shape} does not match "
                         f"{len(columns)} columns")
    integer = [c in integer_columns for c in columns]
    with atomic_write(path, "w") as handle:
        handle.write(",".join(columns) + "\n")
        for row in values.tolist():
            handle.write(",".join(str(int(v)) if is_int else repr(v)
                                  for v, is_int in zip(row, integer)) + "\n")
