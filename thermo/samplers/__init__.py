"""Samplers of exp(-β (U + V)): SGLD, GLA1/GLA2, BAOAB, overdamped Langevin, CCAdL.

``thermo.sample(potential, method, theta0=..., n_steps=..., step_size=..., ...)``
runs one of them and returns a :class:`Run`; see :mod:`thermo.samplers._framework`
for the driver and for how to add a sampler (``register_sampler``), and
:mod:`thermo.samplers._solvers` for the recorded observables.
"""
from thermo.samplers._framework import (ChunkResult, DivergenceError, Recording, Run,
                                        available_samplers, get_sampler, register_sampler,
                                        sample)

__all__ = ["sample", "Run", "DivergenceError", "register_sampler", "available_samplers",
           "get_sampler", "Recording", "ChunkResult"]
