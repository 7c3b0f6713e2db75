"""``thermo metad``: see :mod:`thermo.cli.sampling`."""
from __future__ import annotations

__all__ = ["main"]


def main(flags):
    """Run ``thermo metad``.

    Parameters
    ----------
    flags : dict
        Options given on the command line (see :mod:`thermo.cli.options`).

    Returns
    -------
    int
        Exit status.
    """
    from thermo.cli.sampling import main_sampling

    return main_sampling("metad", flags)
