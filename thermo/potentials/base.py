"""The potential protocol: how Numba kernels see a potential U(θ).

Conventions (used everywhere in thermo)
---------------------------------------
* ``U(θ)`` is the *total* potential energy: for a network posterior it is the
  sum (not the mean) of the per-example losses over the N training points plus
  the negative log prior.  Samplers target ``π(θ) ∝ exp(-β U(θ))`` with ``β``
  the inverse temperature.
* A potential is a plain Python object with a ``kernel_data`` attribute: an
  instance of a ``typing.NamedTuple`` subclass holding only arrays and scalars.
  Numba specialises every sampler kernel on the NamedTuple *class*, so one
  compiled (and disk-cached) sampler loop serves each kind of potential.
* The NamedTuple class is tied to its jitted implementation with
  :func:`register`.  Kernels then call the generic functions below, which Numba
  resolves at compile time through ``numba.extending.overload``.

Why not pass jitted functions as arguments?  Numba keys its disk cache on the
dispatcher object's identity for first-class function arguments, so every new
process recompiled every sampler (measured: 3.4 s per run of a toy script,
versus 1.2 s with NamedTuple dispatch and a warm cache).

Generic kernel-side functions
-----------------------------
``energy_gradient(data, theta, gradient, rng) -> float``
    Unbiased estimate of U(θ) and ∇U(θ) (a minibatch estimate for stochastic
    potentials; the exact values otherwise).  Writes ∇U into ``gradient``.
    May draw random numbers (minibatch indices) from ``rng``, a
    ``numpy.random.Generator``.
``full_energy_gradient(data, theta, gradient) -> float``
    Exact U(θ) and ∇U(θ) (full batch).  Defaults to ``energy_gradient`` with
    no random draws for deterministic potentials.
``energy_gradient_variance(data, theta, gradient, variance, rng) -> float``
    Like ``energy_gradient`` and also writes into ``variance`` the per-
    coordinate variance of the gradient *estimator* (zero for exact
    gradients).  Used by CCAdL.  Default: zeros.
``accuracy(data, theta) -> float``
    Classification accuracy on the potential's data, NaN when undefined.

A new potential in a few lines::

    from typing import NamedTuple
    import numpy as np
    from thermo.potentials import Potential, register

    class QuarticData(NamedTuple):
        stiffness: float

    def quartic_energy_gradient(data, theta, gradient, rng):
        energy = 0.0
        for i in range(theta.size):
            gradient[i] = 4.0 * data.stiffness * theta[i] ** 3
            energy += data.stiffness * theta[i] ** 4
        return energy

    register(QuarticData, quartic_energy_gradient)

    class Quartic(Potential):
        def __init__(self, dimension, stiffness=1.0):
            super().__init__(dimension, QuarticData(float(stiffness)))

The implementation is an ordinary Python function written in the Numba
subset; thermo compiles it inside the sampler kernels.  Put every parameter in
the NamedTuple, not in a closure: two classes of one name whose functions
differ only in closure constants are not told apart by Numba's caches.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from thermo import _numba_cache  # noqa: F401  (tolerant cache index, before any compile)
from numba.extending import overload

__all__ = [
    "register",
    "energy_gradient",
    "full_energy_gradient",
    "energy_gradient_variance",
    "accuracy",
    "Potential",
]

# NamedTuple class -> dict of implementations (pure Python functions in the
# Numba subset).  Filled by register() at import time of each potential module,
# consulted by the overloads below at compile time.
_IMPLEMENTATIONS: dict = {}


def register(data_class, energy_gradient, full_energy_gradient=None,
             energy_gradient_variance=None, accuracy=None):
    """Tie a NamedTuple class to the jitted implementation of a potential.

    Parameters
    ----------
    data_class : type
        A ``typing.NamedTuple`` subclass (arrays and scalars only).
    energy_gradient : callable
        ``f(data, theta, gradient, rng) -> U``; writes ∇U into ``gradient``.
    full_energy_gradient : callable, optional
        ``f(data, theta, gradient) -> U``, exact.  Defaults to calling
        ``energy_gradient`` (correct for deterministic potentials only).
    energy_gradient_variance : callable, optional
        ``f(data, theta, gradient, variance, rng) -> U``.
    accuracy : callable, optional
        ``f(data, theta) -> float``.

    Returns
    -------
    None
        The class is registered for every kernel compiled afterwards.

    Examples
    --------
    >>> from typing import NamedTuple
    >>> class SlopeData(NamedTuple):
    ...     slope: float
    >>> def slope_energy_gradient(data, theta, gradient, rng):
    ...     gradient[:] = data.slope
    ...     return data.slope * theta.sum()
    >>> register(SlopeData, slope_energy_gradient)
    >>> Potential(2, SlopeData(3.0)).energy(np.array([1.0, 2.0]))
    9.0
    """
    if not (isinstance(data_class, type) and issubclass(data_class, tuple)
            and hasattr(data_class, "_fields")):
        raise TypeError(f"register() needs a NamedTuple class, got {data_class!r}")
    if not callable(energy_gradient):
        raise TypeError("energy_gradient must be a function")
    implementations = {"energy_gradient": energy_gradient}
    if full_energy_gradient is not None:
        implementations["full_energy_gradient"] = full_energy_gradient
    if energy_gradient_variance is not None:
        implementations["energy_gradient_variance"] = energy_gradient_variance
    if accuracy is not None:
        implementations["accuracy"] = accuracy
    _IMPLEMENTATIONS[data_class] = implementations


def _lookup(data_type, name):
    data_class = getattr(data_type, "instance_class", None)
    entry = _IMPLEMENTATIONS.get(data_class)
    if entry is None:
        return None
    return entry.get(name)


# --- generic functions: Python bodies are never run, Numba uses the overloads.
# The overloads are not cached themselves: their code is compiled into, and
# cached with, each calling kernel, and a potential defined where Numba finds
# no source file (a REPL, a doctest) could not be cached at all.

def energy_gradient(data, theta, gradient, rng):
    """Stochastic estimate of U and ∇U (kernel-side; see module docstring)."""
    raise NotImplementedError("call from Numba code, or use Potential methods")


def full_energy_gradient(data, theta, gradient):
    """Exact U and ∇U (kernel-side)."""
    raise NotImplementedError("call from Numba code, or use Potential methods")


def energy_gradient_variance(data, theta, gradient, variance, rng):
    """U, ∇U and the per-coordinate variance of the ∇U estimator (kernel-side)."""
    raise NotImplementedError("call from Numba code, or use Potential methods")


def accuracy(data, theta):
    """Classification accuracy, NaN where undefined (kernel-side)."""
    raise NotImplementedError("call from Numba code, or use Potential methods")


@overload(energy_gradient)
def _overload_energy_gradient(data, theta, gradient, rng):
    return _lookup(data, "energy_gradient")


@overload(full_energy_gradient)
def _overload_full_energy_gradient(data, theta, gradient):
    implementation = _lookup(data, "full_energy_gradient")
    if implementation is not None:
        return implementation
    if _lookup(data, "energy_gradient") is None:
        return None

    def deterministic(data, theta, gradient):
        # Deterministic potentials ignore the generator, so None stands in for
        # it (a potential that draws must register full_energy_gradient).
        return energy_gradient(data, theta, gradient, None)
    return deterministic


@overload(energy_gradient_variance)
def _overload_energy_gradient_variance(data, theta, gradient, variance, rng):
    implementation = _lookup(data, "energy_gradient_variance")
    if implementation is not None:
        return implementation
    if _lookup(data, "energy_gradient") is None:
        return None

    def exact_gradient(data, theta, gradient, variance, rng):
        variance[:] = 0.0
        return energy_gradient(data, theta, gradient, rng)
    return exact_gradient


@overload(accuracy)
def _overload_accuracy(data, theta):
    implementation = _lookup(data, "accuracy")
    if implementation is not None:
        return implementation
    if _lookup(data, "energy_gradient") is None:
        return None

    def undefined(data, theta):
        return np.nan
    return undefined


# --- Python-side calls into the kernels (one compiled wrapper per data class).

@njit(cache=True)
def _call_energy_gradient(data, theta, gradient, rng):
    return energy_gradient(data, theta, gradient, rng)


@njit(cache=True)
def _call_full_energy_gradient(data, theta, gradient):
    return full_energy_gradient(data, theta, gradient)


@njit(cache=True)
def _call_energy_gradient_variance(data, theta, gradient, variance, rng):
    return energy_gradient_variance(data, theta, gradient, variance, rng)


@njit(cache=True)
def _call_accuracy(data, theta):
    return accuracy(data, theta)


class Potential:
    """Base class of all potentials U(θ) sampled as exp(-β U).

    Subclasses set ``dimension`` (length of θ) and ``kernel_data`` (a
    registered NamedTuple instance).  ``dtype`` is the floating type θ must
    have (float64 unless a subclass says otherwise).

    U is the *total* energy (sum over data plus prior for posteriors), never a
    mean; see :mod:`thermo.potentials.base`.

    Parameters
    ----------
    dimension : int
        Length of θ.
    kernel_data : NamedTuple
        Instance of a class registered with :func:`register`.

    Examples
    --------
    >>> from thermo.potentials import Gaussian
    >>> potential = Gaussian(np.zeros(2), np.eye(2))
    >>> energy, gradient = potential.energy_and_gradient(np.array([1.0, 2.0]))
    >>> energy, gradient.tolist()
    (2.5, [1.0, 2.0])
    """

    dtype = np.dtype(np.float64)
    stochastic = False  # True when energy_gradient is a minibatch estimate

    def __init__(self, dimension, kernel_data):
        dimension = int(dimension)
        if dimension < 1:
            raise ValueError(f"dimension must be >= 1, got {dimension}")
        if type(kernel_data) not in _IMPLEMENTATIONS:
            raise TypeError(
                f"{type(kernel_data).__name__} is not registered; call "
                "thermo.potentials.register(data_class, energy_gradient) first")
        self.dimension = dimension
        self.kernel_data = kernel_data

    def __add__(self, other):
        """``a + b`` is the potential U_a + U_b (see thermo.potentials.priors.Sum)."""
        if not isinstance(other, Potential):
            return NotImplemented
        from thermo.potentials.priors import Sum
        return Sum(self, other)

    # -- validation shared by every entry point that takes θ from a user
    def check_theta(self, theta, name="theta"):
        """Return θ as a contiguous array of the right dtype, or raise.

        Raises ``TypeError`` for non-float input and ``ValueError`` for a wrong
        length or non-finite values.
        """
        theta = np.asarray(theta)
        if theta.dtype.kind != "f":
            raise TypeError(f"{name} must be a float array, got dtype {theta.dtype}")
        if theta.ndim != 1 or theta.shape[0] != self.dimension:
            raise ValueError(
                f"{name} must have shape ({self.dimension},), got {theta.shape}")
        if not np.all(np.isfinite(theta)):
            raise ValueError(f"{name} contains NaN or inf")
        return np.ascontiguousarray(theta, dtype=self.dtype)

    def energy_and_gradient(self, theta, full=True, rng=None):
        """U(θ) and ∇U(θ): exact when ``full`` (default), else one minibatch
        estimate drawn with ``rng`` (a ``numpy.random.Generator``)."""
        theta = self.check_theta(theta)
        gradient = np.empty_like(theta)
        if full:
            energy = _call_full_energy_gradient(self.kernel_data, theta, gradient)
        else:
            if rng is None:
                rng = np.random.default_rng()
            energy = _call_energy_gradient(self.kernel_data, theta, gradient, rng)
        return float(energy), gradient

    def energy(self, theta, full=True, rng=None):
        """U(θ) (total energy, see class docstring)."""
        return self.energy_and_gradient(theta, full=full, rng=rng)[0]

    def gradient(self, theta, full=True, rng=None):
        """∇U(θ)."""
        return self.energy_and_gradient(theta, full=full, rng=rng)[1]

    def energy_gradient_variance(self, theta, rng=None):
        """U, ∇U and the per-coordinate variance of the ∇U estimator."""
        theta = self.check_theta(theta)
        gradient = np.empty_like(theta)
        variance = np.empty_like(theta)
        if rng is None:
            rng = np.random.default_rng()
        energy = _call_energy_gradient_variance(
            self.kernel_data, theta, gradient, variance, rng)
        return float(energy), gradient, variance

    def accuracy(self, theta):
        """Classification accuracy at θ (NaN when the potential has none)."""
        return float(_call_accuracy(self.kernel_data, self.check_theta(theta)))
