"""Gaussian noise vectors for the sampler kernels, drawn in parallel blocks.

Every Langevin step needs a vector ξ ~ N(0, I) of the size d of θ.  Drawn one
by one from a :class:`numpy.random.Generator` inside Numba this costs about
12-16 ns per normal (the bit generator is reached through a function
pointer), which for a 784-100-10 network (d = 79,510) is as much as the
gradient itself, and a Generator cannot be used inside a parallel region
(each use in a ``prange`` body costs milliseconds).

So a noise vector of d ≥ :data:`BLOCKED_FROM` entries is cut into
:data:`NOISE_BLOCKS` fixed blocks ``[k d // K, (k + 1) d // K)``, and block k
is filled by its own PCG64 stream, implemented here inline (no function
pointer) and run in parallel over the blocks.  The streams are seeded from
the run's Generator in every call: 2 K integers ``rng.integers(0, 2**63 -
1)`` give each block a fresh 128-bit PCG64 state, with increment ``2k + 1``.
Consequences:

* the run's only random state is still its Generator (checkpoints and
  resumes are unchanged, and runs stay chunk-invariant);
* results do not depend on the number of threads (the blocks are fixed);
* every draw is reproducible in plain NumPy: block k equals
  ``Generator(PCG64 with that state and increment).standard_normal(n_k)``,
  bit for bit (:func:`reference_standard_normals` does exactly this; the
  inline PCG64 and ziggurat are NumPy's algorithms).

Vectors shorter than :data:`BLOCKED_FROM` (toy potentials, small networks)
are drawn from the Generator itself, one ``rng.standard_normal()`` per entry,
in order: for them the draws are those of NumPy's ``rng.standard_normal(d)``.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic
from numba.np.random._constants import (fi_double, ki_double, wi_double, ziggurat_nor_inv_r,
                                        ziggurat_nor_r)

from thermo import _numba_cache  # noqa: F401  (threading layer, tolerant cache index)

__all__ = ["NOISE_BLOCKS", "BLOCKED_FROM", "standard_normals", "reference_standard_normals"]

NOISE_BLOCKS = 8
"""Number of independent streams (and parallel blocks) of a long noise vector."""

BLOCKED_FROM = 4096
"""Noise vectors with at least this many entries are drawn in blocks."""

_SEED_HIGH = 2 ** 63 - 1          # rng.integers(0, _SEED_HIGH): Numba and NumPy agree on it
_WI = np.asarray(wi_double, dtype=np.float64)
_KI = np.asarray(ki_double, dtype=np.uint64)
_FI = np.asarray(fi_double, dtype=np.float64)
_MULTIPLIER_HIGH = np.uint64(0x2360ED051FC65DA4)   # PCG's default 128-bit multiplier
_MULTIPLIER_LOW = np.uint64(0x4385DF649FCCF645)
_TO_UNIT = 1.0 / 9007199254740992.0               # 2**-53


@intrinsic
def _multiply_high(typingctx, a, b):
    """High 64 bits of the 128-bit product of two uint64 (one ``mul`` instruction)."""
    signature = types.uint64(types.uint64, types.uint64)

    def codegen(context, builder, sig, args):
        wide = ir.IntType(128)
        product = builder.mul(builder.zext(args[0], wide), builder.zext(args[1], wide))
        return builder.trunc(builder.lshr(product, ir.Constant(wide, 64)), ir.IntType(64))
    return signature, codegen


@njit(cache=True, inline="always")
def _pcg64_next(state_high, state_low, increment):
    """One PCG64 (XSL-RR 128/64) step: returns (output, new state high, low).

    The state is advanced first and the output taken from the new state, as
    in NumPy's ``pcg64_next64``; ``increment`` is the low word of the 128-bit
    increment (its high word is 0 here).
    """
    low = state_low * _MULTIPLIER_LOW
    high = (_multiply_high(state_low, _MULTIPLIER_LOW) + state_low * _MULTIPLIER_HIGH
            + state_high * _MULTIPLIER_LOW)
    new_low = low + increment
    new_high = high + (np.uint64(1) if new_low < low else np.uint64(0))
    mixed = new_high ^ new_low
    rotation = new_high >> np.uint64(58)
    output = (mixed >> rotation) | (mixed << ((np.uint64(64) - rotation) & np.uint64(63)))
    return output, new_high, new_low


@njit(cache=True)
def _fill_block(out, start, stop, state_high, state_low, increment):
    """``out[start:stop]`` ← standard normals of one PCG64 stream.

    NumPy's ziggurat (``random_standard_normal``) with the state kept in
    registers; 99 % of the draws take the first branch.
    """
    i = start
    while i < stop:
        bits, state_high, state_low = _pcg64_next(state_high, state_low, increment)
        index = np.int64(bits & np.uint64(0xFF))
        bits >>= np.uint64(8)
        magnitude = (bits >> np.uint64(1)) & np.uint64(0x000FFFFFFFFFFFFF)
        # magnitude < 2**52: converting it as a signed integer is exact and
        # one instruction (AVX2 has no unsigned 64-bit conversion).  The sign
        # is a multiplication by ±1 (exact, so the draws are NumPy's): as an
        # ``if`` it was a branch taken at random half the time, and its
        # mispredictions cost 70 % more time per draw (69 against 40 µs for
        # 7,850 draws with fresh seeds; a benchmark that reuses its seeds
        # trains the predictor and hides this).
        sign = 1.0 - 2.0 * np.float64(np.int64(bits & np.uint64(1)))
        x = np.float64(np.int64(magnitude)) * _WI[index] * sign
        if magnitude < _KI[index]:
            out[i] = x
            i += 1
            continue
        if index == 0:                       # the tail beyond r: Marsaglia's method
            while True:
                u, state_high, state_low = _pcg64_next(state_high, state_low, increment)
                xx = -ziggurat_nor_inv_r * math.log1p(
                    -(np.float64(np.int64(u >> np.uint64(11))) * _TO_UNIT))
                u, state_high, state_low = _pcg64_next(state_high, state_low, increment)
                yy = -math.log1p(-(np.float64(np.int64(u >> np.uint64(11))) * _TO_UNIT))
                if yy + yy > xx * xx:
                    if (magnitude >> np.uint64(8)) & np.uint64(1):
                        out[i] = -(ziggurat_nor_r + xx)
                    else:
                        out[i] = ziggurat_nor_r + xx
                    i += 1
                    break
        else:                                # the wedge: accept against the density
            u, state_high, state_low = _pcg64_next(state_high, state_low, increment)
            uniform = np.float64(np.int64(u >> np.uint64(11))) * _TO_UNIT
            if (_FI[index - 1] - _FI[index]) * uniform + _FI[index] < math.exp(-0.5 * x * x):
                out[i] = x
                i += 1


@njit(cache=True, parallel=True)
def _fill_blocks(out, seeds):
    d = out.size
    for k in prange(NOISE_BLOCKS):
        _fill_block(out, k * d // NOISE_BLOCKS, (k + 1) * d // NOISE_BLOCKS,
                    seeds[2 * k], seeds[2 * k + 1], np.uint64(2 * k + 1))


@njit(cache=True)
def standard_normals(rng, out):
    """Fill ``out`` with independent standard normal draws (see module docstring).

    Parameters
    ----------
    rng : numpy.random.Generator
        The run's Generator: the source of every draw (directly for short
        vectors, through the block seeds for long ones).
    out : numpy.ndarray
        1-D float array to fill.

    Returns
    -------
    None

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> out = np.empty(3)
    >>> standard_normals(rng, out)
    >>> bool(np.array_equal(out, np.random.default_rng(0).standard_normal(3)))
    True
    """
    d = out.size
    if d < BLOCKED_FROM:
        for i in range(d):
            out[i] = rng.standard_normal()
        return
    seeds = np.empty(2 * NOISE_BLOCKS, dtype=np.uint64)
    for j in range(2 * NOISE_BLOCKS):
        seeds[j] = np.uint64(rng.integers(0, _SEED_HIGH))
    _fill_blocks(out, seeds)


def reference_standard_normals(rng, size):
    """The draws of :func:`standard_normals`, computed with NumPy alone.

    Parameters
    ----------
    rng : numpy.random.Generator
        Advanced exactly as :func:`standard_normals` advances it.
    size : int
        Length of the noise vector.

    Returns
    -------
    numpy.ndarray
        float64 array of ``size`` standard normals, bit-identical to what
        :func:`standard_normals` writes for a Generator in the same state.

    Examples
    --------
    >>> a = reference_standard_normals(np.random.default_rng(1), 5000)
    >>> b = np.empty(5000)
    >>> standard_normals(np.random.default_rng(1), b)
    >>> bool(np.array_equal(a, b))
    True
    """
    size = int(size)
    if size < BLOCKED_FROM:
        return rng.standard_normal(size)
    seeds = rng.integers(0, _SEED_HIGH, size=2 * NOISE_BLOCKS).astype(np.uint64)
    parts = []
    for k in range(NOISE_BLOCKS):
        bit_generator = np.random.PCG64()
        bit_generator.state = {"bit_generator": "PCG64",
                               "state": {"state": (int(seeds[2 * k]) << 64) | int(seeds[2 * k + 1]),
                                         "inc": 2 * k + 1},
                               "has_uint32": 0, "uinteger": 0}
        n_block = (k + 1) * size // NOISE_BLOCKS - k * size // NOISE_BLOCKS
        parts.append(np.random.Generator(bit_generator).standard_normal(n_block))
    return np.concatenate(parts)
