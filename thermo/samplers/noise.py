"""Gaussian noise vectors for the sampler kernels, drawn in parallel blocks.

Every Langevin step needs a vector ξ ~ N(0, I) of the size d of θ.  Drawn one
by one from a :class:`numpy.random.Generator` inside Numba this costs about
12-16 ns per normal (the bit generator is reached through a function
pointer), which for a 784-100-10 network (d = 79,510) is as much as the
gradient itself, and a Generator cannot be used inside a parallel region
(each use in a ``prange`` body costs milliseconds).

So a noise vector of d ≥ :data:`BLOCKED_FROM` entries is cut into
:data:`NOISE_BLOCKS` fixed blocks ``[k d // K, (k + 1) d // K)``, and block k
is filled by its own SFC64 stream, implemented here inline (no function
pointer) and run in parallel over the blocks.  The streams are seeded from
the run's Generator in every call: 3 K integers ``rng.integers(0, 2**63 -
1)`` give each block a fresh state (a, b, c) with counter 1, after which the
stream discards :data:`WARM_UP` outputs, as NumPy's own SFC64 seeding does.

Why SFC64 (NumPy's ``numpy.random.SFC64``) and not PCG64: a PCG64 step is a
128-bit multiply, the slowest part of a draw on the CPUs here; SFC64 uses
additions, shifts and a rotation, and passes the same statistical test
batteries (PractRand, TestU01 BigCrush).  With it a draw takes ~3.6 ns
instead of ~5.1 ns on one core.  The ziggurat's sign is a multiplication
by ±1, not a branch: a branch taken at random half the time made every
draw 70 % slower through mispredictions.

Consequences:

* the run's only random state is still its Generator (checkpoints and
  resumes are unchanged, and runs stay chunk-invariant);
* results do not depend on the number of threads (the blocks are fixed);
* every draw is reproducible in plain NumPy: block k equals
  ``Generator(SFC64 with that state, WARM_UP outputs discarded)
  .standard_normal(n_k)``, bit for bit (:func:`reference_standard_normals`
  does exactly this; the inline SFC64 and ziggurat are NumPy's algorithms).

Vectors shorter than :data:`BLOCKED_FROM` (toy potentials, small networks)
are drawn from the Generator itself, one ``rng.standard_normal()`` per entry,
in order: for them the draws are those of NumPy's ``rng.standard_normal(d)``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numba.np.random._constants import (fi_double, ki_double, wi_double, ziggurat_nor_inv_r,
                                        ziggurat_nor_r)

from thermo import _numba_cache  # noqa: F401  (threading layer, tolerant cache index)

__all__ = ["NOISE_BLOCKS", "BLOCKED_FROM", "WARM_UP", "standard_normals", "reference_standard_normals"]

NOISE_BLOCKS = 8
"""Number of independent streams (and parallel blocks) of a long noise vector."""

BLOCKED_FROM = 4096
"""Noise vectors with at least this many entries are drawn in blocks."""

WARM_UP = 12
"""Outputs each block's SFC64 stream discards after seeding (NumPy's count)."""

_SEED_HIGH = 2 ** 63 - 1          # rng.integers(0, _SEED_HIGH): Numba and NumPy agree on it
_WI = np.asarray(wi_double, dtype=np.float64)
_KI = np.asarray(ki_double, dtype=np.uint64)
_FI = np.asarray(fi_double, dtype=np.float64)
_TO_UNIT = 1.0 / 9007199254740992.0               # 2**-53


@njit(cache=True, inline="always")
def _sfc64_next(a, b, c, counter):
    """One SFC64 step: returns (output, new a, b, c, counter).

    Chris Doty-Humphrey's Small Fast Chaotic generator as NumPy implements it
    (``sfc64_next``): additions, shifts and a rotation, no multiplication, so
    a step is about a third of a PCG64 step (whose 128-bit multiply is the
    slowest part of a normal draw here).
    """
    output = a + b + counter
    counter += np.uint64(1)
    a = b ^ (b >> np.uint64(11))
    b = c + (c << np.uint64(3))
    c = ((c << np.uint64(24)) | (c >> np.uint64(40))) + output
    return output, a, b, c, counter


@njit(cache=True)
def _fill_block(out, start, stop, a, b, c):
    """``out[start:stop]`` ← standard normals of one SFC64 stream.

    The stream starts from state (a, b, c, counter 1) and first discards
    :data:`WARM_UP` outputs, as NumPy's own SFC64 seeding does.  Then
    NumPy's ziggurat (``random_standard_normal``) with the state kept in
    registers; 99 % of the draws take the first branch.
    """
    counter = np.uint64(1)
    for _ in range(WARM_UP):
        _, a, b, c, counter = _sfc64_next(a, b, c, counter)
    i = start
    while i < stop:
        bits, a, b, c, counter = _sfc64_next(a, b, c, counter)
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
                u, a, b, c, counter = _sfc64_next(a, b, c, counter)
                xx = -ziggurat_nor_inv_r * math.log1p(
                    -(np.float64(np.int64(u >> np.uint64(11))) * _TO_UNIT))
                u, a, b, c, counter = _sfc64_next(a, b, c, counter)
                yy = -math.log1p(-(np.float64(np.int64(u >> np.uint64(11))) * _TO_UNIT))
                if yy + yy > xx * xx:
                    if (magnitude >> np.uint64(8)) & np.uint64(1):
                        out[i] = -(ziggurat_nor_r + xx)
                    else:
                        out[i] = ziggurat_nor_r + xx
                    i += 1
                    break
        else:                                # the wedge: accept against the density
            u, a, b, c, counter = _sfc64_next(a, b, c, counter)
            uniform = np.float64(np.int64(u >> np.uint64(11))) * _TO_UNIT
            if (_FI[index - 1] - _FI[index]) * uniform + _FI[index] < math.exp(-0.5 * x * x):
                out[i] = x
                i += 1


@njit(cache=True, parallel=True)
def _fill_blocks(out, seeds):
    d = out.size
    for k in prange(NOISE_BLOCKS):
        _fill_block(out, k * d // NOISE_BLOCKS, (k + 1) * d // NOISE_BLOCKS,
                    seeds[3 * k], seeds[3 * k + 1], seeds[3 * k + 2])


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
    seeds = np.empty(3 * NOISE_BLOCKS, dtype=np.uint64)
    for j in range(3 * NOISE_BLOCKS):
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
    seeds = rng.integers(0, _SEED_HIGH, size=3 * NOISE_BLOCKS).astype(np.uint64)
    parts = []
    for k in range(NOISE_BLOCKS):
        bit_generator = np.random.SFC64()
        bit_generator.state = {"bit_generator": "SFC64",
                               "state": {"state": np.array([seeds[3 * k], seeds[3 * k + 1],
                                                            seeds[3 * k + 2], 1], np.uint64)},
                               "has_uint32": 0, "uinteger": 0}
        bit_generator.random_raw(WARM_UP)
        n_block = (k + 1) * size // NOISE_BLOCKS - k * size // NOISE_BLOCKS
        parts.append(np.random.Generator(bit_generator).standard_normal(n_block))
    return np.concatenate(parts)
