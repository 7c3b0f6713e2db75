"""Biases V(θ) added to the potential; metadynamics along collective variables."""
from thermo.bias.base import NO_BIAS, Bias, NoBias, register_bias
