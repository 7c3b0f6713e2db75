"""Fully connected networks on a flat parameter vector θ.

:class:`MLP` validates input and holds work buffers; the forward/backward
passes are the Numba kernels of :mod:`thermo.networks.kernels`.
``net.loss`` / ``net.loss_and_grad`` are **mean** losses over rows; the
posterior potential U of :class:`thermo.potentials.Posterior` is the total.
"""
from thermo.networks.mlp import MLP, LayerLayout

__all__ = ["MLP", "LayerLayout"]
