"""Pieces shared by the sampler kernels: force evaluation, observables, OU step.

Everything here is ``@njit(cache=True)`` and is called from the per-sampler
chunk kernels (``thermo/samplers/<name>.py``).

Observable columns
------------------
Every kernel writes its records into one ``float64`` array of shape
``(n_records, N_COLUMNS)`` with the fixed column layout :data:`COLUMNS`; a
column a sampler does not define holds NaN and the driver drops it (each
sampler lists the names it defines).  The row of a record after step ``n``
(1-based total count) is written by :func:`record_observables`:

``step``
    total number of completed steps n.
``energy``
    U(θ_n) as the sampler used it (the minibatch estimate for stochastic
    potentials; the exact value otherwise).  Without the bias.
``bias_energy``
    V(θ_n) of the bias (0 without bias).
``kinetic_energy``, ``kinetic_temperature``
    K = |p|²/2 and |p|²/d, with p the momentum *right after the O
    (Ornstein–Uhlenbeck) step* of step n (each scheme's docstring says which
    that is).  ⟨|p|²/d⟩ = 1/β for exact sampling.
``configurational_temperature``, ``virial``
    both hold θ·∇(U+V)/d.  By integration by parts ⟨θ_i ∂_i U⟩ = 1/β for
    any smooth U whose Boltzmann density decays fast enough (generalised
    equipartition), so the *average* of this column estimates kT.  The
    Rugh/Butler estimator kT = ⟨|∇U|²⟩/⟨∇²U⟩ needs the Laplacian, which is
    not part of the potential protocol; potentials that register one with
    :func:`register_laplacian` (the analytic potentials do) get a
    ``laplacian`` column, and :meth:`thermo.samplers.Run.configurational_temperature`
    then returns mean(gradient_norm²)/mean(laplacian).  A per-record ratio
    is never formed (it is not an estimator of kT).
``gradient_norm``
    |∇(U+V)(θ_n)|, the gradient the dynamics used (bias included).
``noise_norm``
    Euclidean norm of the noise vector added to θ or p in step n.
``thermostat``
    the adaptive friction ξ of CCAdL.
``acceptance``
    Metropolis acceptance (HMC; 0/1 per step or a rate).
``accuracy``
    classification accuracy at θ_n (only with ``record_accuracy=True``).
``full_energy``
    exact U(θ_n) (only with ``record_full_energy=True``).
``laplacian``
    ∇²U(θ_n) when the potential registered a Laplacian.
``bias_weight_log``
    ``bias_weight_log(bias_data)``, the log reweighting factor of the bias
    after step n (only when a bias is given; written by
    :func:`record_bias_weight_log`, NaN otherwise).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.extending import overload

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)
from thermo.bias.base import bias_energy_gradient, bias_weight_log
from thermo.potentials.base import accuracy, energy_gradient, full_energy_gradient

# Numba's threading layer is started by thermo._numba_cache, which the
# imports above load before any kernel of this module is compiled or loaded.

__all__ = [
    "COLUMNS", "N_COLUMNS", "column_index",
    "register_laplacian", "has_laplacian", "laplacian",
    "evaluate_force", "ornstein_uhlenbeck_coefficients", "record_observables",
    "all_finite", "pair_finite", "virial_and_gradient_norm", "record_bias_weight_log", "initial_momentum", "initial_force",
]

COLUMNS = ("step", "energy", "bias_energy", "kinetic_energy", "kinetic_temperature",
           "configurational_temperature", "virial", "gradient_norm", "noise_norm",
           "thermostat", "acceptance", "accuracy", "full_energy", "laplacian",
           "bias_weight_log")
N_COLUMNS = len(COLUMNS)

# Column indices (module-level ints are compile-time constants in Numba).
STEP = 0
ENERGY = 1
BIAS_ENERGY = 2
KINETIC_ENERGY = 3
KINETIC_TEMPERATURE = 4
CONFIGURATIONAL_TEMPERATURE = 5
VIRIAL = 6
GRADIENT_NORM = 7
NOISE_NORM = 8
THERMOSTAT = 9
ACCEPTANCE = 10
ACCURACY = 11
FULL_ENERGY = 12
LAPLACIAN = 13
BIAS_WEIGHT_LOG = 14


def column_index(name):
    """Index of observable ``name`` in the record array (ValueError if unknown)."""
    try:
        return COLUMNS.index(name)
    except ValueError:
        raise ValueError(f"unknown observable {name!r}; known: {', '.join(COLUMNS)}") from None


# --- optional Laplacian of a potential (for the configurational temperature)

_LAPLACIANS: dict = {}


def register_laplacian(data_class, function):
    """Register ``function(data, theta) -> ∇²U(θ)`` for a potential's NamedTuple class.

    Optional: potentials without one simply have no ``laplacian`` observable.
    Register before the first sampler run with that potential class (the
    choice is compiled into the cached kernels).
    """
    if not (isinstance(data_class, type) and hasattr(data_class, "_fields")):
        raise TypeError(f"register_laplacian() needs a NamedTuple class, got {data_class!r}")
    _LAPLACIANS[data_class] = function


def has_laplacian(potential):
    """True when ``potential``'s kernel data class has a registered Laplacian."""
    return type(potential.kernel_data) in _LAPLACIANS


def laplacian(data, theta):
    """∇²U(θ), NaN when the potential registered none (kernel-side)."""
    raise NotImplementedError("call from Numba code")


@overload(laplacian)
def _overload_laplacian(data, theta):
    implementation = _LAPLACIANS.get(getattr(data, "instance_class", None))
    if implementation is not None:
        return implementation

    def undefined(data, theta):
        return np.nan
    return undefined


# --- shared kernel pieces

@njit(cache=True)
def evaluate_force(potential_data, bias_data, theta, gradient, rng):
    """U(θ) and V(θ); writes ∇(U + V)(θ) into ``gradient``.

    The one gradient evaluation of a step: ``energy_gradient`` (minibatch
    estimate for stochastic potentials, may draw from ``rng``) followed by
    ``bias_energy_gradient`` which adds ∇V.
    """
    energy = energy_gradient(potential_data, theta, gradient, rng)
    bias_energy = bias_energy_gradient(bias_data, theta, gradient)
    return energy, bias_energy


@njit(cache=True)
def ornstein_uhlenbeck_coefficients(friction, step_size, beta):
    """Coefficients of the exact OU step ``p ← c p + σ ξ``, ξ ~ N(0, I).

    Exact solution over time h of dp = -γ p dt + sqrt(2γ/β) dW:
    c = exp(-γ h), σ = sqrt((1 - c²)/β) (σ = 0 for β = ∞).
    """
    c = math.exp(-friction * step_size)
    if math.isinf(beta):
        return c, 0.0
    return c, math.sqrt((1.0 - c * c) / beta)


# Largest finite float64: |x| <= _FINITE_MAX is False exactly for NaN and ±inf.
_FINITE_MAX = 1.7976931348623157e308


@njit(cache=True)
def all_finite(array):
    """True when every entry of ``array`` is finite.

    A branch-free AND over comparisons, not an early-exit loop or a sum: an
    integer AND reduction vectorises without fastmath (a float sum would run
    at one add per 4 cycles), and it cannot overflow.
    """
    ok = True
    for i in range(array.size):
        ok &= abs(array[i]) <= _FINITE_MAX
    return ok


@njit(cache=True)
def pair_finite(a, b):
    """True when every entry of ``a`` and ``b`` (same size) is finite."""
    ok = True
    for i in range(a.size):
        ok &= (abs(a[i]) <= _FINITE_MAX) & (abs(b[i]) <= _FINITE_MAX)
    return ok


@njit(cache=True)
def virial_and_gradient_norm(theta, gradient):
    """θ·∇ and |∇| in four interleaved partial sums, combined in a fixed order.

    Deterministic (the order does not depend on the machine or the thread
    count) and free of the 4-cycle add latency chain of a plain serial sum,
    which made recording cost as much as a tanh network's noise draws.  |∇|
    is computed without overflow: Σ g² directly, and scaled by max |g| only
    when that sum overflows or underflows.
    """
    n = theta.size
    n4 = n - n % 4
    v0 = v1 = v2 = v3 = 0.0
    s0 = s1 = s2 = s3 = 0.0
    for i in range(0, n4, 4):
        g0 = np.float64(gradient[i])
        g1 = np.float64(gradient[i + 1])
        g2 = np.float64(gradient[i + 2])
        g3 = np.float64(gradient[i + 3])
        v0 += theta[i] * g0
        v1 += theta[i + 1] * g1
        v2 += theta[i + 2] * g2
        v3 += theta[i + 3] * g3
        s0 += g0 * g0
        s1 += g1 * g1
        s2 += g2 * g2
        s3 += g3 * g3
    for i in range(n4, n):
        g0 = np.float64(gradient[i])
        v0 += theta[i] * g0
        s0 += g0 * g0
    virial = (v0 + v1) + (v2 + v3)
    squared = (s0 + s1) + (s2 + s3)
    if squared > 1e-290 and squared <= _FINITE_MAX:
        return virial, math.sqrt(squared)
    largest = 0.0
    for i in range(n):
        largest = max(largest, abs(np.float64(gradient[i])))
    if not (largest > 0.0 and largest <= _FINITE_MAX):
        return virial, math.sqrt(squared)     # zero gradient, or NaN/inf entries
    squared = 0.0                             # rare path: scaled by max |g|
    for i in range(n):
        scaled = gradient[i] / largest
        squared += scaled * scaled
    return virial, largest * math.sqrt(squared)


@njit(cache=True)
def record_observables(records, trajectory, row, potential_data, theta, gradient, step,
                       energy, bias_energy, momentum_squared, noise_squared, thermostat,
                       acceptance, record_accuracy, record_full_energy, scratch):
    """Write the observables of the state after step ``step`` into ``records[row]``.

    ``gradient`` is the cached ∇(U+V)(θ); ``momentum_squared`` is |p|² after
    the O step (NaN for schemes without momentum); ``noise_squared`` the
    squared norm of the noise added in this step; ``thermostat`` and
    ``acceptance`` NaN where undefined.  ``scratch`` (size d when
    ``record_full_energy``) receives the full-batch gradient.  Copies θ into
    ``trajectory[row]`` when ``trajectory`` has rows.  See the module
    docstring for the column meanings.
    """
    d = theta.size
    virial, gradient_norm = virial_and_gradient_norm(theta, gradient)
    out = records[row]
    out[STEP] = step
    out[ENERGY] = energy
    out[BIAS_ENERGY] = bias_energy
    out[KINETIC_ENERGY] = 0.5 * momentum_squared
    out[KINETIC_TEMPERATURE] = momentum_squared / d
    out[CONFIGURATIONAL_TEMPERATURE] = virial / d
    out[VIRIAL] = virial / d
    out[GRADIENT_NORM] = gradient_norm
    out[NOISE_NORM] = math.sqrt(noise_squared)
    out[THERMOSTAT] = thermostat
    out[ACCEPTANCE] = acceptance
    if record_accuracy:
        out[ACCURACY] = accuracy(potential_data, theta)
    else:
        out[ACCURACY] = np.nan
    if record_full_energy:
        out[FULL_ENERGY] = full_energy_gradient(potential_data, theta, scratch)
    else:
        out[FULL_ENERGY] = np.nan
    out[LAPLACIAN] = laplacian(potential_data, theta)
    out[BIAS_WEIGHT_LOG] = np.nan
    if trajectory.shape[0] > 0:
        for i in range(d):
            trajectory[row, i] = theta[i]


@njit(cache=True)
def record_bias_weight_log(records, row, bias_data):
    """Write the bias's log reweighting factor into ``records[row]`` (call after
    :func:`record_observables` and after ``bias_update``)."""
    records[row, BIAS_WEIGHT_LOG] = bias_weight_log(bias_data)


# --- Python-side helpers for init()

def initial_momentum(rng, dimension, beta, dtype):
    """Maxwell–Boltzmann momenta p ~ N(0, I/β) drawn from ``rng`` (zeros for β = ∞).

    Always draws d standard normals so that the random stream does not
    depend on β.
    """
    draws = rng.standard_normal(dimension)
    scale = 0.0 if math.isinf(beta) else 1.0 / math.sqrt(beta)
    return np.ascontiguousarray(draws * scale, dtype=dtype)


def initial_force(potential, bias, theta, rng):
    """(U, V, ∇(U+V)) at θ with one ``energy_gradient`` call (may draw from rng)."""
    gradient = np.empty_like(theta)
    energy, bias_energy = evaluate_force(potential.kernel_data, bias.kernel_data,
                                         theta, gradient, rng)
    return float(energy), float(bias_energy), gradient


@njit(cache=True)
def _call_laplacian(data, theta):
    return laplacian(data, theta)


def potential_laplacian(potential, theta):
    """∇²U(θ) of ``potential`` (NaN when it registered no Laplacian)."""
    theta = potential.check_theta(theta)
    return float(_call_laplacian(potential.kernel_data, theta))
