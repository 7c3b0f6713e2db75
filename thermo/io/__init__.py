"""Input and output of thermo: run directories, CSV/HDF5 streams, checkpoints, TATi files.

=========================  ==================================================
module                     content
=========================  ==================================================
:mod:`.atomic`             temp file + fsync + ``os.replace`` writes
:mod:`.config`             TOML/JSON configuration files
:mod:`.observables`        ``observables.csv`` writer and its column table
:mod:`.trajectory`         ``trajectory.h5`` (chunked, resizable, streamed)
:mod:`.checkpoint`         ``checkpoint.npz`` (sampler/bias/RNG state)
:mod:`.tables`             strict numeric CSV reading/writing
:mod:`.tati`               readers for TATi's run/trajectory/averages CSV
=========================  ==================================================

Submodules are imported on first use (``thermo.io.trajectory`` needs h5py).
"""
from importlib import import_module

__all__ = ["atomic", "config", "observables", "trajectory", "checkpoint", "tables", "tati"]


def __getattr__(name):
    if name in __all__:
        module = import_module(f"thermo.io.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'thermo.io' has no attribute {name!r}")
