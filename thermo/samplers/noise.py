"""Gaussian noise vectors for the sampler kernels, drawn in parallel blocks.

Every Langevin step needs a vector ξ ~ N(0, I) of the size d of θ.  Drawn one
by one from a :class:`numpy.random.Generator` inside Numba this costs about
12-16 ns per normal (the bit generator is reached through a function
pointer), which for a 784-100-10 network (d = 79,510) is as much as the
gradient itself, and a Generator cannot be used inside a parallel region
(each use in a ``prange`` body costs milliseconds).

So a noise vector of d ≥ :data:`BLOCKED_FROM` entries is cut into
:data:`NOISE_BLOCKS` fixed blocks ``[k d // K, (k + 1) d // K)``, and each
block is drawn by :data:`LANES` = 4 SFC64 streams, one per lane of an AVX2
vector: lane j fills the block's positions j, j + 4, j + 8, ...  Blocks run
in parallel from :data:`PARALLEL_FROM` entries on, one after the other
below it.  The streams are seeded from the run's Generator in every call:
4 K integers ``rng.integers(0, 2**63 - 1)``, one per lane, each expanded by
SplitMix64 into the lane's state (a, b, c) with counter 1, after which the
lane discards :data:`WARM_UP` outputs, as NumPy's own SFC64 seeding does.

Speed (one core of the 2-core development machine, 7,850 draws):

* SFC64 (NumPy's ``numpy.random.SFC64``), not PCG64: a PCG64 step is a
  128-bit multiply; SFC64 uses additions, shifts and a rotation, and passes
  the same test batteries (PractRand, TestU01 BigCrush).
* The ziggurat's fast path (99 % of draws: one table lookup, one multiply,
  one compare) runs on four lanes at once in LLVM IR
  (:func:`_vector_normals`); a lane that misses it finishes that normal in
  scalar code.  Per draw 2.2 ns, against 3.6 ns for one scalar stream and
  8.8 ns for the scalar PCG64 version with a branch for the sign (a branch
  taken at random half the time).

Consequences:

* the run's only random state is still its Generator (checkpoints and
  resumes are unchanged, and runs stay chunk-invariant);
* results do not depend on the number of threads (the blocks are fixed);
* every draw is reproducible in plain NumPy: lane j of block k equals
  ``Generator(SFC64 with that lane's state, WARM_UP outputs discarded)
  .standard_normal(n)`` placed at ``block[j::4]``, bit for bit
  (:func:`reference_standard_normals` does exactly this; the inline SFC64
  and ziggurat are NumPy's algorithms).

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

__all__ = ["NOISE_BLOCKS", "LANES", "BLOCKED_FROM", "WARM_UP", "standard_normals",
           "reference_standard_normals"]

NOISE_BLOCKS = 8
"""Number of parallel blocks of a long noise vector."""

LANES = 4
"""SFC64 streams per block, one per AVX2 lane: lane j fills positions j, j + 4, ..."""

BLOCKED_FROM = 4096
"""Noise vectors with at least this many entries are drawn in blocks."""

PARALLEL_FROM = 32768
"""Noise vectors with at least this many entries fill their blocks in parallel.

Below it the blocks are filled one after the other on the calling thread
(same draws).  On the 2-core development machine a parallel region costs
~4 µs, and the half of the vector written on the other core must then move
to the core that runs the sampler's update; for the MNIST perceptron (d =
7,850) a whole BAOAB step measured 130 µs with serial noise against 180 µs
with parallel noise (alternating processes).  At d = 79,510 the two were
within the machine's noise.
"""

WARM_UP = 12
"""Outputs each SFC64 stream discards after seeding (NumPy's count)."""

_SEED_HIGH = 2 ** 63 - 1          # rng.integers(0, _SEED_HIGH): Numba and NumPy agree on it
_WI = np.asarray(wi_double, dtype=np.float64)
_KI = np.asarray(ki_double, dtype=np.uint64)
_FI = np.asarray(fi_double, dtype=np.float64)
_TO_UNIT = 1.0 / 9007199254740992.0               # 2**-53
_GOLDEN = 0x9E3779B97F4A7C15                       # SplitMix64's increment and multipliers
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_MASK64 = (1 << 64) - 1


@njit(cache=True, inline="always")
def _sfc64_next(a, b, c, counter):
    """One SFC64 step: returns (output, new a, b, c, counter).

    Chris Doty-Humphrey's Small Fast Chaotic generator as NumPy implements it
    (``sfc64_next``): additions, shifts and a rotation, no multiplication.
    """
    output = a + b + counter
    counter += np.uint64(1)
    a = b ^ (b >> np.uint64(11))
    b = c + (c << np.uint64(3))
    c = ((c << np.uint64(24)) | (c >> np.uint64(40))) + output
    return output, a, b, c, counter


@njit(cache=True, inline="always")
def _splitmix64(x):
    """One SplitMix64 step (Vigna): returns (output, new x)."""
    x += np.uint64(_GOLDEN)
    z = x
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
    return z ^ (z >> np.uint64(31)), x


# A block's generator state: 4 lanes of (a, b, c, counter), stored as a[0:4],
# b[0:4], c[0:4], counter[0:4], so that each word of the 4 lanes is one AVX2
# vector.

@njit(cache=True)
def _seed_lanes(state, seeds, first):
    """Lane j ← (a, b, c) = three SplitMix64 outputs from ``seeds[first + j]``,
    counter 1, then WARM_UP outputs discarded."""
    for j in range(LANES):
        a, x = _splitmix64(seeds[first + j])
        b, x = _splitmix64(x)
        c, x = _splitmix64(x)
        counter = np.uint64(1)
        for _ in range(WARM_UP):
            _, a, b, c, counter = _sfc64_next(a, b, c, counter)
        state[j] = a
        state[LANES + j] = b
        state[2 * LANES + j] = c
        state[3 * LANES + j] = counter


@njit(cache=True)
def _lane_next(state, j):
    """The next output of lane j's stream (scalar, for the rare slow paths)."""
    out, a, b, c, counter = _sfc64_next(state[j], state[LANES + j], state[2 * LANES + j],
                                        state[3 * LANES + j])
    state[j] = a
    state[LANES + j] = b
    state[2 * LANES + j] = c
    state[3 * LANES + j] = counter
    return out


@njit(cache=True)
def _lane_normal(state, j, bits):
    """The normal that begins with lane j's draw ``bits``: NumPy's ziggurat
    (``random_standard_normal``), drawing further from lane j as it needs."""
    while True:
        index = np.int64(bits & np.uint64(0xFF))
        bits >>= np.uint64(8)
        magnitude = (bits >> np.uint64(1)) & np.uint64(0x000FFFFFFFFFFFFF)
        x = np.float64(np.int64(magnitude)) * _WI[index]
        if bits & np.uint64(1):
            x = -x
        if magnitude < _KI[index]:
            return x
        if index == 0:                       # the tail beyond r: Marsaglia's method
            while True:
                xx = -ziggurat_nor_inv_r * math.log1p(
                    -(np.float64(np.int64(_lane_next(state, j) >> np.uint64(11))) * _TO_UNIT))
                yy = -math.log1p(
                    -(np.float64(np.int64(_lane_next(state, j) >> np.uint64(11))) * _TO_UNIT))
                if yy + yy > xx * xx:
                    if (magnitude >> np.uint64(8)) & np.uint64(1):
                        return -(ziggurat_nor_r + xx)
                    return ziggurat_nor_r + xx
        else:                                # the wedge: accept against the density
            uniform = np.float64(np.int64(_lane_next(state, j) >> np.uint64(11))) * _TO_UNIT
            if (_FI[index - 1] - _FI[index]) * uniform + _FI[index] < math.exp(-0.5 * x * x):
                return x
        bits = _lane_next(state, j)


_I64 = ir.IntType(64)
_V4I64 = ir.VectorType(_I64, LANES)
_V4F64 = ir.VectorType(ir.DoubleType(), LANES)


def _splat64(value):
    return ir.Constant(_V4I64, [value] * LANES)


@intrinsic
def _vector_normals(typingctx, out, start, t, stop_t, state, raw, wi, ki):
    """The fast path of four lanes at once, as AVX2 vectors (LLVM IR).

    For rows t' = t, t + 1, ... < stop_t: one SFC64 step per lane, the
    ziggurat's fast test, and ``out[start + 4 t' + j]`` ← lane j's normal.
    Stops at the first row where a lane misses the fast test.  Returns
    (t', mask): (stop_t, 0) when done, else the row t' and the bit mask of
    the lanes that missed, whose draws are left in ``raw`` (the other lanes'
    normals of row t' are written).  The lanes' states go back to ``state``.
    """
    arrays = (out, state, raw, wi, ki)
    dtypes = (types.float64, types.uint64, types.uint64, types.float64, types.uint64)
    if not all(isinstance(a, types.Array) and a.ndim == 1 and a.dtype == d
               for a, d in zip(arrays, dtypes)):
        return None
    sig = types.UniTuple(types.int64, 2)(out, start, t, stop_t, state, raw, wi, ki)

    def codegen(context, builder, signature, args):
        _, start_, t_, stop_, _, _, _, _ = args

        def data(i, elem):
            ary = context.make_array(signature.args[i])(context, builder, args[i])
            return builder.bitcast(ary.data, elem.as_pointer())

        out_p, state_p, raw_p = data(0, ir.DoubleType()), data(4, _I64), data(5, _I64)
        wi_p, ki_p = data(6, ir.DoubleType()), data(7, _I64)

        def vload(ptr):
            v = builder.load(builder.bitcast(ptr, _V4I64.as_pointer()))
            v.align = 8
            return v

        def vstore(value, ptr):
            st = builder.store(value, builder.bitcast(ptr, value.type.as_pointer()))
            st.align = 8

        def store_state(words):
            for q, v in enumerate(words):
                vstore(v, builder.gep(state_p, [_I64(LANES * q)]))

        initial = [vload(builder.gep(state_p, [_I64(LANES * q)])) for q in range(4)]
        entry = builder.block
        head = builder.append_basic_block("normals.head")
        body = builder.append_basic_block("normals.body")
        missed = builder.append_basic_block("normals.missed")
        finished = builder.append_basic_block("normals.finished")
        end = builder.append_basic_block("normals.end")
        builder.branch(head)

        builder.position_at_end(head)
        row = builder.phi(_I64)
        words = [builder.phi(_V4I64) for _ in range(4)]
        row.add_incoming(t_, entry)
        for phi, v in zip(words, initial):
            phi.add_incoming(v, entry)
        builder.cbranch(builder.icmp_signed("<", row, stop_), body, finished)

        builder.position_at_end(body)
        a, b, c, w = words
        r = builder.add(builder.add(a, b), w)                     # SFC64
        new_words = [builder.xor(b, builder.lshr(b, _splat64(11))),
                     builder.add(c, builder.shl(c, _splat64(3))),
                     builder.add(builder.or_(builder.shl(c, _splat64(24)),
                                             builder.lshr(c, _splat64(40))), r),
                     builder.add(w, _splat64(1))]
        index = builder.and_(r, _splat64(0xFF))                   # ziggurat fast path
        bits = builder.lshr(r, _splat64(8))
        magnitude = builder.and_(builder.lshr(bits, _splat64(1)), _splat64(0x000FFFFFFFFFFFFF))
        sign = builder.shl(builder.and_(bits, _splat64(1)), _splat64(63))
        wi_v = ir.Constant(_V4F64, ir.Undefined)
        ki_v = ir.Constant(_V4I64, ir.Undefined)
        for j in range(LANES):
            k = builder.extract_element(index, _I64(j))
            wi_v = builder.insert_element(wi_v, builder.load(builder.gep(wi_p, [k])), _I64(j))
            ki_v = builder.insert_element(ki_v, builder.load(builder.gep(ki_p, [k])), _I64(j))
        # magnitude < 2**52 as a double, exactly: its bits under the exponent
        # of 2**52, minus 2**52 (AVX2 has no 64-bit integer conversion); the
        # sign by flipping the sign bit, which is NumPy's -x
        biased = builder.bitcast(builder.or_(magnitude, _splat64(0x4330000000000000)), _V4F64)
        two52 = ir.Constant(_V4F64, [4503599627370496.0] * LANES)
        value = builder.fmul(builder.fsub(biased, two52), wi_v)
        value = builder.bitcast(builder.xor(builder.bitcast(value, _V4I64), sign), _V4F64)
        vstore(value, builder.gep(out_p, [builder.add(start_, builder.mul(row, _I64(LANES)))]))
        fast = builder.icmp_unsigned("<", magnitude, ki_v)
        fast_mask = builder.zext(builder.bitcast(fast, ir.IntType(LANES)), _I64)
        rejected = builder.xor(fast_mask, _I64((1 << LANES) - 1))
        row.add_incoming(builder.add(row, _I64(1)), body)
        for phi, v in zip(words, new_words):
            phi.add_incoming(v, body)
        builder.cbranch(builder.icmp_unsigned("==", rejected, _I64(0)), head, missed)

        builder.position_at_end(missed)
        vstore(r, raw_p)
        store_state(new_words)
        builder.branch(end)

        builder.position_at_end(finished)
        store_state(words)
        builder.branch(end)

        builder.position_at_end(end)
        row_out = builder.phi(_I64)
        mask_out = builder.phi(_I64)
        row_out.add_incoming(row, missed)
        mask_out.add_incoming(rejected, missed)
        row_out.add_incoming(row, finished)
        mask_out.add_incoming(_I64(0), finished)
        return context.make_tuple(builder, signature.return_type, (row_out, mask_out))
    return sig, codegen


@njit(cache=True)
def _fill_block(out, start, stop, seeds, first):
    """``out[start:stop]`` ← standard normals of the block's four lanes.

    Lane j (seeded from ``seeds[first + j]``) fills positions ``start + j +
    4 t`` in order; rows of four go through :func:`_vector_normals`, a lane
    that misses the fast test finishes its normal in :func:`_lane_normal`
    (about 1 % of draws), and the last ``n % 4`` positions are drawn lane by
    lane.  Each lane's normals are exactly NumPy's
    ``Generator(SFC64).standard_normal`` of that lane's stream.
    """
    state = np.empty(4 * LANES, np.uint64)
    raw = np.empty(LANES, np.uint64)
    _seed_lanes(state, seeds, first)
    rows = (stop - start) // LANES
    t = 0
    while t < rows:
        t, missed = _vector_normals(out, start, t, rows, state, raw, _WI, _KI)
        if missed:
            for j in range(LANES):
                if (missed >> j) & 1:
                    out[start + LANES * t + j] = _lane_normal(state, j, raw[j])
            t += 1
    for j in range(stop - start - LANES * rows):
        out[start + LANES * rows + j] = _lane_normal(state, j, _lane_next(state, j))


@njit(cache=True, parallel=True)
def _fill_blocks(out, seeds):
    d = out.size
    for k in prange(NOISE_BLOCKS):
        _fill_block(out, k * d // NOISE_BLOCKS, (k + 1) * d // NOISE_BLOCKS, seeds, LANES * k)


@njit(cache=True)
def _fill_blocks_serial(out, seeds):
    d = out.size
    for k in range(NOISE_BLOCKS):
        _fill_block(out, k * d // NOISE_BLOCKS, (k + 1) * d // NOISE_BLOCKS, seeds, LANES * k)


@njit(cache=True)
def standard_normals(rng, out):
    """Fill ``out`` with independent standard normal draws (see module docstring).

    Parameters
    ----------
    rng : numpy.random.Generator
        The run's Generator: the source of every draw (directly for short
        vectors, through the lane seeds for long ones).
    out : numpy.ndarray
        1-D float64 array to fill.

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
    seeds = np.empty(LANES * NOISE_BLOCKS, dtype=np.uint64)
    for j in range(LANES * NOISE_BLOCKS):
        seeds[j] = np.uint64(rng.integers(0, _SEED_HIGH))
    if d < PARALLEL_FROM:
        _fill_blocks_serial(out, seeds)
    else:
        _fill_blocks(out, seeds)


def _reference_lane_state(seed):
    """SFC64 words (a, b, c) of a lane seeded with ``seed``, as :func:`_seed_lanes`."""
    x = int(seed)
    words = []
    for _ in range(3):
        x = (x + _GOLDEN) & _MASK64
        z = x
        z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
        z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
        words.append(z ^ (z >> 31))
    return words


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
    seeds = rng.integers(0, _SEED_HIGH, size=LANES * NOISE_BLOCKS)
    out = np.empty(size)
    for k in range(NOISE_BLOCKS):
        block = out[k * size // NOISE_BLOCKS:(k + 1) * size // NOISE_BLOCKS]
        for j in range(LANES):
            bit_generator = np.random.SFC64()
            bit_generator.state = {
                "bit_generator": "SFC64",
                "state": {"state": np.array(_reference_lane_state(seeds[LANES * k + j]) + [1],
                                            np.uint64)},
                "has_uint32": 0, "uinteger": 0}
            bit_generator.random_raw(WARM_UP)
            lane = block[j::LANES]
            lane[:] = np.random.Generator(bit_generator).standard_normal(lane.size)
    return out
