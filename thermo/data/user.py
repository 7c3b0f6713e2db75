"""User data sets: validated NumPy arrays and CSV files.

:func:`from_arrays` checks and converts arrays a user brings; :func:`load_csv`
reads a CSV file with a header row and :func:`save_csv` writes one.  TATi's
CSV data sets have the columns ``x1,x2,...,label`` with labels -1/+1; both
directions support that layout (see `signed_labels`).

Conventions: features ``X`` are a 2-D float array (n examples x d features);
for classification ``y`` holds int64 class indices in ``[0, n_classes)``, for
regression float targets of shape ``(n,)`` or ``(n, k)``.
"""
import csv
import numbers
import os
from pathlib import Path

import numpy as np

__all__ = ["from_arrays", "load_csv", "save_csv"]

_TASKS = ("classification", "regression")


def _check_task(task):
    if task not in _TASKS:
        raise ValueError(f"task must be one of {_TASKS}, got {task!r}")


def _check_count(value, name):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return int(value)


def _numeric(a, name):
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    return a


def from_arrays(X, y, n_features=None, n_classes=None, task="classification", dtype=np.float64):
    """Validate and convert a user data set given as arrays.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Features, real numbers, all finite.
    y : array_like, shape (n,) or (n, k)
        Classification: class indices in ``[0, n_classes)``, integers or
        integer-valued floats, shape (n,) or (n, 1).  Regression: finite real
        targets of shape (n,) or (n, k).
    n_features : int, optional
        Required number of features d; checked when given.
    n_classes : int, optional
        Number of classes (classification only).  When None, ``max(y) + 1``.
    task : {"classification", "regression"}
        What `y` holds.
    dtype : numpy floating dtype
        Dtype of the returned features (and regression targets).

    Returns
    -------
    X : numpy.ndarray, shape (n, d)
        C-contiguous array of `dtype` (a copy when conversion was needed).
    y : numpy.ndarray, shape (n,) or (n, k)
        int64 class indices (classification), or `dtype` targets (regression).

    Raises
    ------
    TypeError
        If an array is not numeric or an argument has the wrong type.
    ValueError
        If X is not 2-D or empty, lengths differ, values are not finite, a
        label is not an integer in range, or `n_features` does not match.

    Examples
    --------
    >>> X, y = from_arrays([[0.0, 1.0], [1.0, 0.0]], [0.0, 1.0])
    >>> y.dtype
    dtype('int64')
    """
    _check_task(task)
    n_features = _check_count(n_features, "n_features")
    n_classes = _check_count(n_classes, "n_classes")
    if n_classes is not None and task != "classification":
        raise ValueError("n_classes is only meaningful for task='classification'")
    try:
        dtype = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype {dtype!r} is not a numpy dtype") from exc
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")

    X = _numeric(X, "X")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n examples x d features), got shape {X.shape}")
    n, d = X.shape
    if n == 0 or d == 0:
        raise ValueError(f"X is empty (shape {X.shape}); need at least one example and one feature")
    if n_features is not None and d != n_features:
        raise ValueError(f"X has {d} features (columns), expected n_features={n_features}")
    X = np.ascontiguousarray(X, dtype=dtype)
    if not np.all(np.isfinite(X)):
        bad = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(f"X must be finite; X[{bad[0]}, {bad[1]}] = {X[bad[0], bad[1]]}")

    y = _numeric(y, "y")
    if y.ndim == 0 or y.ndim > 2:
        raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"X and y have different lengths: {n} examples in X, {y.shape[0]} in y")
    if task == "regression":
        y = np.ascontiguousarray(y, dtype=dtype)
        if not np.all(np.isfinite(y)):
            bad = np.argwhere(~np.isfinite(y))[0]
            raise ValueError(f"regression targets must be finite; y[{', '.join(map(str, bad))}] "
                             f"= {y[tuple(bad)]}")
        return X, y

    if y.ndim == 2:
        if y.shape[1] != 1:
            raise ValueError(f"class labels must have shape (n,) or (n, 1), got {y.shape}; "
                             f"one-hot labels? pass y.argmax(axis=1)")
        y = y[:, 0]
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            bad = int(np.flatnonzero(~np.isfinite(y))[0])
            raise ValueError(f"class labels must be finite; y[{bad}] = {y[bad]}")
        if np.any(y != np.round(y)):
            bad = int(np.flatnonzero(y != np.round(y))[0])
            raise ValueError(f"class labels must be integers; y[{bad}] = {y[bad]}")
        if np.any(np.abs(y) > 2.0 ** 53):
            raise ValueError("class labels are too large to be class indices")
    y = y.astype(np.int64)
    if y.min() < 0:
        bad = int(np.argmin(y))
        hint = (" (labels -1/+1 as in TATi? convert with thermo.data.toy.from_signed_labels)"
                if set(np.unique(y).tolist()) <= {-1, 1} else "")
        raise ValueError(f"class labels must be non-negative; y[{bad}] = {y[bad]}{hint}")
    if n_classes is not None and y.max() >= n_classes:
        bad = int(np.argmax(y >= n_classes))
        raise ValueError(f"class labels must lie in [0, {n_classes}) (n_classes={n_classes}); "
                         f"y[{bad}] = {y[bad]}")
    return X, y


def _check_path(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or path, got {type(path).__name__}")
    return Path(path)


def _resolve_columns(spec, names, header, path):
    """Indices of the label column(s) named or numbered by `spec`."""
    n_cols = len(names)
    items = [spec] if isinstance(spec, (str, numbers.Integral)) else spec
    try:
        items = list(items)
    except TypeError:
        raise TypeError(f"label_column must be an int, a column name or a sequence of them, "
                        f"got {type(spec).__name__}") from None
    if not items:
        raise ValueError("label_column names no column")
    indices = []
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise TypeError(f"label_column must be an int or a column name, got {item!r}")
        if isinstance(item, str):
            if not header:
                raise ValueError(f"{path}: label_column {item!r} is a name but the file has "
                                 f"no header (header=False); give a column index")
            if item not in names:
                raise ValueError(f"{path}: no column named {item!r}; columns are {names}")
            idx = names.index(item)
        elif isinstance(item, numbers.Integral):
            if not -n_cols <= item < n_cols:
                raise ValueError(f"{path}: label_column {item} out of range for {n_cols} columns")
            idx = int(item) % n_cols
        else:
            raise TypeError(f"label_column must be an int or a column name, got "
                            f"{type(item).__name__}")
        if idx in indices:
            raise ValueError(f"{path}: label column {names[idx]!r} given twice")
        indices.append(idx)
    if len(indices) == n_cols:
        raise ValueError(f"{path}: all {n_cols} columns are labels; no feature columns remain")
    return indices


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_csv(path, label_column=-1, *, task="classification", n_classes=None, delimiter=",",
             header=True, signed_labels=None, dtype=np.float64):
    """Read a data set from a CSV file.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.  Blank lines are skipped.
    label_column : int, str or sequence of them
        The label column, by index (negative counts from the end, default the
        last) or by header name (e.g. ``"label"``).  A sequence gives several
        target columns (regression only).  All other columns are features,
        in file order.
    task : {"classification", "regression"}
        What the label column(s) hold; see :func:`from_arrays`.
    n_classes : int, optional
        Number of classes; labels are checked to lie in ``[0, n_classes)``.
    delimiter : str
        Field separator, one character.
    header : bool
        Whether the first row holds column names (default, as TATi writes
        them: ``x1,x2,label``).  A header row that consists of numbers only
        is rejected as probably being data.
    signed_labels : bool or None
        TATi's labels -1/+1.  None (default): for classification, convert to
        class indices 0/1 when every label is -1 or +1.  True: require -1/+1
        labels and convert.  False: take labels as they are.
    dtype : numpy floating dtype
        Dtype of the features (and regression targets).

    Returns
    -------
    X : numpy.ndarray, shape (n, d)
        Features.
    y : numpy.ndarray, shape (n,) or (n, k)
        int64 class indices (classification) or float targets (regression;
        shape (n, k) when several label columns are given).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is empty or malformed (ragged rows, non-numeric or
        missing values), or the data fail :func:`from_arrays`' checks; the
        message names the file (and the line and column where applicable).
    TypeError
        For arguments of the wrong type.

    Examples
    --------
    >>> _ = Path("toy.csv").write_text("x1,x2,label\\n0.5,1.0,-1\\n2.0,0.0,1\\n")
    >>> X, y = load_csv("toy.csv")  # TATi's -1/+1 labels become classes 0/1
    >>> X
    array([[0.5, 1. ],
           [2. , 0. ]])
    >>> y
    array([0, 1])
    >>> load_csv("toy.csv", label_column="x1", task="regression")[1]
    array([0.5, 2. ])
    """
    path = _check_path(path)
    _check_task(task)
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\"":
        raise ValueError(f"delimiter must be a single character (not a quote or newline), "
                         f"got {delimiter!r}")
    if not isinstance(header, (bool, np.bool_)):
        raise TypeError(f"header must be True or False, got {header!r}")
    if signed_labels not in (None, True, False):
        raise TypeError(f"signed_labels must be None, True or False, got {signed_labels!r}")
    if signed_labels and task != "classification":
        raise ValueError("signed_labels=True is only meaningful for task='classification'")
    if not path.is_file():
        raise FileNotFoundError(f"CSV file {str(path)!r} not found")

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [(lineno, row) for lineno, row in
                    enumerate(csv.reader(fh, delimiter=delimiter), start=1)
                    if row and any(cell.strip() for cell in row)]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text file ({exc})") from exc
    except csv.Error as exc:
        raise ValueError(f"{path}: malformed CSV ({exc})") from exc
    if not rows:
        raise ValueError(f"{path}: file is empty")

    if header:
        _, names = rows.pop(0)
        names = [name.strip() for name in names]
        if all(_is_number(name) for name in names):
            raise ValueError(f"{path}: the first row {names} looks like data, not a header; "
                             f"pass header=False for a file without column names")
        if len(set(names)) != len(names):
            raise ValueError(f"{path}: duplicate column names in header {names}")
        if not rows:
            raise ValueError(f"{path}: has a header but no data rows")
    else:
        names = [f"column {i}" for i in range(len(rows[0][1]))]
    n_cols = len(names)
    for lineno, row in rows:
        if len(row) != n_cols:
            raise ValueError(f"{path}, line {lineno}: {len(row)} fields, expected {n_cols} "
                             f"(as in the {'header' if header else 'first row'})")

    table = np.empty((len(rows), n_cols), dtype=np.float64)
    for r, (lineno, row) in enumerate(rows):
        try:
            table[r] = [float(cell) for cell in row]
        except ValueError:
            for c, cell in enumerate(row):
                if not _is_number(cell):
                    what = "missing value" if not cell.strip() else f"non-numeric value {cell!r}"
                    raise ValueError(f"{path}, line {lineno}, column {names[c]!r}: {what}") \
                        from None
            raise
    if not np.all(np.isfinite(table)):
        r, c = np.argwhere(~np.isfinite(table))[0]
        raise ValueError(f"{path}, line {rows[r][0]}, column {names[c]!r}: value "
                         f"{rows[r][1][c].strip()!r} is not finite")
    label_idx = _resolve_columns(label_column, names, header, path)
    if len(label_idx) > 1 and task == "classification":
        raise ValueError(f"{path}: several label columns {[names[i] for i in label_idx]} "
                         f"need task='regression'")
    feature_idx = [i for i in range(n_cols) if i not in label_idx]
    X = table[:, feature_idx]
    y = table[:, label_idx[0]] if len(label_idx) == 1 else table[:, label_idx]

    if task == "classification" and signed_labels is not False:
        finite = y[np.isfinite(y)]
        is_signed = finite.size == y.size and bool(np.all((finite == -1) | (finite == 1)))
        if signed_labels and not is_signed:
            bad = int(np.flatnonzero(~((y == -1) | (y == 1)))[0])
            raise ValueError(f"{path}, line {rows[bad][0]}: label {y[bad]} is not -1 or +1 "
                             f"(signed_labels=True)")
        if is_signed and (signed_labels or np.any(y == -1)):
            y = (y + 1.0) / 2.0
    try:
        return from_arrays(X, y, n_classes=n_classes, task=task, dtype=dtype)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{path}: {exc}") from exc


def save_csv(path, X, y, *, feature_names=None, label_name="label", signed_labels=False,
             delimiter=","):
    """Write a data set to a CSV file with a header row.

    The layout is TATi's: feature columns ``x1, x2, ...`` then the label
    column(s).  Floats are written with the shortest representation that
    reads back exactly.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (overwritten).
    X : array_like, shape (n, d)
        Features; finite.
    y : array_like, shape (n,) or (n, k)
        Integer class indices (written as integers) or float targets.
        Integer dtypes count as classification, floats as regression.
    feature_names : sequence of str, optional
        Names of the d feature columns; default ``x1, ..., xd``.
    label_name : str or sequence of str
        Name of the label column (default ``"label"``), or names of the k
        target columns; with a single name and k > 1 columns,
        ``label1, ..., labelk``.
    signed_labels : bool
        Write class indices 0/1 as TATi's -1/+1 (binary classification only).
    delimiter : str
        Field separator, one character.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError, TypeError
        If the arrays fail :func:`from_arrays`' checks, names clash or
        contain the delimiter, or `signed_labels` is set for labels other
        than 0/1.

    Examples
    --------
    >>> path = save_csv("data.csv", [[0.5, 1.0], [2.0, 0.0]], np.array([0, 1]))
    >>> print(path.read_text(), end="")
    x1,x2,label
    0.5,1.0,0
    2.0,0.0,1
    >>> X, y = load_csv(path)
    >>> y
    array([0, 1])
    """
    path = _check_path(path)
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\"":
        raise ValueError(f"delimiter must be a single character (not a quote or newline), "
                         f"got {delimiter!r}")
    y_arr = _numeric(y, "y")
    task = "classification" if y_arr.dtype.kind in "biu" else "regression"
    if signed_labels and task != "classification":
        raise ValueError("signed_labels=True needs integer class labels")
    X, y = from_arrays(X, y_arr, task=task)
    if signed_labels:
        if np.any(y > 1):
            raise ValueError(f"signed_labels=True needs binary labels 0/1; found label {y.max()}")
        y = 2 * y - 1
    n, d = X.shape
    k = 1 if y.ndim == 1 else y.shape[1]

    if feature_names is None:
        feature_names = [f"x{i + 1}" for i in range(d)]
    else:
        feature_names = list(feature_names)
        if len(feature_names) != d:
            raise ValueError(f"feature_names has {len(feature_names)} names for {d} features")
    if isinstance(label_name, str):
        label_names = [label_name] if k == 1 else [f"{label_name}{j + 1}" for j in range(k)]
    else:
        label_names = list(label_name)
        if len(label_names) != k:
            raise ValueError(f"label_name has {len(label_names)} names for {k} label columns")
    names = feature_names + label_names
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"column names must be non-empty strings, got {name!r}")
        if any(ch in name for ch in (delimiter, "\n", "\r", '"')):
            raise ValueError(f"column name {name!r} contains the delimiter, a quote or a newline")
    if len(set(names)) != len(names):
        raise ValueError(f"column names must be unique, got {names}")

    y2 = y.reshape(n, k)
    label_fmt = str if task == "classification" else repr
    lines = [delimiter.join(names)]
    for i in range(n):
        fields = [repr(float(v)) for v in X[i]] + [label_fmt(v.item()) for v in y2[i]]
        lines.append(delimiter.join(fields))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
