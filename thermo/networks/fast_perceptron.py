"""Specialised CPU kernels for the softmax-regression network ("perceptron").

The MNIST perceptron (784 inputs, 10 outputs, softmax cross entropy, no
hidden layer) is thermo's reference benchmark.  Its gradient is two skinny
matrix products (``X W`` forward, ``X^T R`` backward), so its speed is set by
how fast the input rows stream through the cores.  This module provides

* :func:`perceptron_loss_grad`: loss and gradient over a set of rows, for
  ``float64``, ``float32`` or ``uint8`` inputs (``uint8`` rows are expanded on
  the fly with a scale factor, e.g. ``1/255``: 8x fewer bytes than float64);
* :func:`sgld_steps` and :func:`baoab_steps`: whole sampler runs on the
  posterior ``U(θ) = (N/B) Σ_batch ℓ_i + (λ/2)|θ|²`` in which each step is one
  pass over the minibatch rows plus **one** pass over θ that sums the
  per-thread gradient buffers, applies the prior, draws the noise and updates
  θ (and the momentum) -- the gradient is never written out separately;
  minibatches are drawn with :func:`thermo.data.minibatch.draw_without_replacement`
  from the sampler's Generator, exactly as :class:`thermo.Posterior` draws them;
* :func:`reference_loss_grad`: a plain NumPy reference of the same quantity
  (used by the tests and the benchmarks).

θ layout is that of :class:`thermo.networks.MLP` for ``sizes=[D, C]``:
``W`` (D x C, row-major) then ``b`` (C).

Kernel design
-------------
Each parallel chunk of rows (``prange``; one gradient buffer per chunk,
summed in a fixed order, so results are reproducible bit for bit for a fixed
thread count) is processed in row blocks of up to :data:`ROWS` = 32 rows:

* **rows in place**: when the rows already have θ's float type and
  ``input_scale == 1`` the kernels read ``X[rows[i]]`` directly; otherwise
  (``uint8``, float32 rows with a float64 θ, a scale) the block is first
  converted into a per-chunk buffer.  Copying float64 rows would cost a pass
  through the cache for nothing.
* **forward**, in register blocks of :data:`BLOCK` = 4 rows x 2 classes: eight
  dot products with ``W`` transposed (``Wt[j]`` contiguous) in eight
  accumulators, six vector loads per eight FMAs.  (One class at a time needs
  five loads per four FMAs and is load-bound.)  An odd last class uses 4 x 1.
  The columns go in tiles of 3136 bytes per row (392 float64 or 784 float32
  columns) so that the 4 rows' tile (12.5 KB) stays in L1 while the class
  pairs pass over it; whole float64 rows (25 KB) plus two weight rows
  overflow the 32 KB L1 and every pass would reload the rows from L2.
  (Shorter float32 tiles measured slower: more horizontal sums per FMA.)
* **softmax** and the loss per row, giving the coefficients ``p - onehot``
  (exponentials as vector code: :mod:`thermo.networks.vector_exp`).
* **backward** (float64), a register tile :func:`_grad_tile` per pair of
  classes and 16 columns: the sums over *all* rows of the block
  stay in eight AVX2 registers (per row four vector loads, two broadcasts,
  eight FMAs) and the gradient buffer is read and written once per row block.
  The earlier design, an AXPY into the gradient for every 4 rows, paid a
  load and a store of the gradient per four FMAs and ran at half the FMA
  peak.  The tile is written as LLVM IR (``numba.extending.intrinsic``)
  because Numba's loop vectoriser only vectorises innermost loops (here the
  loop over rows) and its SLP vectoriser is off by default.  Remaining
  columns (``D`` not a multiple of 16) and an odd last class use plain
  loops.  For float32 θ the backward stays a four-row AXPY per class (8
  lanes per FMA make the gradient traffic cheap; it measured faster than the
  32-column tile, which :func:`_grad_tile` also supports).
* **prefetch**: rows come from main memory (a random minibatch, or the
  whole data set), so the next rows' cache lines are prefetched while the
  current block computes (``llvm.prefetch``): during the forward the next 4
  rows, during the backward the next row block's first 4 rows and, from L2,
  the current block's next tile of columns.

A row block of 32 float64 MNIST rows (200 KB) stays in L2 between the
forward and the backward; ``Wt`` and the gradient buffer (62 KB each) stream
from L2.  Reassociation is allowed only in the vectorised inner loops
(``fastmath`` there, never on the softmax), so NaN and inf in θ or the data
still show in the loss and gradient.  The accumulation type is θ's dtype
(float32 θ gives the float32 fast path, with float32 rounding in the
per-chunk sums).
"""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import cgutils, types
from numba.extending import intrinsic, overload

from thermo.data.minibatch import draw_without_replacement
from thermo.networks._llvm import _I64, _llvm_vector, _splat, _vector_load, prefetch_codegen
from thermo.networks.vector_exp import exp_below_max

from thermo import _numba_cache  # noqa: F401  (threading layer before cached kernels load)

__all__ = [
    "BLOCK",
    "ROWS",
    "perceptron_loss_grad",
    "reference_loss_grad",
    "make_work",
    "sgld_steps",
    "baoab_steps",
]

#: Rows per forward register block (4 rows x 2 classes of dot products).
BLOCK = 4
#: Rows per row block: the backward accumulates over these in registers.
ROWS = 32
#: Bytes per row in a forward column tile (392 float64 or 784 float32 columns).
KTILE_BYTES = 3136
#: Fewest rows worth a parallel chunk of their own.
MIN_CHUNK_ROWS = 32
# Reassociation (for vectorised reductions) and FMA contraction only; NaN and
# inf keep their IEEE meaning so divergence stays detectable.
_FAST = {"reassoc", "contract", "nsz", "arcp"}

@intrinsic
def _prefetch(typingctx, arr, i, k):
    """Software prefetch of ``arr[i, k]`` into the caches (no fault, no result)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2):
        return None
    return types.void(arr, i, k), prefetch_codegen


@intrinsic
def _grad_tile(typingctx, G, ja, jb, A, ri, n, c, k):
    """``G[j, k:k+K] += Σ_{r<n} c[r, j] A[ri[r], k:k+K]`` for ``j = ja, jb``.

    The backward register tile (``K`` = :func:`_kblock`: 16 float64 or 32
    float32 columns, four AVX2 vectors), written as LLVM IR because Numba's
    loop vectoriser only vectorises innermost loops: here the loop runs over
    the rows and the 2 x K sums stay in eight registers for all of them (per
    row: four vector loads, two broadcasts, eight FMAs; ``G`` is read and
    written once per row block instead of once per row).  ``A``, ``G`` and
    ``c`` are C-contiguous arrays of one float type; ``k + K <= A.shape[1]``
    is the caller's job (not checked).
    """
    if not all(isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C"
               and a.dtype in (types.float64, types.float32) for a in (G, A, c)):
        return None
    if not G.dtype == A.dtype == c.dtype:
        return None
    if not (isinstance(ri, types.Array) and ri.ndim == 1 and ri.dtype == types.int64):
        return None
    sig = types.void(G, ja, jb, A, ri, n, c, k)

    def codegen(context, builder, signature, args):
        tG, _, _, tA, tri, _, tc, _ = signature.args
        g_, ja_, jb_, a_, ri_, n_, c_, k_ = args
        i8p = ir.IntType(8).as_pointer()
        arrays = []
        for ty, val in ((tG, g_), (tA, a_), (tri, ri_), (tc, c_)):
            ary = context.make_array(ty)(context, builder, val)
            stride = cgutils.unpack_tuple(builder, ary.strides, ty.ndim)[0]
            arrays.append((builder.bitcast(ary.data, i8p), stride))
        (g_base, g_stride), (a_base, a_stride), (r_base, r_stride), (c_base, c_stride) = arrays
        ety, vty, suffix = _llvm_vector(tA.dtype)
        size = _I64(tA.dtype.bitwidth // 8)
        kbytes = builder.mul(k_, size)
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vty, vty, vty]), "llvm.fma." + suffix)
        zero = ir.Constant(vty, [0.0] * vty.count)
        entry = builder.block
        loop = builder.append_basic_block("grad_tile.rows")
        done = builder.append_basic_block("grad_tile.done")
        builder.cbranch(builder.icmp_signed(">", n_, _I64(0)), loop, done)
        builder.position_at_end(loop)
        r = builder.phi(_I64)
        acc = [builder.phi(vty) for _ in range(8)]
        r.add_incoming(_I64(0), entry)
        for a in acc:
            a.add_incoming(zero, entry)
        row = builder.load(builder.bitcast(builder.gep(r_base, [builder.mul(r, r_stride)]),
                                           _I64.as_pointer()))
        x_ptr = builder.gep(a_base, [builder.add(builder.mul(row, a_stride), kbytes)])
        xs = [_vector_load(builder, builder.gep(x_ptr, [_I64(32 * q)]), vty, size.constant)
              for q in range(4)]
        c_row = builder.gep(c_base, [builder.mul(r, c_stride)])
        coef = [_splat(builder, builder.load(builder.bitcast(
            builder.gep(c_row, [builder.mul(j, size)]), ety.as_pointer())), vty)
            for j in (ja_, jb_)]
        new = [builder.call(fma, [coef[q // 4], xs[q % 4], acc[q]]) for q in range(8)]
        r_next = builder.add(r, _I64(1))
        tail = builder.block
        r.add_incoming(r_next, tail)
        for a, v in zip(acc, new):
            a.add_incoming(v, tail)
        builder.cbranch(builder.icmp_signed("<", r_next, n_), loop, done)
        builder.position_at_end(done)
        totals = []
        for q in range(8):
            total = builder.phi(vty)
            total.add_incoming(zero, entry)
            total.add_incoming(new[q], tail)
            totals.append(total)
        for half, j in enumerate((ja_, jb_)):
            g_ptr = builder.gep(g_base, [builder.add(builder.mul(j, g_stride), kbytes)])
            for q in range(4):
                total = totals[4 * half + q]
                p = builder.gep(g_ptr, [_I64(32 * q)])
                old = _vector_load(builder, p, vty, size.constant)
                st = builder.store(builder.fadd(old, total), builder.bitcast(p, vty.as_pointer()))
                st.align = size.constant
        return context.get_dummy_value()
    return sig, codegen


@njit(cache=True, fastmath=_FAST)
def _dot42(x0, x1, x2, x3, wa, wb, z, t, ja):
    """``z[t + r, ja] += x_r . wa`` and ``z[t + r, ja + 1] += x_r . wb`` for r < 4.

    4 rows x 2 classes: six vector loads per eight FMAs in eight independent
    accumulators (fits the 16 AVX2 registers)."""
    zero = wa[0] - wa[0]
    a0 = zero
    a1 = zero
    a2 = zero
    a3 = zero
    b0 = zero
    b1 = zero
    b2 = zero
    b3 = zero
    for k in range(wa.size):
        u = wa[k]
        v = wb[k]
        t0 = x0[k]
        t1 = x1[k]
        t2 = x2[k]
        t3 = x3[k]
        a0 += t0 * u
        a1 += t1 * u
        a2 += t2 * u
        a3 += t3 * u
        b0 += t0 * v
        b1 += t1 * v
        b2 += t2 * v
        b3 += t3 * v
    z[t, ja] += a0
    z[t + 1, ja] += a1
    z[t + 2, ja] += a2
    z[t + 3, ja] += a3
    z[t, ja + 1] += b0
    z[t + 1, ja + 1] += b1
    z[t + 2, ja + 1] += b2
    z[t + 3, ja + 1] += b3


@njit(cache=True, fastmath=_FAST)
def _dot41(x0, x1, x2, x3, w, z, t, j):
    """``z[t + r, j] += x_r . w`` for r < 4 (the last class when C is odd)."""
    zero = w[0] - w[0]
    a0 = zero
    a1 = zero
    a2 = zero
    a3 = zero
    for k in range(w.size):
        u = w[k]
        a0 += x0[k] * u
        a1 += x1[k] * u
        a2 += x2[k] * u
        a3 += x3[k] * u
    z[t, j] += a0
    z[t + 1, j] += a1
    z[t + 2, j] += a2
    z[t + 3, j] += a3


@njit(cache=True, fastmath=_FAST)
def _axpy(g, x, a):
    """``g += a x`` (the last class's gradient when C is odd)."""
    for k in range(g.size):
        g[k] += a * x[k]


@njit(cache=True)
def _prefetch_rows(X, rows, lo, hi, k0, k1):
    """Prefetch the cache lines of ``X[rows[lo:hi], k0:k1]``."""
    step = max(1, 64 // X.itemsize)
    for q in range(lo, hi):
        i = rows[q]
        for k in range(k0, k1, step):
            _prefetch(X, i, k)


@njit(cache=True)
def _convert_rows(X, input_scale, rows, s0, nr, xr):
    D = X.shape[1]
    for r in range(nr):
        i = rows[s0 + r]
        for k in range(D):
            xr[r, k] = X[i, k] * input_scale


def _row_block(X, input_scale, rows, s0, nr, xr, ident):
    """Rows ``rows[s0:s0+nr]`` of ``X * input_scale`` as ``(A, ri)``: row r is
    ``A[ri[r]]``, of θ's dtype (compiled per dtype pair, see the overload)."""


@overload(_row_block)
def _row_block_impl(X, input_scale, rows, s0, nr, xr, ident):
    if X.dtype == xr.dtype:
        # same float type: use X's rows in place unless they must be scaled
        # (saves a copy of every row through the cache)
        def impl(X, input_scale, rows, s0, nr, xr, ident):
            if input_scale == 1:
                return X, rows[s0:s0 + nr]
            _convert_rows(X, input_scale, rows, s0, nr, xr)
            return xr, ident[:nr]
    else:
        # uint8 (or float32 rows for a float64 θ): expand into the buffer
        def impl(X, input_scale, rows, s0, nr, xr, ident):
            _convert_rows(X, input_scale, rows, s0, nr, xr)
            return xr, ident[:nr]
    return impl


@njit(cache=True)
def _backward_columns(G, A, ri, nr, z, k0):
    """Gradient columns ``k0:D`` (those after the last whole register tile),
    one vectorised AXPY per row and class."""
    C = G.shape[0]
    D = A.shape[1]
    if k0 >= D:
        return
    for j in range(C):
        g = G[j, k0:D]
        for r in range(nr):
            _axpy(g, A[ri[r], k0:D], z[r, j])


def _backward(G, A, ri, nr, z, X, rows, nxt, stop):
    """Add ``Σ_{r<nr} z[r, j] A[ri[r], :]`` into ``G[j, :D]`` for every class
    j: register tiles of :func:`_grad_tile` (class pairs), then the odd
    class and the last columns; prefetches the first rows ``rows[nxt:stop]``
    of the next row block."""


@njit(cache=True, fastmath=_FAST)
def _axpy4(g, x0, x1, x2, x3, a0, a1, a2, a3):
    """``g += a0 x0 + a1 x1 + a2 x2 + a3 x3``."""
    for k in range(g.size):
        g[k] += a0 * x0[k] + a1 * x1[k] + a2 * x2[k] + a3 * x3[k]


@overload(_backward)
def _backward_impl(G, A, ri, nr, z, X, rows, nxt, stop):
    if A.dtype == types.float32:
        # float32: a four-row AXPY per class measured faster than the
        # register tile (8 lanes per FMA make the gradient traffic cheap)
        def impl32(G, A, ri, nr, z, X, rows, nxt, stop):
            C = G.shape[0]
            D = A.shape[1]
            zero = z[0, 0] - z[0, 0]
            for t in range(0, nr, BLOCK):
                last = nr - 1
                x0 = A[ri[t]]
                x1 = A[ri[min(t + 1, last)]]
                x2 = A[ri[min(t + 2, last)]]
                x3 = A[ri[min(t + 3, last)]]
                for j in range(C):
                    a1 = z[t + 1, j] if t + 1 < nr else zero
                    a2 = z[t + 2, j] if t + 2 < nr else zero
                    a3 = z[t + 3, j] if t + 3 < nr else zero
                    _axpy4(G[j, :D], x0, x1, x2, x3, z[t, j], a1, a2, a3)
        return impl32
    kblock = 128 // (A.dtype.bitwidth // 8)     # four AVX2 vectors of columns

    def impl(G, A, ri, nr, z, X, rows, nxt, stop):
        C = G.shape[0]
        D = A.shape[1]
        d_tiles = D - D % kblock
        n_pf = min(BLOCK, stop - nxt)
        for k in range(0, d_tiles, kblock):
            # the next row block's first rows arrive while this one computes;
            # this block's next columns come from L2 into L1 before use
            _prefetch_rows(X, rows, nxt, nxt + n_pf, k, k + kblock)
            _prefetch_rows(A, ri, 0, nr, k + kblock, min(D, k + 2 * kblock))
            for j in range(0, C - 1, 2):
                _grad_tile(G, j, j + 1, A, ri, nr, z, k)
        if C % 2 == 1:
            j = C - 1
            for r in range(nr):
                _axpy(G[j, :d_tiles], A[ri[r], :d_tiles], z[r, j])
        _backward_columns(G, A, ri, nr, z, d_tiles)
    return impl


@njit(cache=True)
def _rows(X, input_scale, y, rows, start, stop, theta, Wt, G, xr, z):
    """Loss sum of ``rows[start:stop]``; adds the gradient (transposed, with
    the bias gradient in column D) into ``G`` (C x (D + 1)).  Row blocks of
    up to ``xr.shape[0]`` rows: forward in 4-row register blocks, softmax,
    then the backward register tiles over the whole row block."""
    D = X.shape[1]
    C = Wt.shape[0]
    off = D * C
    R = xr.shape[0]     # a multiple of BLOCK
    kt = KTILE_BYTES // Wt.itemsize
    ident = np.arange(R)
    loss = 0.0
    for s0 in range(start, stop, R):
        nr = min(R, stop - s0)
        A, ri = _row_block(X, input_scale, rows, s0, nr, xr, ident)
        # forward: logits of 4 rows at a time (the last block repeats its
        # last row; the extra logits are never read)
        for t in range(0, nr, BLOCK):
            last = nr - 1
            x0 = A[ri[t]]
            x1 = A[ri[min(t + 1, last)]]
            x2 = A[ri[min(t + 2, last)]]
            x3 = A[ri[min(t + 3, last)]]
            for r in range(t, t + BLOCK):
                for j in range(C):
                    z[r, j] = theta[off + j]
            # rows of the next block of X (from memory) while these compute
            lo = s0 + t + BLOCK
            hi = min(lo + BLOCK, stop)
            # column tiles: the 4 rows' tile (12.5 KB) stays in L1 while the
            # class pairs pass over it (whole rows, 25 KB, plus two weight
            # rows would not fit, and every pass would reload x from L2)
            for k0 in range(0, D, kt):
                k1 = min(D, k0 + kt)
                _prefetch_rows(X, rows, lo, hi, k0, k1)
                y0 = x0[k0:k1]
                y1 = x1[k0:k1]
                y2 = x2[k0:k1]
                y3 = x3[k0:k1]
                for j in range(0, C - 1, 2):
                    _dot42(y0, y1, y2, y3, Wt[j, k0:k1], Wt[j + 1, k0:k1], z, t, j)
                if C % 2 == 1:
                    _dot41(y0, y1, y2, y3, Wt[C - 1, k0:k1], z, t, C - 1)
        for r in range(nr):
            m = z[r, 0]
            for j in range(1, C):
                if z[r, j] > m:
                    m = z[r, j]
            label = y[rows[s0 + r]]
            # logsumexp - z[label] from the logit itself: log(softmax[label])
            # would be -inf once exp(z[label] - m) underflows
            z_label = z[r, label]
            exp_below_max(z[r], m)
            total = 0.0
            for j in range(C):
                total += z[r, j]
            loss += (np.log(total) + m) - z_label
            inv = 1.0 / total
            for j in range(C):
                z[r, j] *= inv
            z[r, label] -= 1.0
        _backward(G, A, ri, nr, z, X, rows, s0 + nr, stop)
        for j in range(C):
            acc = z[0, j] - z[0, j]
            for r in range(nr):
                acc += z[r, j]
            G[j, D] += acc
    return loss


@njit(cache=True)
def _transpose_weights(theta, Wt):
    C, D = Wt.shape
    for k in range(D):
        for j in range(C):
            Wt[j, k] = theta[k * C + j]


@njit(cache=True)
def _n_chunks(n_rows, n_max):
    n = n_rows // MIN_CHUNK_ROWS
    if n < 1:
        n = 1
    if n > n_max:
        n = n_max
    return n


@njit(cache=True, parallel=True)
def _accumulate(X, input_scale, y, rows, theta, Wt, Gs, xrs, zs, losses, n_chunks):
    """Per-chunk gradient buffers ``Gs[c]`` (zeroed here) and loss sums."""
    n = rows.size
    for c in prange(n_chunks):
        _zero(Gs[c])
        start = c * n // n_chunks
        stop = (c + 1) * n // n_chunks
        losses[c] = _rows(X, input_scale, y, rows, start, stop, theta, Wt, Gs[c], xrs[c],
                          zs[c])


@njit(cache=True)
def _zero(a):
    """``a[...] = 0`` for a C-contiguous array, as one flat vectorised loop.

    Written inside a ``prange`` body, ``Gs[c, :, :] = 0.0`` compiled to a
    loop that zeroed a 75 KB MNIST gradient buffer in ~8 µs; through this
    separately compiled function it takes ~1.8 µs (rdtsc, both threads)."""
    flat = a.ravel()
    for i in range(flat.size):
        flat[i] = 0.0


@njit(cache=True, fastmath=_FAST)
def _add_rows(dst, src):
    for k in range(dst.size):
        dst[k] += src[k]


@njit(cache=True)
def _reduce_gradient(Gs, n_chunks, scale, prior, theta, grad_out):
    """``grad_out = scale Σ_c Gs[c] (transposed back to θ's layout) + prior θ``.

    The chunk buffers are first summed into ``Gs[0]`` (contiguous, vectorised;
    chunk order fixed), so the strided transposing pass reads one buffer."""
    C = Gs.shape[1]
    D = Gs.shape[2] - 1
    for c in range(1, n_chunks):
        for j in range(C):
            _add_rows(Gs[0, j], Gs[c, j])
    G = Gs[0]
    for k in range(D):
        for j in range(C):
            p = k * C + j
            grad_out[p] = scale * G[j, k] + prior * theta[p]
    for j in range(C):
        p = D * C + j
        grad_out[p] = scale * G[j, D] + prior * theta[p]


def work_chunks(n_threads):
    """Number of per-chunk work buffers: ``n_threads``, default
    ``numba.get_num_threads()``, at least 1 (shared by this module's and
    :mod:`thermo.networks.sparse_perceptron`'s ``make_*work``)."""
    if n_threads is None:
        n_threads = numba.get_num_threads()
    return max(1, int(n_threads))


def make_work(n_in, n_out, dtype=np.float64, n_threads=None):
    """Allocate the work buffers for :func:`perceptron_loss_grad`.

    Parameters
    ----------
    n_in, n_out : int
        Inputs D and classes C.
    dtype : numpy dtype
        θ's float type (float64 or float32).
    n_threads : int, optional
        Most parallel chunks (default ``numba.get_num_threads()``).

    Returns
    -------
    tuple
        ``(Wt, Gs, xrs, zs, losses)``: transposed weights (C, D), per-chunk
        gradients (n, C, D + 1), per-chunk row blocks (n, ROWS, D; used only
        when rows must be converted or scaled), logits (n, ROWS, C) and loss
        sums (n,).
    """
    dtype = np.dtype(dtype)
    n_threads = work_chunks(n_threads)
    return (np.empty((n_out, n_in), dtype), np.zeros((n_threads, n_out, n_in + 1), dtype),
            np.zeros((n_threads, ROWS, n_in), dtype), np.zeros((n_threads, ROWS, n_out), dtype),
            np.zeros(n_threads))


@njit(cache=True)
def _loss_grad(X, input_scale, y, rows, theta, scale, prior, grad_out, Wt, Gs, xrs, zs, losses):
    _transpose_weights(theta, Wt)
    n_chunks = _n_chunks(rows.size, Gs.shape[0])
    _accumulate(X, input_scale, y, rows, theta, Wt, Gs, xrs, zs, losses, n_chunks)
    _reduce_gradient(Gs, n_chunks, scale, prior, theta, grad_out)
    loss = 0.0
    for c in range(n_chunks):
        loss += losses[c]
    return loss


def _check(theta, X, y, rows):
    theta = np.asarray(theta)
    if theta.dtype not in (np.float64, np.float32) or theta.ndim != 1:
        raise TypeError("theta must be a 1-D float64 or float32 array")
    X = np.asarray(X)
    if X.ndim != 2 or X.dtype not in (np.float64, np.float32, np.uint8):
        raise TypeError("X must be a 2-D float64, float32 or uint8 array")
    n_in = X.shape[1]
    if theta.size % (n_in + 1) != 0:
        raise ValueError(f"theta has {theta.size} entries, not a multiple of n_in + 1 = "
                         f"{n_in + 1}")
    n_out = theta.size // (n_in + 1)
    if n_out < 1:
        raise ValueError("theta is empty")
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0] or y.dtype.kind not in "iu":
        raise ValueError("y must be integer labels, one per row of X")
    if y.size and (y.min() < 0 or y.max() >= n_out):
        raise ValueError(f"labels must lie in [0, {n_out})")
    rows = np.arange(X.shape[0], dtype=np.int64) if rows is None else np.asarray(rows)
    if rows.ndim != 1 or rows.dtype.kind not in "iu":
        raise ValueError("rows must be a 1-D integer array")
    if rows.size and (rows.min() < 0 or rows.max() >= X.shape[0]):
        raise ValueError("rows out of range")
    return theta, np.ascontiguousarray(X), y, rows.astype(np.int64, copy=False), n_in, n_out


def perceptron_loss_grad(theta, X, y, rows=None, scale=1.0, prior=0.0, input_scale=1.0,
                         grad_out=None, work=None):
    """Sum of the softmax cross-entropy losses over ``X[rows]`` and its gradient.

    Parameters
    ----------
    theta : numpy.ndarray
        Flat parameters, ``W`` (D x C row-major) then ``b`` (C); float64 or
        float32 (the float32 fast path accumulates in float32).
    X : numpy.ndarray, shape (N, D)
        Inputs, float64, float32 or uint8.
    y : numpy.ndarray of int, shape (N,)
        Class labels in ``[0, C)``.
    rows : numpy.ndarray of int, optional
        Rows to use (default all); never copied.
    scale : float
        Factor of the summed per-example gradient (``N/B`` for a minibatch
        estimate of the total energy, ``1/n`` for a mean).
    prior : float
        Prior precision λ: adds ``λ θ`` to the gradient (not to the loss).
    input_scale : float
        Multiplies every input on the fly (``1/255`` turns uint8 pixels into
        [0, 1]).
    grad_out : numpy.ndarray, optional
        Output buffer (θ's shape and dtype).
    work : tuple, optional
        Buffers from :func:`make_work` (allocated when omitted).

    Returns
    -------
    loss : float
        ``Σ_rows ℓ_i`` (unscaled, no prior).
    grad : numpy.ndarray
        ``scale Σ_rows ∇ℓ_i + prior θ``.
    """
    theta, X, y, rows, n_in, n_out = _check(theta, X, y, rows)
    if grad_out is None:
        grad_out = np.empty_like(theta)
    if work is None:
        work = make_work(n_in, n_out, theta.dtype)
    ftype = theta.dtype.type
    loss = _loss_grad(X, ftype(input_scale), y, rows, theta, ftype(scale), ftype(prior),
                      grad_out, *work)
    return float(loss), grad_out


def reference_loss_grad(theta, X, y, rows=None, scale=1.0, prior=0.0, input_scale=1.0):
    """NumPy float64 reference of :func:`perceptron_loss_grad`.

    Returns
    -------
    loss : float
    grad : numpy.ndarray of float64
    """
    theta = np.asarray(theta, dtype=np.float64)
    n_in = np.asarray(X).shape[1]
    n_out = theta.size // (n_in + 1)
    rows = np.arange(len(X)) if rows is None else np.asarray(rows)
    W = theta[:n_in * n_out].reshape(n_in, n_out)
    b = theta[n_in * n_out:]
    Xb = np.asarray(X)[rows].astype(np.float64) * input_scale
    Z = Xb @ W + b
    m = Z.max(axis=1, keepdims=True)
    P = np.exp(Z - m)
    S = P.sum(axis=1, keepdims=True)
    P /= S
    labels = np.asarray(y)[rows]
    n = len(rows)
    loss = float(np.sum(np.log(S[:, 0]) + m[:, 0] - Z[np.arange(n), labels]))
    P[np.arange(n), labels] -= 1.0
    grad = np.concatenate([(Xb.T @ P).ravel(), P.sum(axis=0)])
    return loss, scale * grad + prior * theta


# --------------------------------------------------------------------------
# Fused sampler runs.

@njit(cache=True)
def _chunk_sum(Gs, n_chunks, q):
    """``Σ_c Gs[c]`` (chunk order fixed) at θ's index ``q``: θ is W (D x C,
    row-major) then b, the buffers are transposed with the bias gradient in
    column D.  Lets a sampler pass reduce the gradient while it updates θ."""
    C = Gs.shape[1]
    D = Gs.shape[2] - 1
    if q < D * C:
        k = q // C
        j = q - k * C
    else:
        k = D
        j = q - D * C
    acc = Gs[0, j, k]
    for c in range(1, n_chunks):
        acc += Gs[c, j, k]
    return acc


@njit(cache=True)
def _sgld_pass(Gs, n_chunks, scale, prior, h, sigma, theta, grad_out, rng):
    """One pass over θ: reduce chunk gradients, add the prior, SGLD update.
    Returns ``(|θ_old|², |∇U|², |noise|²)``."""
    sq_theta = 0.0
    sq_grad = 0.0
    sq_noise = 0.0
    for p in range(theta.size):
        acc = _chunk_sum(Gs, n_chunks, p)
        t = theta[p]
        g = scale * acc + prior * t
        grad_out[p] = g
        xi = sigma * rng.standard_normal() if sigma > 0 else 0.0
        theta[p] = t - h * g + xi
        sq_theta += t * t
        sq_grad += g * g
        sq_noise += xi * xi
    return sq_theta, sq_grad, sq_noise


@njit(cache=True)
def sgld_steps(X, input_scale, y, theta, grad_out, order, cursor, batch, n_steps, step_size,
               beta, prior, rng, Wt, Gs, xrs, zs, losses, energy, grad_norm):
    """Run ``n_steps`` of SGLD on the minibatch posterior (fused kernel).

    Update ``θ ← θ - h ∇U_B(θ) + sqrt(2h/β) ξ`` with
    ``U_B = (N/B) Σ_batch ℓ_i + (λ/2)|θ|²``.  Per step: one parallel pass over
    the batch rows (per-thread buffers), then one pass over θ that reduces the
    buffers, adds the prior, draws ξ and updates θ.

    Parameters
    ----------
    X, input_scale, y : arrays and float
        Data (see :func:`perceptron_loss_grad`).
    theta : numpy.ndarray
        Updated in place.
    grad_out : numpy.ndarray
        Receives ∇U_B at the last step's start point.
    order, cursor : numpy.ndarray of int64
        Minibatch state of :mod:`thermo.data.minibatch` (epoch permutation,
        1-element cursor; start from ``minibatch.new_order(N)``), updated in
        place: batches are drawn exactly as ``Posterior`` draws them, with
        ``draw_without_replacement``.
    batch : numpy.ndarray of int64
        Buffer of length B (the batch size) receiving each step's rows.
    n_steps : int
    step_size, beta, prior : float
        h, β (``inf``: no noise, and no normal draws) and λ.
    rng : numpy.random.Generator
        Draws the epoch shuffles and the noise.
    Wt, Gs, xrs, zs, losses : arrays
        Work buffers from :func:`make_work`.
    energy, grad_norm : numpy.ndarray
        Per-step records (length >= n_steps): U_B and |∇U_B| at each step's
        start point.

    Returns
    -------
    int
        Steps done (``n_steps``).
    """
    N = order.size
    batch_size = batch.size
    scale = N / batch_size
    h = step_size
    sigma = np.sqrt(2.0 * h / beta)
    for step in range(n_steps):
        draw_without_replacement(order, cursor, batch, rng)
        _transpose_weights(theta, Wt)
        n_chunks = _n_chunks(batch_size, Gs.shape[0])
        _accumulate(X, input_scale, y, batch, theta, Wt, Gs, xrs, zs, losses, n_chunks)
        loss = 0.0
        for c in range(n_chunks):
            loss += losses[c]
        sq_theta, sq_grad, sq_noise = _sgld_pass(Gs, n_chunks, scale, prior, h, sigma, theta,
                                                 grad_out, rng)
        energy[step] = scale * loss + 0.5 * prior * sq_theta
        grad_norm[step] = np.sqrt(sq_grad)
    return n_steps


@njit(cache=True)
def _baoab_pass(Gs, n_chunks, scale, prior, kick, half, c1, c2, theta, momentum, grad_out,
                rng):
    """One pass over θ: reduce chunk gradients into ``grad_out`` (+ prior),
    then ``p -= kick g``; A; O; A.  Returns ``|p|²`` after O and ``|θ_old|²``."""
    sq_p = 0.0
    sq_theta = 0.0
    for q in range(theta.size):
        acc = _chunk_sum(Gs, n_chunks, q)
        t = theta[q]
        sq_theta += t * t
        g = scale * acc + prior * t
        grad_out[q] = g
        p = momentum[q] - kick * g
        t += half * p
        p = c1 * p + c2 * rng.standard_normal() if c2 > 0 else c1 * p
        sq_p += p * p
        momentum[q] = p
        theta[q] = t + half * p
    return sq_p, sq_theta


@njit(cache=True)
def _final_kick(Gs, n_chunks, scale, prior, half, theta, momentum, grad_out):
    """The run's closing B: ``grad_out = ∇U_B(θ)``, ``p -= h/2 grad_out``."""
    _reduce_gradient(Gs, n_chunks, scale, prior, theta, grad_out)
    for q in range(theta.size):
        momentum[q] -= half * grad_out[q]


@njit(cache=True)
def baoab_steps(X, input_scale, y, theta, momentum, grad_out, order, cursor, batch, n_steps,
                step_size, beta, friction, prior, rng, Wt, Gs, xrs, zs, losses, energy,
                kinetic):
    """Run ``n_steps`` of BAOAB Langevin dynamics on the minibatch posterior.

    Each step is B (``p -= h/2 ∇U``), A (``θ += h/2 p``), O (``p = c₁p +
    c₂ξ`` with ``c₁ = e^{-γh}``, ``c₂ = sqrt((1-c₁²)/β)``), A, a new minibatch
    gradient, B.  The closing B of one step and the opening B of the next use
    the same gradient, so they are merged: per step there is one pass over
    the batch rows and one pass over θ (reduce + B + A + O + A).  A fresh
    minibatch is drawn for each step's gradient.

    Parameters
    ----------
    X, input_scale, y : arrays and float
        Data (see :func:`perceptron_loss_grad`).
    theta, momentum : numpy.ndarray
        Updated in place; on entry ``momentum`` is a full-step momentum.
    grad_out : numpy.ndarray
        Receives ∇U_B at the final θ.
    order, cursor, batch : see :func:`sgld_steps`.
    n_steps : int
    step_size, beta, friction, prior : float
        h, β (``inf``: no noise, and no normal draws), γ, λ.
    rng : numpy.random.Generator
    Wt, Gs, xrs, zs, losses : arrays
        Work buffers from :func:`make_work`.
    energy, kinetic : numpy.ndarray
        Per-step records (length >= n_steps): U_B at the step's start point
        and ``|p|²/2`` right after the O step.

    Returns
    -------
    int
        Steps done (``n_steps``).
    """
    N = order.size
    batch_size = batch.size
    scale = N / batch_size
    h = step_size
    half = 0.5 * h
    c1 = np.exp(-friction * h)
    c2 = np.sqrt((1.0 - c1 * c1) / beta)
    n_chunks = 1
    for step in range(n_steps + 1):
        draw_without_replacement(order, cursor, batch, rng)
        _transpose_weights(theta, Wt)
        n_chunks = _n_chunks(batch_size, Gs.shape[0])
        _accumulate(X, input_scale, y, batch, theta, Wt, Gs, xrs, zs, losses, n_chunks)
        if step == n_steps:
            break
        loss = 0.0
        for c in range(n_chunks):
            loss += losses[c]
        kick = half if step == 0 else h
        sq_p, sq_theta = _baoab_pass(Gs, n_chunks, scale, prior, kick, half, c1, c2, theta,
                                     momentum, grad_out, rng)
        energy[step] = scale * loss + 0.5 * prior * sq_theta
        kinetic[step] = 0.5 * sq_p
    _final_kick(Gs, n_chunks, scale, prior, half, theta, momentum, grad_out)
    return n_steps
