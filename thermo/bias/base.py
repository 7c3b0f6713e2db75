"""The bias protocol: how sampler kernels see an added bias potential V(θ).

Samplers target exp(-β (U(θ) + V(θ))).  A bias is, like a potential, a Python
object with a ``kernel_data`` NamedTuple instance registered here.  Its arrays
are mutable state (e.g. the metadynamics grid), updated in place by the kernel.

Generic kernel-side functions
-----------------------------
``bias_energy_gradient(data, theta, gradient) -> float``
    Returns V(θ) and *adds* ∇V(θ) to ``gradient`` (which already holds ∇U).
``bias_update(data, theta, step) -> None``
    Called once after every completed step ``step`` (1-based count of steps
    done so far, across chunks and restarts), e.g. to deposit a hill every
    ``pace`` steps.  Must be deterministic given (θ, step, state).
``bias_weight_log(data) -> float``
    log of the reweighting factor of the current configuration (e.g.
    β (V(s) - c(t)) for metadynamics); 0 for no bias.

``NoBias`` (the default of every sampler) compiles to nothing.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from thermo import _numba_cache  # noqa: F401  (tolerant cache index, before any compile)
from numba.extending import overload

__all__ = ["register_bias", "bias_energy_gradient", "bias_update",
           "bias_weight_log", "Bias", "NoBias", "NO_BIAS"]

_IMPLEMENTATIONS: dict = {}


def register_bias(data_class, energy_gradient, update=None, weight_log=None):
    """Tie a NamedTuple class to the jitted implementation of a bias.

    Parameters
    ----------
    data_class : type
        A ``typing.NamedTuple`` subclass (arrays and scalars only).
    energy_gradient : callable
        ``f(data, theta, gradient) -> V``; adds ∇V to ``gradient``.
    update : callable, optional
        ``f(data, theta, step)``: changes the bias state in place.
    weight_log : callable, optional
        ``f(data) -> float``: the log reweighting factor.

    Returns
    -------
    None

    Examples
    --------
    >>> from typing import NamedTuple
    >>> class RestraintData(NamedTuple):
    ...     stiffness: float
    >>> def restraint(data, theta, gradient):
    ...     gradient += data.stiffness * theta
    ...     return 0.5 * data.stiffness * np.sum(theta ** 2)
    >>> register_bias(RestraintData, restraint)
    >>> energy, gradient = Bias(RestraintData(2.0)).energy_and_gradient(np.array([1.0, 1.0]))
    >>> energy, gradient.tolist()
    (2.0, [2.0, 2.0])
    """
    if not (isinstance(data_class, type) and issubclass(data_class, tuple)
            and hasattr(data_class, "_fields")):
        raise TypeError(f"register_bias() needs a NamedTuple class, got {data_class!r}")
    implementations = {"energy_gradient": energy_gradient}
    if update is not None:
        implementations["update"] = update
    if weight_log is not None:
        implementations["weight_log"] = weight_log
    _IMPLEMENTATIONS[data_class] = implementations


def _lookup(data_type, name):
    entry = _IMPLEMENTATIONS.get(getattr(data_type, "instance_class", None))
    if entry is None:
        return None
    return entry.get(name)


def bias_energy_gradient(data, theta, gradient):
    """V(θ); adds ∇V to ``gradient`` (kernel-side)."""
    raise NotImplementedError("call from Numba code")


def bias_update(data, theta, step):
    """Update the bias state after step ``step`` (kernel-side)."""
    raise NotImplementedError("call from Numba code")


def bias_weight_log(data):
    """log reweighting factor of the current state (kernel-side)."""
    raise NotImplementedError("call from Numba code")


@overload(bias_energy_gradient)
def _overload_bias_energy_gradient(data, theta, gradient):
    return _lookup(data, "energy_gradient")


@overload(bias_update)
def _overload_bias_update(data, theta, step):
    implementation = _lookup(data, "update")
    if implementation is not None:
        return implementation
    if _lookup(data, "energy_gradient") is None:
        return None

    def static(data, theta, step):
        return None
    return static


@overload(bias_weight_log)
def _overload_bias_weight_log(data):
    implementation = _lookup(data, "weight_log")
    if implementation is not None:
        return implementation
    if _lookup(data, "energy_gradient") is None:
        return None

    def unweighted(data):
        return 0.0
    return unweighted


class NoBiasData(NamedTuple):
    """Kernel data of the absent bias (one dummy field: Numba needs a type)."""
    unused: int


def _no_bias_energy_gradient(data, theta, gradient):
    return 0.0


register_bias(NoBiasData, _no_bias_energy_gradient)


class Bias:
    """Base class of biases V(θ) added to the potential (see module docs).

    Parameters
    ----------
    kernel_data : NamedTuple
        Instance of a class registered with :func:`register_bias`.

    Examples
    --------
    >>> NO_BIAS.energy_and_gradient(np.zeros(3))[0]
    0.0
    """

    def __init__(self, kernel_data):
        if type(kernel_data) not in _IMPLEMENTATIONS:
            raise TypeError(f"{type(kernel_data).__name__} is not a registered bias")
        self.kernel_data = kernel_data

    def energy_and_gradient(self, theta):
        """V(θ) and ∇V(θ) (float64)."""
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        gradient = np.zeros_like(theta)
        energy = _call_bias_energy_gradient(self.kernel_data, theta, gradient)
        return float(energy), gradient


class NoBias(Bias):
    """The absent bias, V = 0.

    Examples
    --------
    >>> energy, gradient = NoBias().energy_and_gradient(np.ones(2))
    >>> energy, gradient.tolist()
    (0.0, [0.0, 0.0])
    """

    def __init__(self):
        super().__init__(NoBiasData(0))


NO_BIAS = NoBias()


@njit(cache=True)
def _call_bias_energy_gradient(data, theta, gradient):
    return bias_energy_gradient(data, theta, gradient)
