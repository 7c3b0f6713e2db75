"""Reading and writing configuration files (TOML or JSON).

The run directory holds the fully resolved configuration of a run as
``config.toml``: every option with its value, plus a ``[provenance]`` table
(package versions, command line, start time).  :func:`dump_toml` is a small
writer for the subset of TOML that configurations use (strings, booleans,
integers, floats including ``inf``/``nan``, arrays of those, nested tables);
``None`` values are left out because TOML has no null.
"""
from __future__ import annotations

import json
import math
import os
import re

__all__ = ["dump_toml", "load_config", "write_config", "ConfigError"]


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or malformed."""


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name):
    name = str(name)
    return name if _BARE_KEY.match(name) else json.dumps(name)


def _value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value if v is not None) + "]"
    # numpy scalars and the like
    if hasattr(value, "item"):
        return _value(value.item())
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dump_toml(data):
    """Serialise a nested dict to TOML text.

    Parameters
    ----------
    data : dict
        Keys are strings; values are scalars, lists of scalars or dicts
        (written as tables).  ``None`` values are omitted.

    Returns
    -------
    str
    """
    lines = []

    def emit(table, prefix):
        scalars = [(k, v) for k, v in table.items()
                   if v is not None and not isinstance(v, dict)]
        tables = [(k, v) for k, v in table.items() if isinstance(v, dict)]
        if prefix and (scalars or not tables):
            lines.append("")
            lines.append("[" + ".".join(_key(p) for p in prefix) + "]")
        for key, value in scalars:
            lines.append(f"{_key(key)} = {_value(value)}")
        for key, value in tables:
            emit(value, prefix + [key])

    emit(data, [])
    return "\n".join(lines).lstrip("\n") + "\n"


def load_config(path):
    """Read a TOML (``.toml``) or JSON (``.json``) configuration file.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict

    Raises
    ------
    ConfigError
        If the file is missing, unreadable or not valid TOML/JSON.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise ConfigError(f"cannot read config file {path!r}: {error.strerror}") from None
    if path.endswith(".json"):
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(f"config file {path!r} is not valid JSON: {error}") from None
    else:
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            import tomli as tomllib
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"config file {path!r} is not valid TOML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r} must hold a table of options")
    return data


def write_config(path, data):
    """Atomically write ``data`` as TOML (``.toml``) or JSON (``.json``).

    Parameters
    ----------
    path : str or os.PathLike
    data : dict
    """
    from thermo.io.atomic import atomic_write_text

    path = os.fspath(path)
    if path.endswith(".json"):
        text = json.dumps(data, indent=2, sort_keys=False, allow_nan=True) + "\n"
    else:
        text = dump_toml(data)
    atomic_write_text(path, text)
