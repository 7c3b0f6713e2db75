"""Checkpoints: everything needed to continue a run bit for bit, written atomically.

A checkpoint is one ``.npz`` file (``checkpoint.npz`` in a run directory)
written with :func:`thermo.io.atomic.atomic_write` (temporary file, fsync,
``os.replace``), so a crash leaves the previous checkpoint intact.  It holds

* the sampler state(s) — θ, momenta, cached gradients, thermostat variables,
  step count and the RNG state (``bit_generator.state``) — as returned in
  ``run.state`` by :func:`thermo.sample`;
* the bias state (metadynamics hills and grid);
* bookkeeping: records written, bytes of ``observables.csv`` and of the hills
  file at checkpoint time, the hash of the configuration.

Arbitrary nested NamedTuples, dicts, lists, NumPy arrays and scalars are
stored: arrays as npz members, everything else as JSON in the member
``__meta__``.  NamedTuple classes are recorded by module and qualified name
and re-imported on load, so the restored state has exactly the original
types (which matters for Numba, which specialises on them).
"""
from __future__ import annotations

import importlib
import io
import json
import os

import numpy as np

__all__ = ["encode", "decode", "save_checkpoint", "load_checkpoint", "CheckpointError"]

FORMAT = "thermo checkpoint 1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged or of another format."""


def _is_namedtuple(value):
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def encode(value, arrays, prefix="a"):
    """Turn ``value`` into JSON-compatible data, moving arrays into ``arrays``.

    Parameters
    ----------
    value : object
        NamedTuple, dict (str keys), list, tuple, ndarray, NumPy scalar,
        ``numpy.random.Generator``, bool, int, float, str or None.
    arrays : dict
        Receives ``key -> ndarray`` for every array met.
    prefix : str
        Key prefix for arrays.

    Returns
    -------
    object
        JSON-serialisable description.
    """
    if _is_namedtuple(value):
        cls = type(value)
        return {"__namedtuple__": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {name: encode(getattr(value, name), arrays, f"{prefix}.{name}")
                           for name in cls._fields}}
    if isinstance(value, np.ndarray):
        key = f"{prefix}#{len(arrays)}"
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, np.random.Generator):
        bit_generator = value.bit_generator
        return {"__generator__": type(bit_generator).__name__,
                "state": encode(bit_generator.state, arrays, prefix + ".rng")}
    if isinstance(value, np.generic):
        return {"__scalar__": value.dtype.str, "value": value.item()}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("checkpoint dicts need string keys")
        return {"__dict__": {k: encode(v, arrays, f"{prefix}.{k}") for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        kind = "__list__" if isinstance(value, list) else "__tuple__"
        return {kind: [encode(v, arrays, f"{prefix}[{i}]") for i, v in enumerate(value)]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__}")


def _import(path):
    module_name, _, qualname = path.partition(":")
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def decode(data, arrays):
    """Inverse of :func:`encode`.

    Parameters
    ----------
    data : object
        Output of :func:`encode` (after a JSON round trip).
    arrays : mapping
        ``key -> ndarray``.

    Returns
    -------
    object
    """
    if isinstance(data, dict):
        if "__namedtuple__" in data:
            cls = _import(data["__namedtuple__"])
            return cls(**{k: decode(v, arrays) for k, v in data["fields"].items()})
        if "__array__" in data:
            return np.array(arrays[data["__array__"]])
        if "__generator__" in data:
            bit_generator = getattr(np.random, data["__generator__"])()
            bit_generator.state = decode(data["state"], arrays)
            return np.random.Generator(bit_generator)
        if "__scalar__" in data:
            return np.dtype(data["__scalar__"]).type(data["value"])
        if "__dict__" in data:
            return {k: decode(v, arrays) for k, v in data["__dict__"].items()}
        if "__list__" in data:
            return [decode(v, arrays) for v in data["__list__"]]
        if "__tuple__" in data:
            return tuple(decode(v, arrays) for v in data["__tuple__"])
        raise CheckpointError(f"unknown checkpoint entry {sorted(data)}")
    return data


def save_checkpoint(path, content):
    """Atomically write a checkpoint.

    Parameters
    ----------
    path : str or os.PathLike
    content : dict
        str -> encodable object (see :func:`encode`).
    """
    from thermo.io.atomic import atomic_write

    arrays = {}
    meta = {"format": FORMAT, "content": encode(dict(content), arrays)}
    buffer = io.BytesIO()
    np.savez(buffer, __meta__=np.frombuffer(json.dumps(meta).encode("utf-8"),
                                            dtype=np.uint8), **arrays)
    with atomic_write(path, "wb") as handle:
        handle.write(buffer.getbuffer())


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict

    Raises
    ------
    CheckpointError
        If the file is missing or not a readable checkpoint.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(archive["__meta__"].tobytes().decode("utf-8"))
            arrays = {k: archive[k] for k in archive.files if k != "__meta__"}
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint {path} is unreadable: {error}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a thermo checkpoint")
    try:
        return decode(meta["content"], arrays)
    except (ImportError, AttributeError, TypeError) as error:
        raise CheckpointError(f"checkpoint {path} refers to code that is gone: {error}") from None
