"""Priors as potentials, and sums of potentials.

TATi's two priors, written as energies (U is a total energy, targets are
exp(-β U); see :mod:`thermo.potentials.base`):

* :class:`Wall` (TATi's box / wall prior): zero inside the box
  ``lower_i <= θ_i <= upper_i`` and, per coordinate outside it,
  ``strength · dist_i^power`` with ``dist_i`` the distance to the box::

      U(θ) = strength Σ_i [ max(lower_i - θ_i, 0)^p + max(θ_i - upper_i, 0)^p ]
      ∂U/∂θ_i = strength p [ max(θ_i - upper_i, 0)^(p-1) - max(lower_i - θ_i, 0)^(p-1) ]

* :class:`Tether` (TATi's tethering prior, a harmonic restraint)::

      U(θ) = (strength / 2) |θ - centre|²,   ∇U = strength (θ - centre)

* :class:`Sum` adds potentials: ``U = Σ_k U_k``.  Its kernel data nests the
  parts' NamedTuples (a binary tree, ``SumData(first, second)``), dispatched at
  compile time.  The minibatch estimate of the sum draws the stochastic parts'
  minibatches one after the other from the *same* generator, so the estimates
  are independent and their variances add:
  ``Var[∂_i Û] = Σ_k Var[∂_i Û_k]``.  ``a + b`` is ``Sum(a, b)`` for any two
  potentials (``Potential.__add__``); nested sums are flattened.

Example::

    posterior = Posterior(net, X, y, batch_size=100)
    potential = Sum(posterior, Wall(net.n_params, -5.0, 5.0, strength=100.0))
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from thermo.potentials.base import (Potential, accuracy, energy_gradient,
                                    energy_gradient_variance,
                                    full_energy_gradient, register)
from thermo.samplers._solvers import register_laplacian

__all__ = ["Wall", "Tether", "Sum", "add"]


# --------------------------------------------------------------------- Wall
class WallData(NamedTuple):
    """Kernel data of :class:`Wall` (per-coordinate bounds)."""
    lower: np.ndarray
    upper: np.ndarray
    strength: float
    power: float


def _wall_energy_gradient(data, theta, gradient, rng):
    energy = 0.0
    strength = data.strength
    power = data.power
    for i in range(theta.size):
        x = float(theta[i])
        below = data.lower[i] - x
        above = x - data.upper[i]
        if below > 0.0:
            energy += strength * below ** power
            gradient[i] = -strength * power * below ** (power - 1.0)
        elif above > 0.0:
            energy += strength * above ** power
            gradient[i] = strength * power * above ** (power - 1.0)
        else:
            gradient[i] = 0.0
    return energy


def _wall_laplacian(data, theta):
    total = 0.0
    factor = data.strength * data.power * (data.power - 1.0)
    for i in range(theta.size):
        x = float(theta[i])
        below = data.lower[i] - x
        above = x - data.upper[i]
        if below > 0.0:
            total += factor * below ** (data.power - 2.0)
        elif above > 0.0:
            total += factor * above ** (data.power - 2.0)
    return total


register(WallData, _wall_energy_gradient)
register_laplacian(WallData, _wall_laplacian)


def _bounds(value, dimension, name):
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        array = np.full(dimension, float(array))
    if array.shape != (dimension,):
        raise ValueError(f"{name} must be a number or have shape ({dimension},), "
                         f"got {array.shape}")
    if np.any(np.isnan(array)):
        raise ValueError(f"{name} contains NaN")
    return np.ascontiguousarray(array)


class Wall(Potential):
    """Box (wall) prior: zero inside ``[lower, upper]``, ``strength·dist^power`` outside.

    Parameters
    ----------
    dimension : int
        Length of θ.
    lower, upper : float or array_like (dimension,)
        Box bounds per coordinate (``-inf``/``inf`` allowed), lower <= upper.
    strength : float
        Wall strength (>= 0), an energy (U is a total energy, sampled at β).
    power : float
        Exponent p >= 1 of the distance (2: harmonic wall, continuous force).

    Notes
    -----
    ``U = strength Σ_i dist_i^p`` with ``dist_i`` the distance of θ_i to the
    interval ``[lower_i, upper_i]``; the force is continuous for p > 1.

    Examples
    --------
    >>> wall = Wall(2, lower=-1.0, upper=1.0, strength=10.0)
    >>> wall.energy(np.array([0.5, -0.5]))  # inside the box
    0.0
    >>> wall.energy_and_gradient(np.array([2.0, 0.0]))  # 10 * (2 - 1)²
    (10.0, array([20.,  0.]))
    """

    def __init__(self, dimension, lower, upper, strength, power=2, dtype=np.float64):
        dimension = int(dimension)
        if dimension < 1:
            raise ValueError(f"dimension must be >= 1, got {dimension}")
        lower = _bounds(lower, dimension, "lower")
        upper = _bounds(upper, dimension, "upper")
        if np.any(lower > upper):
            raise ValueError("lower must be <= upper in every coordinate")
        strength = float(strength)
        power = float(power)
        if not (np.isfinite(strength) and strength >= 0.0):
            raise ValueError(f"strength must be finite and >= 0, got {strength}")
        if not (np.isfinite(power) and power >= 1.0):
            raise ValueError(f"power must be >= 1, got {power}")
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise TypeError(f"dtype must be a float type, got {self.dtype}")
        self.lower, self.upper = lower, upper
        self.strength, self.power = strength, power
        super().__init__(dimension, WallData(lower, upper, strength, power))

    def __repr__(self):
        return (f"Wall(dimension={self.dimension}, strength={self.strength}, "
                f"power={self.power})")


# ------------------------------------------------------------------- Tether
class TetherData(NamedTuple):
    """Kernel data of :class:`Tether`."""
    centre: np.ndarray
    strength: float


def _tether_energy_gradient(data, theta, gradient, rng):
    energy = 0.0
    for i in range(theta.size):
        x = float(theta[i]) - data.centre[i]
        gradient[i] = data.strength * x
        energy += x * x
    return 0.5 * data.strength * energy


def _tether_laplacian(data, theta):
    return data.strength * theta.size


register(TetherData, _tether_energy_gradient)
register_laplacian(TetherData, _tether_laplacian)


class Tether(Potential):
    """Tethering (harmonic) prior ``U = (strength/2) |θ - centre|²``.

    Parameters
    ----------
    centre : float or array_like (d,)
        Tether point; a number needs ``dimension``.
    strength : float
        Spring constant (>= 0); the prior is the Gaussian N(centre, 1/(β strength)).
    dimension : int, optional
        Length of θ when ``centre`` is a number.

    Examples
    --------
    >>> tether = Tether(0.0, strength=2.0, dimension=2)
    >>> tether.energy_and_gradient(np.array([1.0, -1.0]))
    (2.0, array([ 2., -2.]))
    """

    def __init__(self, centre, strength, dimension=None, dtype=np.float64):
        centre = np.asarray(centre, dtype=np.float64)
        if centre.ndim == 0:
            if dimension is None:
                raise ValueError("a scalar centre needs dimension=")
            centre = np.full(int(dimension), float(centre))
        elif dimension is not None and centre.shape != (int(dimension),):
            raise ValueError(f"centre has shape {centre.shape}, not ({dimension},)")
        if centre.ndim != 1 or centre.size < 1:
            raise ValueError(f"centre must be 1-D, got shape {centre.shape}")
        if not np.all(np.isfinite(centre)):
            raise ValueError("centre contains NaN or inf")
        strength = float(strength)
        if not (np.isfinite(strength) and strength >= 0.0):
            raise ValueError(f"strength must be finite and >= 0, got {strength}")
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise TypeError(f"dtype must be a float type, got {self.dtype}")
        self.centre, self.strength = np.ascontiguousarray(centre), strength
        super().__init__(centre.size, TetherData(self.centre, strength))

    def __repr__(self):
        return f"Tether(dimension={self.dimension}, strength={self.strength})"


# ---------------------------------------------------------------------- Sum
class SumData(NamedTuple):
    """Kernel data of :class:`Sum`: two parts (nest for more)."""
    first: tuple
    second: tuple


def _sum_energy_gradient(data, theta, gradient, rng):
    energy = energy_gradient(data.first, theta, gradient, rng)
    buffer = np.empty_like(gradient)
    energy += energy_gradient(data.second, theta, buffer, rng)
    for i in range(gradient.size):
        gradient[i] += buffer[i]
    return energy


def _sum_full_energy_gradient(data, theta, gradient):
    energy = full_energy_gradient(data.first, theta, gradient)
    buffer = np.empty_like(gradient)
    energy += full_energy_gradient(data.second, theta, buffer)
    for i in range(gradient.size):
        gradient[i] += buffer[i]
    return energy


def _sum_energy_gradient_variance(data, theta, gradient, variance, rng):
    energy = energy_gradient_variance(data.first, theta, gradient, variance, rng)
    buffer = np.empty_like(gradient)
    buffer_variance = np.empty_like(variance)
    energy += energy_gradient_variance(data.second, theta, buffer, buffer_variance, rng)
    for i in range(gradient.size):
        gradient[i] += buffer[i]
        variance[i] += buffer_variance[i]
    return energy


def _sum_accuracy(data, theta):
    value = accuracy(data.first, theta)
    if np.isnan(value):
        return accuracy(data.second, theta)
    return value


register(SumData, _sum_energy_gradient, _sum_full_energy_gradient,
         _sum_energy_gradient_variance, _sum_accuracy)


class Sum(Potential):
    """Sum of potentials ``U(θ) = Σ_k U_k(θ)`` (e.g. a posterior plus a prior).

    Parameters
    ----------
    *potentials : Potential
        At least two, all of the same dimension and dtype.  Nested sums are
        flattened (``parts`` lists the leaves).

    Notes
    -----
    ``energy_gradient`` calls the parts in order with the same generator, so
    stochastic parts draw independent minibatches and the variance of the
    gradient estimator is the sum of the parts' variances (what
    ``energy_gradient_variance`` returns).  ``full_energy_gradient`` sums the
    exact parts.  ``accuracy`` is the first part's that is not NaN.

    Examples
    --------
    >>> from thermo.potentials import Gaussian
    >>> total = Sum(Gaussian(np.zeros(2)), Tether(0.0, strength=1.0, dimension=2))
    >>> total.energy(np.array([1.0, 1.0]))  # 1 + 1
    2.0
    >>> Gaussian(np.zeros(2)) + Tether(0.0, 1.0, dimension=2)  # the same with +
    Sum(Gaussian(dimension=2), Tether(dimension=2, strength=1.0))
    """

    def __init__(self, *potentials):
        parts = []
        for potential in potentials:
            if not isinstance(potential, Potential):
                raise TypeError(f"Sum takes Potentials, got {type(potential).__name__}")
            parts.extend(potential.parts if isinstance(potential, Sum) else [potential])
        if len(parts) < 2:
            raise ValueError("Sum needs at least two potentials")
        dimension = parts[0].dimension
        dtype = np.dtype(parts[0].dtype)
        for part in parts[1:]:
            if part.dimension != dimension:
                raise ValueError(f"dimensions differ: {dimension} and {part.dimension} "
                                 f"({type(part).__name__})")
            if np.dtype(part.dtype) != dtype:
                raise ValueError(f"dtypes differ: {dtype} and {part.dtype} "
                                 f"({type(part).__name__})")
        data = parts[-1].kernel_data
        for part in reversed(parts[:-1]):
            data = SumData(part.kernel_data, data)
        self.parts = tuple(parts)
        self.dtype = dtype
        self.stochastic = any(bool(getattr(p, "stochastic", False)) for p in parts)
        super().__init__(dimension, data)

    def __repr__(self):
        return "Sum(" + ", ".join(repr(p) for p in self.parts) + ")"

    # -- minibatch state of the stochastic parts (saved in sampler states)
    def minibatch_state(self):
        """Tuple of the parts' minibatch states (None for parts without one)."""
        return tuple(part.minibatch_state() if hasattr(part, "minibatch_state") else None
                     for part in self.parts)

    def set_minibatch_state(self, state):
        """Restore a state from :meth:`minibatch_state`."""
        if not isinstance(state, (tuple, list)) or len(state) != len(self.parts):
            raise ValueError(f"Sum minibatch state must have {len(self.parts)} entries")
        for part, part_state in zip(self.parts, state):
            if part_state is not None and hasattr(part, "set_minibatch_state"):
                part.set_minibatch_state(part_state)

    def reset_minibatch_state(self):
        """Fresh minibatch state of every part that has one."""
        for part in self.parts:
            if hasattr(part, "reset_minibatch_state"):
                part.reset_minibatch_state()


def add(first, second):
    """``Sum(first, second)``; what ``first + second`` does for potentials."""
    return Sum(first, second)
