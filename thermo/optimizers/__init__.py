"""Optimizers: full-batch gradient descent, minibatch SGD with heavy-ball momentum,
and safeguarded Barzilai–Borwein; see :func:`optimize`."""
from thermo.optimizers._driver import (METHODS, OptimizationRun, OptimizerState,
                                       optimize)

__all__ = ["optimize", "OptimizationRun", "OptimizerState", "METHODS"]
