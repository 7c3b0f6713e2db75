"""Collective variables s(θ) with exact gradients, callable from Numba kernels.

See :mod:`thermo.cv.base` for the protocol (``register_cv``,
``cv_value_gradient``, ``cv_value`` and
``cv_add_vjp``), :class:`Linear` for projections and
:class:`DiffusionMapCV` for smooth diffusion coordinates,
:class:`Distance` (also an example of a user-written CV).
"""
from thermo.cv.base import CV, cv_add_vjp, cv_value, cv_value_gradient, has_vjp, register_cv
from thermo.cv.diffusion_map import DiffusionMapCV
from thermo.cv.distance import Distance
from thermo.cv.linear import Linear, LinearFeatureMap

__all__ = ["CV", "register_cv", "cv_value_gradient", "cv_value", "cv_add_vjp", "has_vjp",
           "Linear", "LinearFeatureMap",
           "DiffusionMapCV", "Distance"]
