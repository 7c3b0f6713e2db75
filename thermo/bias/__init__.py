"""Biases V(θ) added to the potential; metadynamics along collective variables."""
from thermo.bias.base import NO_BIAS, Bias, NoBias, register_bias
from thermo.bias.metadynamics import Metadynamics, reweighted_free_energy

__all__ = ["NO_BIAS", "Bias", "NoBias", "register_bias", "Metadynamics",
           "reweighted_free_energy", "iterative_metadynamics"]


def __getattr__(name):
    if name == "iterative_metadynamics":
        from thermo.bias.workflow import iterative_metadynamics
        return iterative_metadynamics
    raise AttributeError(f"module 'thermo.bias' has no attribute {name!r}")
