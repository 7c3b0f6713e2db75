"""Softmax-regression ("perceptron") kernels for sparse inputs.

MNIST images are mostly background: 19.1 % of the 60,000 x 784 training
pixels are nonzero.  The perceptron's gradient only ever multiplies inputs by
weights, so a zero pixel contributes nothing to the logits ``z = x W + b`` or
to the gradient ``x^T (p - onehot)``: stored as compressed sparse rows (CSR),
a row costs work in proportion to its nonzeros (151 on average), not to D.
This module computes exactly the quantity of
:func:`thermo.networks.fast_perceptron.perceptron_loss_grad` (same θ layout,
same scale and prior conventions), only summed over each row's nonzeros; the
two agree to rounding (~1e-15 relative in float64).

* :func:`to_sparse_rows` stores a dense input matrix as :class:`SparseRows`.
* :func:`sparse_loss_grad` returns ``Σ_rows ℓ_i`` and
  ``scale Σ_rows ∇ℓ_i + λ θ``.

θ layout is that of :class:`thermo.networks.MLP` for ``sizes=[D, C]``:
``W`` (D x C, row-major) then ``b`` (C).  Each weight row ``W[k]`` (the C
weights of input k) is contiguous, which is what a sparse row needs: a
nonzero ``x_k`` adds ``x_k W[k]`` to the logits and ``x_k (p - onehot)`` to
the gradient row k.

Kernel design
-------------
* A row of weights is ``Cp/lanes`` AVX2 vector loads (``Cp`` = C rounded up
  to 4 float64 or 8 float32 lanes: 12 or 16 for C = 10), read straight from
  θ as a (D + 1) x C matrix (bias row last): the entries read past a row's
  end fall in the logits' padding lanes, which are zeroed before the
  backward.  Large minibatches (and C = 1 in float64, C < 4 in float32,
  where that overread would leave θ) read an aligned padded copy ``Wp``
  instead (see :func:`_weights`).
* Per nonzero, the forward is one broadcast and ``Cp/lanes`` vector FMAs into
  accumulators that stay in registers for the whole row, in two interleaved
  sets (even and odd nonzeros) to hide the FMA latency; the backward is a
  vector load, FMA and store of the gradient row.  Both loops are written as
  LLVM IR (:func:`_make_row_kernel`) because Numba's vectoriser does not
  vectorise a loop of C = 10 iterations nested in the loop over nonzeros (a
  scalar version measured 13 ns per nonzero, this one 4.8).
* Storage (:func:`to_sparse_rows`): column indices as uint16 when D <= 65536,
  and values as uint8 codes into a palette when there are at most 256
  distinct ones (MNIST: 3 bytes per nonzero instead of 12).  A random
  minibatch's rows come from memory; at batch 1000 fetching 12-byte
  nonzeros took as long as the arithmetic (gradient 869 -> 682 µs with the
  codes, bit-identical).  The next rows' nonzeros are prefetched
  (``llvm.prefetch``, :data:`PREFETCH_ROWS` ahead).
* Rows are split into parallel chunks (``prange``) exactly as in the dense
  kernel; each chunk accumulates into its own padded gradient buffer, and the
  buffers are summed in a fixed order, so results are reproducible bit for
  bit for a fixed chunk count (fixed by the work buffers, not by the current
  thread count).
* The softmax is plain code without ``fastmath``, its exponentials one pass
  of vector code over the padded row (:mod:`thermo.networks.vector_exp`,
  within 1 ulp; ~5 % of a batch-100 step less than glibc's ``exp`` per
  entry): NaN and inf in θ still show in the loss and gradient.  (A zero
  input never multiplies a weight here, so an infinite weight of an input
  that is zero in every row would not show; the samplers' divergence check
  looks at θ itself.)
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)
from thermo.networks._llvm import _I64, _llvm_vector, _splat, _vector_load, prefetch_codegen
from thermo.networks.fast_perceptron import _add_rows, _n_chunks, _zero, work_chunks
from thermo.networks.vector_exp import exp_below_max

__all__ = ["SparseRows", "to_sparse_rows", "sparse_loss_grad", "make_sparse_work",
           "padded_classes"]

#: Rows ahead whose nonzeros are prefetched from memory.
PREFETCH_ROWS = 4
#: Vectors per column group of the row kernels (a group's accumulators, two
#: sets of four, fill half of the 16 AVX2 registers).
GROUP = 4


class SparseRows(NamedTuple):
    """Inputs in compressed sparse row form (made by :func:`to_sparse_rows`).

    Parameters
    ----------
    indptr : numpy.ndarray of int64, shape (N + 1,)
        Row ``i``'s nonzeros are entries ``indptr[i]`` to ``indptr[i + 1]``.
    indices : numpy.ndarray of uint16 or int32, shape (nnz,)
        Their columns, increasing within a row (uint16 when D <= 65536).
    values : numpy.ndarray of float64, float32 or uint8, shape (nnz,)
        Their values, or (uint8) their codes: value ``palette[code]``.
    palette : numpy.ndarray, shape (256,) or (0,)
        The distinct values (float64 or float32) when ``values`` holds codes;
        empty otherwise.
    shape : tuple
        The dense shape (N, D).

    Examples
    --------
    >>> import numpy as np
    >>> rows = to_sparse_rows(np.array([[0.0, 3.0], [0.0, 0.0]]))
    >>> rows.shape, rows.density
    ((2, 2), 0.25)
    """
    indptr: np.ndarray      # (N + 1,) int64
    indices: np.ndarray     # (nnz,) uint16 or int32
    values: np.ndarray      # (nnz,) float64, float32, or uint8 codes
    palette: np.ndarray     # (256,) float64/float32 values of the codes, or (0,)
    shape: tuple

    @property
    def density(self):
        """Fraction of nonzero entries."""
        n, d = self.shape
        return self.values.size / max(1, n * d)

    @property
    def dtype(self):
        """Float type of the values (that of θ)."""
        return self.palette.dtype if self.values.dtype == np.uint8 else self.values.dtype

    @property
    def nbytes(self):
        """Bytes of the stored arrays."""
        return (self.indptr.nbytes + self.indices.nbytes + self.values.nbytes
                + self.palette.nbytes)


def to_sparse_rows(X, dtype=np.float64, scale=1.0, compress=True):
    """Store the rows of a dense matrix as :class:`SparseRows`.

    With ``compress`` (default) the storage is made smaller without changing
    a value: column indices as uint16 when D <= 65536, and, when the nonzero
    values take at most 256 distinct values (pixels, binary or quantised
    data), each value as a uint8 code into a palette of those values.  For
    MNIST that is 3 bytes per nonzero instead of 12: a random minibatch's
    rows come from memory, and at batch 1000 fetching them took as long as
    the arithmetic.  The kernels give bit-identical results either way.

    Parameters
    ----------
    X : array_like, shape (N, D)
        Dense inputs (any real dtype, e.g. uint8 pixels).
    dtype : numpy dtype
        Float type of the stored values (θ's dtype: float64 or float32).
    scale : float
        Multiplies every value (``1/255`` turns uint8 pixels into [0, 1]).
    compress : bool
        Use the smaller index and value types where they are exact.

    Returns
    -------
    SparseRows

    Examples
    --------
    >>> import numpy as np
    >>> rows = to_sparse_rows(np.array([[0, 2.0, 0], [1.0, 0, 0]]), compress=False)
    >>> rows.indptr.tolist(), rows.indices.tolist(), rows.values.tolist()
    ([0, 1, 2], [1, 0], [2.0, 1.0])
    >>> small = to_sparse_rows(np.array([[0, 2.0, 0], [1.0, 0, 0]]))
    >>> small.indices.dtype, small.values.tolist(), small.palette[:2].tolist()
    (dtype('uint16'), [1, 0], [1.0, 2.0])
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float64, np.float32):
        raise TypeError("values must be float64 or float32")
    if X.shape[1] >= 2 ** 31:
        raise ValueError("at most 2**31 - 1 columns")
    if not np.isrealobj(X) or X.dtype.kind not in "biuf":
        raise TypeError(f"X must hold real numbers, got {X.dtype}")
    X = np.ascontiguousarray(X)
    indptr = np.zeros(X.shape[0] + 1, np.int64)
    _count_nonzeros(X, indptr)
    indices = np.empty(indptr[-1], np.int32)
    values = np.empty(indptr[-1], dtype)
    _fill_rows(X, float(scale), indptr, indices, values)
    palette = np.zeros(0, dtype)
    if compress:
        if X.shape[1] <= 2 ** 16:
            indices = indices.astype(np.uint16)
        values, palette = _palette_codes(values)
    return SparseRows(indptr, indices, values, palette, tuple(X.shape))


def _palette_codes(values):
    """(uint8 codes, palette of 256 values) when ``values`` takes at most 256
    distinct values (found on a sample first, so that continuous data are
    turned down quickly), else ``(values, empty palette)``."""
    none = (values, np.zeros(0, values.dtype))
    if values.size == 0 or not np.all(np.isfinite(values[:100_000])):
        return none
    distinct = np.unique(values[:100_000])
    if distinct.size > 256:
        return none
    codes = np.searchsorted(distinct, values)
    codes[codes >= distinct.size] = 0
    if not np.array_equal(distinct[codes], values):     # a value outside the sample
        distinct = np.unique(values)
        if distinct.size > 256:
            return none
        codes = np.searchsorted(distinct, values)
    palette = np.zeros(256, values.dtype)
    palette[:distinct.size] = distinct
    return codes.astype(np.uint8), palette


@njit(cache=True)
def _count_nonzeros(X, indptr):
    for i in range(X.shape[0]):
        count = 0
        for k in range(X.shape[1]):
            if X[i, k] != 0:
                count += 1
        indptr[i + 1] = indptr[i] + count


@njit(cache=True)
def _fill_rows(X, scale, indptr, indices, values):
    for i in range(X.shape[0]):
        p = indptr[i]
        for k in range(X.shape[1]):
            if X[i, k] != 0:
                indices[p] = k
                values[p] = np.float64(X[i, k]) * scale    # then rounded to values' type
                p += 1


def padded_classes(n_out, dtype):
    """C rounded up to whole AVX2 vectors (4 float64 or 8 float32 lanes).

    Parameters
    ----------
    n_out : int
        Classes C.
    dtype : numpy dtype
        float64 or float32.

    Returns
    -------
    int
        The padded row length of the kernels' weight and gradient buffers.

    Examples
    --------
    >>> padded_classes(10, np.float64), padded_classes(10, np.float32)
    (12, 16)
    """
    lanes = 32 // np.dtype(dtype).itemsize
    return -(-n_out // lanes) * lanes


def _make_row_kernel(n_vectors, backward):
    """LLVM IR loop over one sparse row, ``n_vectors`` AVX2 vectors wide.

    forward  (``backward=False``): ``v[col:col+w] = Σ_p x_p M[idx[p], col:col+w]``
    backward (``backward=True``):  ``M[idx[p], col:col+w] += x_p v[col:col+w]``

    for ``p`` in ``[lo, hi)``, ``w = n_vectors * lanes``, with ``x_p =
    vals[p]`` (float values of M's type) or ``palette[vals[p]]`` (uint8
    codes).  ``M`` is a C-contiguous 2-D float array, ``idx`` int32 or
    uint16, ``v`` and ``palette`` 1-D of M's type; columns ``col + w <=
    M.shape[1]``, indices ``< M.shape[0]`` and codes ``< palette.size`` are
    the caller's job (not checked).
    """
    @intrinsic
    def kernel(typingctx, M, col, vals, palette, idx, lo, hi, v):
        if not (isinstance(M, types.Array) and M.ndim == 2 and M.layout == "C"
                and M.dtype in (types.float64, types.float32)):
            return None
        if not (isinstance(vals, types.Array) and vals.dtype in (M.dtype, types.uint8)
                and isinstance(palette, types.Array) and palette.dtype == M.dtype
                and isinstance(v, types.Array) and v.dtype == M.dtype
                and isinstance(idx, types.Array)
                and idx.dtype in (types.int32, types.uint16)):
            return None
        sig = types.void(M, col, vals, palette, idx, lo, hi, v)

        def codegen(context, builder, signature, args):
            tM, _, tvals, tpalette, tidx, _, _, tv = signature.args
            m_, col_, vals_, palette_, idx_, lo_, hi_, v_ = args
            ety, vty, suffix = _llvm_vector(tM.dtype)
            size = tM.dtype.bitwidth // 8
            vbytes = vty.count * size

            def data(ty, val, elem):
                ary = context.make_array(ty)(context, builder, val)
                return ary, builder.bitcast(ary.data, elem.as_pointer())

            m_ary, _ = data(tM, m_, ir.IntType(8))
            m_stride = cgutils.unpack_tuple(builder, m_ary.strides, 2)[0]
            i8p = ir.IntType(8).as_pointer()
            col_bytes = builder.mul(col_, _I64(size))
            m_base = builder.gep(builder.bitcast(m_ary.data, i8p), [col_bytes])
            coded = tvals.dtype == types.uint8
            _, vals_base = data(tvals, vals_, ir.IntType(8) if coded else ety)
            _, palette_base = data(tpalette, palette_, ety)
            idx_bits = tidx.dtype.bitwidth
            _, idx_base = data(tidx, idx_, ir.IntType(idx_bits))
            v_ary, _ = data(tv, v_, ir.IntType(8))
            v_base = builder.gep(builder.bitcast(v_ary.data, i8p), [col_bytes])
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vty, [vty, vty, vty]), "llvm.fma." + suffix)
            zero = ir.Constant(vty, [0.0] * vty.count)

            def nonzero(p):
                x = builder.load(builder.gep(vals_base, [p]))
                if coded:       # the value from the palette (256 entries, in L1)
                    x = builder.load(builder.gep(palette_base, [builder.zext(x, _I64)]))
                k = builder.load(builder.gep(idx_base, [p]))
                k = builder.zext(k, _I64) if idx_bits == 16 else builder.sext(k, _I64)
                return _splat(builder, x, vty), builder.gep(m_base, [builder.mul(k, m_stride)])

            def store(value, ptr):
                st = builder.store(value, builder.bitcast(ptr, vty.as_pointer()))
                st.align = size

            entry = builder.block
            loop = builder.append_basic_block("sparse_row.loop")
            done = builder.append_basic_block("sparse_row.done")
            if backward:
                # one nonzero per iteration: a load, FMA and store of the
                # gradient row per vector; rows of distinct nonzeros differ
                coef = [_vector_load(builder, builder.gep(v_base, [_I64(vbytes * q)]), vty,
                                     size) for q in range(n_vectors)]
                builder.cbranch(builder.icmp_signed("<", lo_, hi_), loop, done)
                builder.position_at_end(loop)
                p = builder.phi(_I64)
                p.add_incoming(lo_, entry)
                x, row = nonzero(p)
                for q in range(n_vectors):
                    ptr = builder.gep(row, [_I64(vbytes * q)])
                    store(builder.call(fma, [x, coef[q], _vector_load(builder, ptr, vty, size)]),
                          ptr)
                p_next = builder.add(p, _I64(1))
                p.add_incoming(p_next, builder.block)
                builder.cbranch(builder.icmp_signed("<", p_next, hi_), loop, done)
                builder.position_at_end(done)
                return context.get_dummy_value()

            # forward: pairs of nonzeros into two accumulator sets (even,
            # odd) so consecutive FMAs on one register are two nonzeros apart
            n_pairs = builder.sdiv(builder.sub(hi_, lo_), _I64(2))
            pair_end = builder.add(lo_, builder.mul(n_pairs, _I64(2)))
            builder.cbranch(builder.icmp_signed("<", lo_, pair_end), loop, done)
            builder.position_at_end(loop)
            p = builder.phi(_I64)
            p.add_incoming(lo_, entry)
            acc = [[builder.phi(vty) for _ in range(n_vectors)] for _ in range(2)]
            for a in acc[0] + acc[1]:
                a.add_incoming(zero, entry)
            new = []
            for s in range(2):
                x, row = nonzero(builder.add(p, _I64(s)))
                new.append([builder.call(fma, [x, _vector_load(
                    builder, builder.gep(row, [_I64(vbytes * q)]), vty, size), acc[s][q]])
                    for q in range(n_vectors)])
            p_next = builder.add(p, _I64(2))
            tail = builder.block
            p.add_incoming(p_next, tail)
            for s in range(2):
                for a, n in zip(acc[s], new[s]):
                    a.add_incoming(n, tail)
            builder.cbranch(builder.icmp_signed("<", p_next, pair_end), loop, done)
            builder.position_at_end(done)
            sums = [[builder.phi(vty) for _ in range(n_vectors)] for _ in range(2)]
            for s in range(2):
                for t, n in zip(sums[s], new[s]):
                    t.add_incoming(zero, entry)
                    t.add_incoming(n, tail)
            total = [builder.fadd(a, b) for a, b in zip(sums[0], sums[1])]
            # odd count: the last nonzero
            last = builder.append_basic_block("sparse_row.last")
            end = builder.append_basic_block("sparse_row.end")
            before = builder.block
            builder.cbranch(builder.icmp_signed("<", pair_end, hi_), last, end)
            builder.position_at_end(last)
            x, row = nonzero(pair_end)
            with_last = [builder.call(fma, [x, _vector_load(
                builder, builder.gep(row, [_I64(vbytes * q)]), vty, size), total[q]])
                for q in range(n_vectors)]
            builder.branch(end)
            builder.position_at_end(end)
            result = [builder.phi(vty) for _ in range(n_vectors)]
            for q, t in enumerate(result):
                t.add_incoming(total[q], before)
                t.add_incoming(with_last[q], last)
            for q, t in enumerate(result):
                store(t, builder.gep(v_base, [_I64(vbytes * q)]))
            return context.get_dummy_value()
        return sig, codegen
    return kernel


_dot1, _dot2, _dot3, _dot4 = (_make_row_kernel(n, False) for n in range(1, GROUP + 1))
_add1, _add2, _add3, _add4 = (_make_row_kernel(n, True) for n in range(1, GROUP + 1))


@njit(cache=True)
def _row_dot(Wp, vals, palette, idx, lo, hi, z):
    """``z[:Cp] = Σ_p vals[p] Wp[idx[p], :Cp]`` in column groups of GROUP
    vectors (``Wp`` is the padded copy or θ's C-wide view, see :func:`_weights`)."""
    lanes = 32 // Wp.itemsize
    n_vectors = -(-Wp.shape[1] // lanes)    # θ's rows (C wide) are read to Cp
    for g in range(0, n_vectors, GROUP):
        n = min(GROUP, n_vectors - g)
        col = g * lanes
        if n == 4:
            _dot4(Wp, col, vals, palette, idx, lo, hi, z)
        elif n == 3:
            _dot3(Wp, col, vals, palette, idx, lo, hi, z)
        elif n == 2:
            _dot2(Wp, col, vals, palette, idx, lo, hi, z)
        else:
            _dot1(Wp, col, vals, palette, idx, lo, hi, z)


@njit(cache=True)
def _row_add(G, vals, palette, idx, lo, hi, c):
    """``G[idx[p]] += vals[p] c`` for every nonzero p of the row."""
    lanes = 32 // G.itemsize
    n_vectors = G.shape[1] // lanes
    for g in range(0, n_vectors, GROUP):
        n = min(GROUP, n_vectors - g)
        col = g * lanes
        if n == 4:
            _add4(G, col, vals, palette, idx, lo, hi, c)
        elif n == 3:
            _add3(G, col, vals, palette, idx, lo, hi, c)
        elif n == 2:
            _add2(G, col, vals, palette, idx, lo, hi, c)
        else:
            _add1(G, col, vals, palette, idx, lo, hi, c)


@intrinsic
def _prefetch(typingctx, arr, i):
    """Software prefetch of the cache line holding ``arr[i]`` (1-D; no fault)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1):
        return None
    return types.void(arr, i), prefetch_codegen


@njit(cache=True)
def _prefetch_row(indptr, idx, vals, r):
    """Start loading row ``r``'s nonzeros from memory (a minibatch's rows lie
    at random places; without this each row begins with cache misses that
    the hardware prefetcher cannot foresee)."""
    lo = indptr[r]
    hi = indptr[r + 1]
    step = 64 // vals.itemsize
    for p in range(lo, hi, step):
        _prefetch(vals, p)
    step = 64 // idx.itemsize
    for p in range(lo, hi, step):
        _prefetch(idx, p)


@njit(cache=True)
def _rows(indptr, idx, vals, palette, y, rows, start, stop, Wp, G, z, n_out):
    """Loss sum of ``rows[start:stop]``; adds their gradient into the padded
    buffer ``G`` (D + 1 rows, the bias gradient last)."""
    D = Wp.shape[0] - 1
    loss = 0.0
    for s in range(start, min(stop, start + 2 * PREFETCH_ROWS)):
        _prefetch(indptr, rows[s])
        _prefetch(y, rows[s])
    for s in range(start, min(stop, start + PREFETCH_ROWS)):
        _prefetch_row(indptr, idx, vals, rows[s])
    for s in range(start, stop):
        r = rows[s]
        lo = indptr[r]
        hi = indptr[r + 1]
        # two stages: a row's extent (indptr) and label first, its nonzeros
        # PREFETCH_ROWS later, when reading the extent no longer waits on
        # memory (a miss there stalls the core until it arrives)
        if s + 2 * PREFETCH_ROWS < stop:
            _prefetch(indptr, rows[s + 2 * PREFETCH_ROWS])
            _prefetch(y, rows[s + 2 * PREFETCH_ROWS])
        if s + PREFETCH_ROWS < stop:
            _prefetch_row(indptr, idx, vals, rows[s + PREFETCH_ROWS])
        _row_dot(Wp, vals, palette, idx, lo, hi, z)
        for j in range(n_out):
            z[j] += Wp[D, j]
        m = z[0]
        for j in range(1, n_out):
            if z[j] > m:
                m = z[j]
        label = y[r]
        # logsumexp - z[label] from the logit itself: log(softmax[label])
        # would be -inf once exp(z[label] - m) underflows
        z_label = z[label]
        exp_below_max(z, m)         # all Cp lanes; the padding's are discarded
        total = 0.0
        for j in range(n_out):
            total += z[j]
        loss += (np.log(total) + m) - z_label
        inv = 1.0 / total
        for j in range(n_out):
            z[j] *= inv
        z[label] -= 1.0
        for j in range(n_out, z.size):
            z[j] = 0.0      # padding columns: the gradient's padding stays 0
        _row_add(G, vals, palette, idx, lo, hi, z)
        for j in range(n_out):
            G[D, j] += z[j]
    return loss


@njit(cache=True, parallel=True)
def _accumulate(indptr, idx, vals, palette, y, rows, Wp, Gs, zs, losses, n_chunks, n_out):
    n = rows.size
    for c in prange(n_chunks):
        _zero(Gs[c])
        start = c * n // n_chunks
        stop = (c + 1) * n // n_chunks
        losses[c] = _rows(indptr, idx, vals, palette, y, rows, start, stop, Wp, Gs[c], zs[c],
                          n_out)


@njit(cache=True)
def _pad_weights(theta, Wp, n_out):
    """``Wp[k, :C] = W[k]`` for k < D and ``Wp[D, :C] = b`` (padding stays 0)."""
    for k in range(Wp.shape[0]):
        for j in range(n_out):
            Wp[k, j] = theta[k * n_out + j]


@njit(cache=True)
def _reduce(Gs, n_chunks, scale, prior, theta, grad_out, n_out):
    """``grad_out = scale Σ_c Gs[c] (unpadded) + prior θ``, chunks in order.

    The chunk buffers are first summed into ``Gs[0]`` (contiguous,
    vectorised); a loop over the chunks inside the loop over entries would
    not vectorise (29 µs against 7 µs for the MNIST perceptron)."""
    G = Gs[0]
    if n_chunks == 2:       # the usual case on two cores: one fused pass
        H = Gs[1]
        for k in range(G.shape[0]):
            base = k * n_out
            for j in range(n_out):
                grad_out[base + j] = scale * (G[k, j] + H[k, j]) + prior * theta[base + j]
        return
    for c in range(1, n_chunks):
        _add_rows(G.ravel(), Gs[c].ravel())
    for k in range(G.shape[0]):
        base = k * n_out
        for j in range(n_out):
            grad_out[base + j] = scale * G[k, j] + prior * theta[base + j]


COPY_WEIGHTS_FROM = 2048
"""Minibatches of at least this many rows read a padded copy of the weights."""


@njit(cache=True)
def _weights(theta, Wp, n_out, n_rows):
    """The (D + 1) x C weight matrix the forward reads, bias row last.

    The forward loads ``Cp`` entries per row.  When ``Cp <= 2 C`` the
    ``Cp - C`` entries it reads past the end of a row of θ itself are still
    inside θ (the last weight row runs into the bias), and only land in the
    logits' padding lanes: θ can be read in place, as a (D + 1) x C view.
    That saves the per-call copy into the padded ``Wp`` (3-4 µs for the
    MNIST perceptron, 3 % of a batch-100 step), but its rows are not aligned
    to vectors, and over a whole epoch the aligned copy is ~5 % faster.  So
    small minibatches read θ in place, and batches of
    :data:`COPY_WEIGHTS_FROM` rows or more (and C = 1 in float64, C < 4 in
    float32, where the overread would leave θ) read the copy.  The results
    are the same bits either way.
    """
    if n_rows < COPY_WEIGHTS_FROM and Wp.shape[1] <= 2 * n_out:
        return np.ascontiguousarray(theta).reshape((Wp.shape[0], n_out))
    _pad_weights(theta, Wp, n_out)
    return Wp


@njit(cache=True)
def _loss_grad(indptr, idx, vals, palette, y, rows, theta, scale, prior, grad_out, Wp, Gs, zs,
               losses):
    n_out = theta.size // Wp.shape[0]
    W = _weights(theta, Wp, n_out, rows.size)
    n_chunks = _n_chunks(rows.size, Gs.shape[0])
    _accumulate(indptr, idx, vals, palette, y, rows, W, Gs, zs, losses, n_chunks, n_out)
    _reduce(Gs, n_chunks, scale, prior, theta, grad_out, n_out)
    loss = 0.0
    for c in range(n_chunks):
        loss += losses[c]
    return loss


def make_sparse_work(n_in, n_out, dtype=np.float64, n_threads=None):
    """Allocate the work buffers of :func:`sparse_loss_grad`.

    Parameters
    ----------
    n_in, n_out : int
        Inputs D and classes C.
    dtype : numpy dtype
        θ's float type (float64 or float32).
    n_threads : int, optional
        Most parallel chunks (default ``numba.get_num_threads()``); fixes the
        summation order, so keep it fixed for bit-reproducible runs.

    Returns
    -------
    tuple
        ``(Wp, Gs, zs, losses)``: padded weights (D + 1, Cp), per-chunk padded
        gradients (n, D + 1, Cp), per-chunk logits (n, Cp) and loss sums (n,),
        with ``Cp =`` :func:`padded_classes`.

    Examples
    --------
    >>> [a.shape for a in make_sparse_work(784, 10, n_threads=2)]
    [(785, 12), (2, 785, 12), (2, 12), (2,)]
    """
    dtype = np.dtype(dtype)
    n_threads = work_chunks(n_threads)
    cp = padded_classes(n_out, dtype)
    return (np.zeros((n_in + 1, cp), dtype), np.zeros((n_threads, n_in + 1, cp), dtype),
            np.zeros((n_threads, cp), dtype), np.zeros(n_threads))


def sparse_loss_grad(theta, X, y, rows=None, scale=1.0, prior=0.0, grad_out=None, work=None):
    """Sum of the softmax cross-entropy losses over the rows of sparse inputs,
    and its gradient.

    Parameters
    ----------
    theta : numpy.ndarray
        Flat parameters, ``W`` (D x C row-major) then ``b`` (C); float64 or
        float32 (float32 accumulates in float32).
    X : SparseRows
        Inputs (:func:`to_sparse_rows`), values of θ's dtype.
    y : numpy.ndarray of int, shape (N,)
        Class labels in ``[0, C)``.
    rows : numpy.ndarray of int, optional
        Rows to use (default all).
    scale : float
        Factor of the summed per-example gradient (``N/B`` for the minibatch
        estimate of the total energy U).
    prior : float
        Prior precision λ: adds ``λ θ`` to the gradient (not to the loss).
    grad_out : numpy.ndarray, optional
        Output buffer (θ's shape and dtype).
    work : tuple, optional
        Buffers from :func:`make_sparse_work`.

    Returns
    -------
    loss : float
        ``Σ_rows ℓ_i`` (unscaled, no prior).
    grad : numpy.ndarray
        ``scale Σ_rows ∇ℓ_i + λ θ``.

    Examples
    --------
    >>> import numpy as np
    >>> X = to_sparse_rows(np.array([[0.0, 1.0], [1.0, 0.0]]))
    >>> loss, grad = sparse_loss_grad(np.zeros(6), X, np.array([0, 1]))
    >>> round(loss, 6), grad.tolist()   # 2 ln 2 at θ = 0
    (1.386294, [0.5, -0.5, -0.5, 0.5, 0.0, 0.0])
    """
    if not isinstance(X, SparseRows):
        raise TypeError("X must be SparseRows (see to_sparse_rows)")
    theta = np.asarray(theta)
    if theta.dtype not in (np.float64, np.float32) or theta.ndim != 1:
        raise TypeError("theta must be a 1-D float64 or float32 array")
    n, n_in = X.shape
    if theta.size % (n_in + 1) != 0 or theta.size == 0:
        raise ValueError(f"theta has {theta.size} entries, not a nonzero multiple of "
                         f"n_in + 1 = {n_in + 1}")
    n_out = theta.size // (n_in + 1)
    if X.dtype != theta.dtype:
        raise TypeError(f"the values are {X.dtype}, theta is {theta.dtype}: make the "
                        f"rows with to_sparse_rows(X, dtype=theta.dtype)")
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n or y.dtype.kind not in "iu":
        raise ValueError("y must be integer labels, one per row of X")
    if y.size and (y.min() < 0 or y.max() >= n_out):
        raise ValueError(f"labels must lie in [0, {n_out})")
    rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows)
    if rows.ndim != 1 or rows.dtype.kind not in "iu":
        raise ValueError("rows must be a 1-D integer array")
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise ValueError("rows out of range")
    if grad_out is None:
        grad_out = np.empty_like(theta)
    if work is None:
        work = make_sparse_work(n_in, n_out, theta.dtype)
    elif work[0].shape != (n_in + 1, padded_classes(n_out, theta.dtype)):
        raise ValueError("work buffers were made for another network")
    ftype = theta.dtype.type
    loss = _loss_grad(X.indptr, X.indices, X.values, X.palette,
                      y.astype(np.int64, copy=False), rows.astype(np.int64, copy=False), theta,
                      ftype(scale), ftype(prior), grad_out, *work)
    return float(loss), grad_out
