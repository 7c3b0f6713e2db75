"""Readers for TATi's CSV output (run, trajectory and averages files).

TATi (the ThermodynamicAnalyticsToolkit) writes comma-separated files with a
header line:

* run files: ``step, epoch, accuracy, loss, total_energy, kinetic_energy,
  scaled_momentum, scaled_gradient, virial, scaled_noise, ...``;
* trajectory files: ``step, loss, weight0, ..., weightK, bias0, ..., biasM``;
* averages files: ``id, step, epoch, loss, ensemble_average_loss, ...``.

Files from several walkers carry a leading ``id`` column.  TATi's ``loss`` is
the *mean* loss over the data (its inverse temperature β_TATi refers to it),
whereas thermo's ``energy`` is the total; :func:`read_tati` keeps TATi's
columns unchanged and leaves conversions to the caller (β = β_TATi / N).
"""
from __future__ import annotations

import re

import numpy as np

from thermo.io.tables import read_table

__all__ = ["read_tati", "TatiFile", "PARAMETER_COLUMN"]

#: Parameter columns of a trajectory file: weight0, weight1, ..., bias0, ...
PARAMETER_COLUMN = re.compile(r"^(weight|bias)(\d+)$")


class TatiFile:
    """Contents of a TATi CSV file.

    Attributes
    ----------
    path : str
    columns : list of str
        All columns in file order.
    walker : ndarray of int or None
        The ``id`` column (walker index per row), ``None`` for single runs.
    step : ndarray of int64
    observables : dict
        Non-parameter columns (except ``id`` and ``step``) -> float arrays.
    parameter_names : list of str
        ``weight*`` then ``bias*`` columns in file order.
    theta : ndarray, shape (n_rows, d) or None
        Parameters per row; ``None`` for files without parameter columns.
    """

    def __init__(self, path, columns, values):
        self.path = str(path)
        self.columns = columns
        index = {c: i for i, c in enumerate(columns)}
        if "step" not in index:
            raise ValueError(f"{path}: no 'step' column; not a TATi run or trajectory file")
        self.step = values[:, index["step"]].astype(np.int64)
        self.walker = values[:, index["id"]].astype(np.int64) if "id" in index else None
        self.parameter_names = [c for c in columns if PARAMETER_COLUMN.match(c)]
        if self.parameter_names:
            positions = [index[c] for c in self.parameter_names]
            self.theta = np.ascontiguousarray(values[:, positions])
        else:
            self.theta = None
        self.observables = {c: values[:, index[c]].copy() for c in columns
                            if c not in ("id", "step") and not PARAMETER_COLUMN.match(c)}

    @property
    def n_rows(self):
        """Number of rows (records over all walkers)."""
        return int(self.step.shape[0])

    def walkers(self):
        """Sorted walker indices present (``[0]`` for single-walker files).

        Returns
        -------
        list of int
        """
        if self.walker is None:
            return [0]
        return sorted(int(w) for w in np.unique(self.walker))

    def select(self, walker):
        """Row mask of one walker.

        Parameters
        ----------
        walker : int

        Returns
        -------
        ndarray of bool
        """
        if self.walker is None:
            if walker != 0:
                raise ValueError(f"{self.path} holds a single walker; walker {walker} "
                                 "does not exist")
            return np.ones(self.n_rows, dtype=bool)
        mask = self.walker == walker
        if not mask.any():
            raise ValueError(f"{self.path} has no rows for walker id {walker}")
        return mask


def read_tati(path):
    """Read a TATi run, trajectory or averages CSV file.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    TatiFile

    Raises
    ------
    ValueError
        For missing files, ragged or non-numeric rows, or a file without a
        ``step`` column.
    """
    columns, values = read_table(path)
    if values.shape[0] == 0:
        raise ValueError(f"{path} has a header but no rows")
    return TatiFile(path, columns, values)
