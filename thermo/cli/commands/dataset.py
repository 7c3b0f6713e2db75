"""``thermo dataset``: write a toy classification data set to CSV (TATi layout)."""
from __future__ import annotations

from thermo.cli.common import check_writable_file, parse_flags
from thermo.cli.main import CommandError

__all__ = ["main"]


def main(flags):
    """Run ``thermo dataset``.

    Parameters
    ----------
    flags : dict

    Returns
    -------
    int
    """
    context = parse_flags("dataset", flags)
    options = context.options
    path = options["output"]
    check_writable_file(path, options["overwrite"])
    if options["n_points"] < 2:
        raise CommandError("--n-points must be at least 2")
    import os
    import tempfile

    from thermo.data import make_dataset, save_csv

    X, y = make_dataset(options["dataset"], n=options["n_points"], noise=options["noise"],
                        seed=options["data_seed"])
    # save_csv overwrites in place; write next to the target and rename, so a
    # failure leaves an existing file untouched.
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".dataset.", suffix=".csv", dir=directory)
    os.close(fd)
    try:
        save_csv(temporary, X, y, signed_labels=options["signed_labels"])
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    context.note(f"wrote {X.shape[0]} points of {options['dataset']} to {path}")
    return 0
