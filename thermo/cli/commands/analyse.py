"""``thermo analyse``: see :mod:`thermo.cli.analysis`."""
from __future__ import annotations

__all__ = ["main"]


def main(flags):
    """Run ``thermo analyse``.

    Parameters
    ----------
    flags : dict
        Options given on the command line (see :mod:`thermo.cli.options`).

    Returns
    -------
    int
        Exit status.
    """
    from thermo.cli.analysis import main_analyse

    return main_analyse(flags)
