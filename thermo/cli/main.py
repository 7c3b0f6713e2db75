"""Entry point of the ``thermo`` command.

``thermo COMMAND [options]``; ``thermo COMMAND --help`` lists every option
with its default and unit (all from :mod:`thermo.cli.options`).  Subcommand
modules are imported only when run, so ``thermo --help`` starts in a fraction
of a second.

Errors in the input (missing files, bad values, malformed config files, a
resume with a changed configuration, ...) end the command with exit status 2
and one line on stderr, ``thermo COMMAND: error: ...``, without a traceback;
failures while running (a diverging sampler, a full disk) exit with status 1.
Set the environment variable ``THERMO_DEBUG=1`` to see tracebacks.
"""
from __future__ import annotations

import argparse
import os
import sys
from importlib import import_module

from thermo.cli.options import COMMANDS, default_text, options_for

__all__ = ["main", "build_parser", "CommandError"]

EXIT_USAGE = 2
EXIT_FAILURE = 1


class CommandError(Exception):
    """A one-line error of a subcommand.

    Parameters
    ----------
    message : str
    status : int
        Exit status (2: bad input, 1: failure while running).
    """

    def __init__(self, message, status=EXIT_USAGE):
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr (no usage block)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=34, width=100)


def _metavar(option):
    if option.metavar:
        return option.metavar
    return {"int": "N", "float": "X", "path": "PATH", "int_list": "N,N,...",
            "float_list": "X,X,...", "str_list": "A,B,..."}.get(option.kind, "NAME")


def _help(option):
    parts = [option.help]
    if option.choices:
        parts.append("{" + ",".join(map(str, option.choices)) + "}")
    details = f"default: {default_text(option)}"
    if option.unit:
        details += f"; unit: {option.unit}"
    text = " ".join(parts) + f" [{details}]"
    return text.replace("%", "%%")


def build_parser():
    """The argparse parser of the ``thermo`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    from thermo import __version__

    parser = _Parser(prog="thermo", formatter_class=_Formatter,
                     description="Loss landscapes of neural networks explored with "
                                 "statistical physics.",
                     epilog="Options can also come from a TOML/JSON file (--config); flags "
                            "override it.\n'thermo COMMAND --help' lists the options of a "
                            "command with defaults and units.")
    parser.add_argument("--version", action="version", version=f"thermo {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       parser_class=_Parser)
    for name, (_, summary) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=summary, description=summary,
                                    formatter_class=_Formatter, argument_default=argparse.SUPPRESS)
        for option in options_for(name).values():
            if option.kind == "bool":
                sub.add_argument(option.flag, dest=option.name,
                                 action=argparse.BooleanOptionalAction, help=_help(option))
            else:
                sub.add_argument(option.flag, dest=option.name, metavar=_metavar(option),
                                 help=_help(option))
    return parser


def _one_line(text):
    return " ".join(str(text).split())


def main(argv=None):
    """Run the ``thermo`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    command = args.command
    flags = {k: v for k, v in vars(args).items() if k != "command"}
    prog = f"thermo {command}"
    debug = os.environ.get("THERMO_DEBUG", "") not in ("", "0")
    try:
        module = import_module(COMMANDS[command][0])
        status = module.main(flags)
        return 0 if status is None else int(status)
    except CommandError as error:
        if debug:
            raise
        print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, LookupError) as error:
        if debug:
            raise
        message = _one_line(error) or type(error).__name__
        if isinstance(error, OSError) and error.filename and error.strerror:
            message = f"{error.strerror}: {error.filename}"
        status = EXIT_FAILURE if _is_runtime(error) else EXIT_USAGE
        print(f"{prog}: error: {message}", file=sys.stderr)
        return status
    except Exception as error:  # noqa: BLE001 - last resort, still one line
        if debug:
            raise
        print(f"{prog}: error: {type(error).__name__}: {_one_line(error)} "
              "(set THERMO_DEBUG=1 for a traceback)", file=sys.stderr)
        return EXIT_FAILURE


def _is_runtime(error):
    return type(error).__name__ in ("DivergenceError",) or isinstance(error, OSError)


if __name__ == "__main__":
    sys.exit(main())
