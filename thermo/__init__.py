"""thermo: loss landscapes of neural networks explored with statistical physics.

Top-level names are loaded lazily so that ``import thermo`` stays fast and the
command line starts quickly; see DESIGN.md for the conventions (U is the total
loss plus prior, β the inverse temperature, h the step size).
"""
from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "MLP": "thermo.networks",
    "Posterior": "thermo.potentials",
    "Potential": "thermo.potentials",
    "sample": "thermo.samplers",
    "DivergenceError": "thermo.samplers",
    "optimize": "thermo.optimizers",
}
_SUBMODULES = ("analysis", "bias", "cv", "data", "io", "networks", "optimizers",
               "plotting", "potentials", "samplers", "cli")

__all__ = sorted(list(_LAZY) + list(_SUBMODULES))


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = import_module(f"thermo.{name}")
    else:
        raise AttributeError(f"module 'thermo' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return __all__
