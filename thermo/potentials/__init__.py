"""Potentials U(θ): the network posterior, analytic test potentials, priors.

See :mod:`thermo.potentials.base` for the protocol and conventions.
"""
from importlib import import_module

from thermo.potentials.base import Potential, register

_LAZY = {
    "Posterior": "thermo.potentials.posterior",
    "Gaussian": "thermo.potentials.analytic",
    "DoubleWell": "thermo.potentials.analytic",
    "MuellerBrown": "thermo.potentials.analytic",
    "NoisyGaussian": "thermo.potentials.analytic",
    "Wall": "thermo.potentials.priors",
    "Tether": "thermo.potentials.priors",
    "Sum": "thermo.potentials.priors",
}

__all__ = ["Potential", "register", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'thermo.potentials' has no attribute {name!r}")
