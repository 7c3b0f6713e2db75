"""Resolving the options of a subcommand: defaults < config file < flags.

A config file (``--config run.toml``) holds option names as keys, at the top
level or in a table named after the subcommand (which wins)::

    steps = 20000
    step_size = 0.005

    [sample]
    friction = 5.0

Top-level keys that belong to other subcommands are ignored, so one file can
serve a whole workflow; keys unknown to every subcommand, and keys in the
subcommand's own table that it does not accept, are errors.  Hyphens and
underscores in keys are equivalent.
"""
from __future__ import annotations

from thermo.cli.options import COMMANDS, OPTIONS, OptionError, convert, options_for

__all__ = ["resolve", "from_file", "result_options", "compare_for_resume"]


def _normalise(key):
    return str(key).replace("-", "_")


def from_file(command, path):
    """Option values of ``command`` from a TOML/JSON config file.

    Parameters
    ----------
    command : str
    path : str

    Returns
    -------
    dict
        name -> converted value.

    Raises
    ------
    thermo.io.config.ConfigError, OptionError
    """
    from thermo.io.config import load_config

    data = load_config(path)
    accepted = options_for(command)
    known = {o.name for o in OPTIONS}
    values = {}
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in COMMANDS:
                raise OptionError(f"config file {path}: unknown table [{key}]")
            continue
        name = _normalise(key)
        if name not in known:
            raise OptionError(f"config file {path}: unknown option {key!r}")
        if name in accepted and name not in ("config",):
            values[name] = convert(accepted[name], value)
    section = data.get(command, {})
    for key, value in section.items():
        name = _normalise(key)
        if name not in accepted or name == "config":
            raise OptionError(f"config file {path}: option {key!r} is not accepted by "
                              f"'thermo {command}'")
        if isinstance(value, dict):
            raise OptionError(f"config file {path}: [{command}] {key} must be a value, "
                              "not a table")
        values[name] = convert(accepted[name], value)
    return values


def resolve(command, flags, base=None):
    """Merge defaults, config file and flags into the options of a run.

    Parameters
    ----------
    command : str
    flags : dict
        name -> raw value (strings) for the flags given on the command line.
    base : dict, optional
        Values that replace the defaults (the saved configuration of a run
        being resumed).

    Returns
    -------
    dict
        Every option of ``command`` -> value.
    """
    accepted = options_for(command)
    values = {name: option.default for name, option in accepted.items()}
    if base:
        for name, value in base.items():
            if name in accepted:
                values[name] = convert(accepted[name], value)
    converted_flags = {name: convert(accepted[name], raw) for name, raw in flags.items()}
    config_path = converted_flags.get("config")
    if config_path is not None:
        values.update(from_file(command, config_path))
    values.update(converted_flags)
    return values


def result_options(command, values):
    """The options that determine a run's numbers (compared on resume).

    Parameters
    ----------
    command : str
    values : dict

    Returns
    -------
    dict
    """
    accepted = options_for(command)
    return {name: values.get(name) for name, option in accepted.items() if option.result}


def _same(a, b):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return a == b


def compare_for_resume(command, saved, new):
    """Refuse a resume whose result-determining options differ from the run's.

    Parameters
    ----------
    command : str
    saved : dict
        Options stored in the run directory's config.
    new : dict
        Options resolved for the resumed invocation.

    Raises
    ------
    OptionError
        Naming the changed options (``steps`` may only grow).
    """
    accepted = options_for(command)
    changed = []
    for name, option in accepted.items():
        if not option.result:
            continue
        old = saved.get(name, option.default)
        try:
            old = convert(option, old)
        except OptionError:
            pass
        if name == "steps":
            if new[name] < old:
                changed.append(f"steps decreased ({old} -> {new[name]})")
            continue
        if name == "threads" and new.get(name) == 0:
            continue  # 0 means "keep the run's thread count"
        if not _same(old, new.get(name)):
            changed.append(f"{option.flag} ({_show(old)} -> {_show(new.get(name))})")
    if changed:
        raise OptionError("cannot resume: the configuration changed since the run started: "
                          + "; ".join(changed))


def _show(value):
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "empty"
    return "unset" if value is None else str(value)
