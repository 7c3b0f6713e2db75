"""Numba kernels of the fully connected network: fused forward and backward pass.

Conventions
-----------
* ``theta`` is the flat parameter vector, layer by layer ``W`` (fan_in x
  fan_out, row-major) then ``b`` (fan_out); ``w_off[l]`` and ``b_off[l]`` are
  the offsets of layer ``l``.
* The kernels work on the rows ``X[rows[i]]`` of the data: a minibatch is only
  an index array, rows of ``X`` are never copied.
* They return the **sum** of the per-example losses over the rows (float64)
  and write ``scale * (sum of per-example gradients) + prior * theta`` into
  ``grad_out``.  Callers choose ``scale`` (``1/n`` for the mean loss of
  :meth:`thermo.networks.MLP.loss_and_grad`, ``N/B`` for the minibatch estimate
  of the total energy U of :class:`thermo.potentials.Posterior`).
* Activations, loss and label kind are integer codes passed at run time, so a
  single compiled kernel (per float type) serves every network: compile time
  dominates a cold start (CI compiles from an empty cache).

Per-example loss ``l_i`` of the network output ``o = out_act(z)`` (K outputs):

* cross entropy: ``logsumexp(o) - o[y]`` (softmax of the outputs);
* mse: ``(1/K) sum_k (o_k - t_k)^2`` (TensorFlow's ``mean_squared_error``,
  i.e. mean over output units), ``t`` a float target, the one-hot vector of
  an integer class label (built here, never stored) or a +-1 label (K = 1);
* logistic: ``log(1 + exp(o)) - y o`` with ``y`` in {0, 1}: the log loss of
  ``sigmoid(o)`` computed stably from the logit ``o``.

Speed
-----
Rows are processed in blocks of ``BLOCK_ROWS`` (16): the forward and backward
pass of a block run back to back, so the block's inputs, activations and
errors stay in L1/L2 cache and the data are read from memory once.  Every
product is built from register-blocked micro-kernels, :func:`_axpy8` and
:func:`_axpy4` (``y += sum of 8 or 4 scaled vectors``, vectorised along the
contiguous unit axis: one load and one store of ``y`` per 8 multiply-adds,
where a plain axpy needs one of each per multiply-add and is bound by the
store port), and :func:`_dot8`:

* inputs that are zero in every row of the block are dropped from a
  per-block list of active inputs (MNIST pixels are ~80 % zeros; ReLU
  outputs), and each row further keeps only its own non-zero inputs;
* forward, ``z_r = b + sum_j x_rj W_j``: per row, 8 of its non-zero inputs
  at a time (the block's weight rows stay in L2 across its rows);
* weight gradient, ``G_j += sum_r x_rj d_r``: per active input, the rows of
  the block where it is non-zero, 8 (or 4) at a time, so ``G_j`` is loaded
  and stored once per block and stays in L1 between the calls;
* error of the layer below, ``e_rj = f'(a_rj) sum_k d_rk W_jk``: 8 dot
  products at once, one load of ``W_j`` for 8 rows;
* tanh, the usual hidden activation, is a vectorised polynomial
  (:func:`_tanh_inplace`) rather than one libm call per unit.

Blocks are split into at most one chunk per thread (``parallel=True``), each
chunk accumulating into its own gradient buffer; the buffers are summed in a
fixed order at the end, so results are bit-reproducible for a fixed number of
chunks (the work buffers' rows, not the current thread count).
``fastmath`` is confined to the micro-kernels and limited to contraction into
FMAs (plus reassociation of the dot products' sums), never to no-NaN/no-inf,
so NaN and inf still propagate.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from thermo import _numba_cache  # noqa: F401  (threading layer, tolerant cache index)

# Activation codes (hidden and output layers).
LINEAR, RELU, TANH, SIGMOID, SOFTPLUS = 0, 1, 2, 3, 4
ACTIVATIONS = {"linear": LINEAR, "relu": RELU, "tanh": TANH, "sigmoid": SIGMOID,
               "softplus": SOFTPLUS}
# Loss codes.
CROSS_ENTROPY, MSE, LOGISTIC = 0, 1, 2
LOSSES = {"cross_entropy": CROSS_ENTROPY, "mse": MSE, "logistic": LOGISTIC}
# Label kinds: integer class labels (y_int), float targets (y_float, no
# accuracy), +-1 labels stored as float targets of one output (accuracy by sign).
LABEL_CLASS, LABEL_TARGET, LABEL_SIGN = 0, 1, 2

#: Rows per block: forward and backward of a block share its rows in cache.
#: A multiple of 8 (the micro-kernels combine 8 rows or 8 inputs at once).
BLOCK_ROWS = 16
#: Fewest rows worth a chunk of their own: below this, waking a second thread
#: costs more than it saves (measured on the MNIST perceptron).
MIN_CHUNK_ROWS = 48


# exp(x) = 2**n (1 + expm1(r)), x = n ln2 + r, |r| <= ln2/2 (Cody-Waite split
# of ln2 so that r is exact to ~1e-20)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00


@njit(cache=True, error_model="numpy")
def _tanh_inplace(z):
    """``z[k] = tanh(z[k])`` for all ``k``, vectorised (~5 ns per number
    against ~13 ns for the libm call, which dominated the forward pass of a
    100-unit tanh layer).

    ``tanh|x| = -m / (m + 2)`` with ``m = expm1(-2|x|)``; ``expm1`` from
    range reduction and the Taylor polynomial of degree 13 (truncation error
    < 2e-17 relative on ``|r| <= ln2/2``), the power of two ``2**n``
    (``-58 <= n <= 0``) built by exact multiplications by ``2**-32, 2**-16,
    ...`` selected with comparisons (no integer conversion, which AVX2 cannot
    vectorise).  Measured against ``np.tanh``: relative error < 5e-16 over
    [-25, 25] and tiny arguments; ``tanh(+-0) = +-0``, ``+-inf -> +-1``, NaN
    stays NaN.  ``error_model="numpy"``: no zero-division check (the
    denominator is >= 1), which would stop the vectoriser.  Computed in
    float64 for float32 networks too.
    """
    for k in range(z.size):
        x = np.float64(z[k])
        a = abs(x)
        a = a if a < 20.0 else 20.0
        y = -2.0 * a
        n = np.floor(y * _INV_LN2 + 0.5)
        r = (y - n * _LN2_HI) - n * _LN2_LO
        p = 1.6059043836821613e-10
        p = p * r + 2.08767569878681e-09
        p = p * r + 2.505210838544172e-08
        p = p * r + 2.755731922398589e-07
        p = p * r + 2.7557319223985893e-06
        p = p * r + 2.48015873015873e-05
        p = p * r + 0.0001984126984126984
        p = p * r + 0.001388888888888889
        p = p * r + 0.008333333333333333
        p = p * r + 0.041666666666666664
        p = p * r + 0.16666666666666666
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r
        m = -n
        s = 1.0
        b = m >= 32.0
        s = s * (2.3283064365386963e-10 if b else 1.0)
        m = m - (32.0 if b else 0.0)
        b = m >= 16.0
        s = s * (1.52587890625e-05 if b else 1.0)
        m = m - (16.0 if b else 0.0)
        b = m >= 8.0
        s = s * (0.00390625 if b else 1.0)
        m = m - (8.0 if b else 0.0)
        b = m >= 4.0
        s = s * (0.0625 if b else 1.0)
        m = m - (4.0 if b else 0.0)
        b = m >= 2.0
        s = s * (0.25 if b else 1.0)
        m = m - (2.0 if b else 0.0)
        s = s * (0.5 if m >= 1.0 else 1.0)
        em = s * p + (s - 1.0)
        t = -em / (em + 2.0)
        t = t if x >= 0 else -t
        z[k] = t if x == x else x


EXP_ZERO_BELOW = -746.0
"""Below this, exp(x) is 0 in float64 (the smallest subnormal is e^-744.4)."""


@njit(cache=True, inline="always")
def exp_or_zero(x):
    """``exp(x)``, with the 0 of an underflow returned without calling exp.

    glibc's exp reports an underflow through a slow error path (errno,
    ``__kernel_standard``), and the softmax terms of classes far below the
    largest logit take it often: 2-3 % of an MNIST perceptron step in perf
    on unscaled pixels.  The result is the same number exp returns.
    """
    if x < EXP_ZERO_BELOW:
        return x - x            # +0, in x's type
    return np.exp(x)


@njit(cache=True)
def _activate(code, z):
    if code == LINEAR:
        return z
    if code == RELU:
        return z if z > 0 else z * 0
    if code == TANH:
        return np.tanh(z)
    if code == SIGMOID:
        # Two branches so exp never overflows.
        if z >= 0:
            return 1 / (1 + np.exp(-z))
        e = np.exp(z)
        return e / (1 + e)
    # softplus log(1 + e^z), stable for both signs of z
    return max(z, z * 0) + np.log1p(np.exp(-abs(z)))


@njit(cache=True)
def _derivative(code, a):
    """Derivative of the activation, from its *output* a (no pre-activation
    needs to be stored)."""
    if code == LINEAR:
        return a * 0 + 1
    if code == RELU:
        return a * 0 + 1 if a > 0 else a * 0
    if code == TANH:
        return 1 - a * a
    if code == SIGMOID:
        return a * (1 - a)
    # softplus: a = log(1 + e^z) so sigmoid(z) = 1 - e^-a; expm1 keeps the
    # precision when a is tiny (z very negative).
    return -np.expm1(-a)


@njit(cache=True, fastmath={"contract"})
def _axpy8(y, c0, c1, c2, c3, c4, c5, c6, c7, V, v0, v1, v2, v3, v4, v5, v6, v7, n):
    """``y[k] += sum_i c_i V[v_i + k]`` for ``k < n``: the micro-kernel.

    One load and one store of ``y`` per 8 multiply-adds (the previous kernel
    did one of each per multiply-add, which bounded it by the store port);
    LLVM vectorises the loop along ``k`` (4 doubles / 8 floats per ymm FMA).
    The 8 terms are summed as a balanced tree, so the dependency chain is 4
    operations deep instead of 8.  Only contraction into FMAs is allowed:
    the order of the sum is as written, so results are reproducible.
    """
    # slices, not offsets: indices from a range over a slice need no
    # negative-index wraparound, which would stop the vectoriser
    a0 = V[v0:v0 + n]
    a1 = V[v1:v1 + n]
    a2 = V[v2:v2 + n]
    a3 = V[v3:v3 + n]
    a4 = V[v4:v4 + n]
    a5 = V[v5:v5 + n]
    a6 = V[v6:v6 + n]
    a7 = V[v7:v7 + n]
    for k in range(n):
        y[k] = y[k] + (((c0 * a0[k] + c1 * a1[k]) + (c2 * a2[k] + c3 * a3[k]))
                       + ((c4 * a4[k] + c5 * a5[k]) + (c6 * a6[k] + c7 * a7[k])))


@njit(cache=True, fastmath={"contract"})
def _axpy4(y, c0, c1, c2, c3, V, v0, v1, v2, v3, n):
    """``y[k] += sum_i c_i V[v_i + k]`` for ``k < n``, 4 terms (see
    :func:`_axpy8`)."""
    a0 = V[v0:v0 + n]
    a1 = V[v1:v1 + n]
    a2 = V[v2:v2 + n]
    a3 = V[v3:v3 + n]
    for k in range(n):
        y[k] = y[k] + ((c0 * a0[k] + c1 * a1[k]) + (c2 * a2[k] + c3 * a3[k]))


@njit(cache=True, fastmath={"reassoc", "contract"})
def _dot8(w, D, ld, n):
    """The 8 dot products ``sum_k D[r*ld + k] w[k]``, ``r < 8``.

    Reassociation lets LLVM keep one vector of partial sums per row (8
    accumulators; ``w`` is loaded once for the 8 rows); the order is fixed
    by the compiled code, so results are still reproducible.
    """
    d0 = D[0:n]
    d1 = D[ld:ld + n]
    d2 = D[2 * ld:2 * ld + n]
    d3 = D[3 * ld:3 * ld + n]
    d4 = D[4 * ld:4 * ld + n]
    d5 = D[5 * ld:5 * ld + n]
    d6 = D[6 * ld:6 * ld + n]
    d7 = D[7 * ld:7 * ld + n]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for k in range(n):
        wk = np.float64(w[k])
        s0 += d0[k] * wk
        s1 += d1[k] * wk
        s2 += d2[k] * wk
        s3 += d3[k] * wk
        s4 += d4[k] * wk
        s5 += d5[k] * wk
        s6 += d6[k] * wk
        s7 += d7[k] * wk
    return s0, s1, s2, s3, s4, s5, s6, s7


def act_size(sizes):
    """Length of one chunk's row of the ``act`` work buffer for layer sizes
    ``sizes`` (see :func:`_layout`)."""
    units = sum(int(s) + 1 for s in sizes)
    lists = sum((int(s) + 7) // 8 * 8 for s in sizes[:-1])
    return BLOCK_ROWS * units + lists + (int(max(sizes[:-1])) + 7) // 8 * 8


@njit(cache=True)
def _layout(sizes, src, lst):
    """Offsets in a chunk's ``act`` row (a block of ``BLOCK_ROWS`` rows).

    ``src[l]``: values of layer ``l`` (``l = 0``: the block's input rows,
    copied from ``X``; then each layer's outputs after activation), row
    ``r`` at ``src[l] + r * (sizes[l] + 1)``.  The extra last column is
    always 0: the padding entries of a row's list of non-zero inputs point
    at it.
    ``lst[l]``: the list of active inputs of layer ``l`` (indices stored as
    floats, so one float buffer holds everything; exact up to 2**24 inputs);
    ``lst[n_layers]``: the list of one row's non-zero inputs.  Returns the
    total length (checked against the buffer by ``evaluate``).
    """
    n_layers = sizes.size - 1
    p = 0
    for l in range(n_layers + 1):
        src[l] = p
        p += BLOCK_ROWS * (sizes[l] + 1)
    widest_in = 0
    for l in range(n_layers):
        lst[l] = p
        p += (sizes[l] + 7) // 8 * 8
        widest_in = max(widest_in, sizes[l])
    lst[n_layers] = p
    p += (widest_in + 7) // 8 * 8
    return p


@njit(cache=True)
def _forward_layer(theta, l, nb, sizes, w_off, b_off, acts, act, src, lst):
    """Layer ``l`` of a block of ``nb`` rows: list the active inputs (non-zero
    in some row of the block) into ``act[lst[l]:]`` and write the outputs
    after activation into the rows of ``src[l + 1]``.  Returns the number of
    active inputs."""
    fan_in = sizes[l]
    fan_out = sizes[l + 1]
    ld_in = fan_in + 1
    ld_out = fan_out + 1
    x0 = src[l]
    z0 = src[l + 1]
    li = lst[l]
    w0 = w_off[l]
    b0 = b_off[l]
    code = acts[l]
    # Branch-free (a data-dependent branch per input mispredicts about every
    # other time on MNIST): the sum of |x| over the block's rows is 0
    # exactly when all are 0 (unused rows of a short block hold zeros), and
    # the index is always written, then kept by advancing the count.
    n_active = 0
    for j in range(fan_in):
        m = 0.0
        for g in range(0, BLOCK_ROWS, 8):
            p = x0 + g * ld_in + j
            m += (((abs(act[p]) + abs(act[p + ld_in]))
                   + (abs(act[p + 2 * ld_in]) + abs(act[p + 3 * ld_in])))
                  + ((abs(act[p + 4 * ld_in]) + abs(act[p + 5 * ld_in]))
                     + (abs(act[p + 6 * ld_in]) + abs(act[p + 7 * ld_in]))))
        act[li + n_active] = j
        n_active += 1 if m != 0 else 0
    for r in range(nb):
        zr = z0 + r * ld_out
        for k in range(fan_out):
            act[zr + k] = theta[b0 + k]
    # Per row, only its own non-zero inputs (MNIST: 19 % of the pixels, 40 %
    # of the block's active ones), 8 at a time; padded to a multiple of 8
    # with the always-zero column, whose "weight row" is the bias (read and
    # multiplied by 0).  The block's weight rows stay in L2 across its rows.
    lr = lst[sizes.size - 1]
    for r in range(nb):
        xr = x0 + r * ld_in
        n_row = 0
        for t in range(n_active):
            j = act[li + t]
            act[lr + n_row] = j
            n_row += 1 if act[xr + np.int64(j)] != 0 else 0
        while n_row % 8 != 0:
            act[lr + n_row] = fan_in
            n_row += 1
        zr = z0 + r * ld_out
        z = act[zr:zr + fan_out]
        for t in range(0, n_row, 8):
            j0 = np.int64(act[lr + t])
            j1 = np.int64(act[lr + t + 1])
            j2 = np.int64(act[lr + t + 2])
            j3 = np.int64(act[lr + t + 3])
            j4 = np.int64(act[lr + t + 4])
            j5 = np.int64(act[lr + t + 5])
            j6 = np.int64(act[lr + t + 6])
            j7 = np.int64(act[lr + t + 7])
            _axpy8(z, act[xr + j0], act[xr + j1], act[xr + j2], act[xr + j3], act[xr + j4],
                   act[xr + j5], act[xr + j6], act[xr + j7], theta, w0 + j0 * fan_out,
                   w0 + j1 * fan_out, w0 + j2 * fan_out, w0 + j3 * fan_out, w0 + j4 * fan_out,
                   w0 + j5 * fan_out, w0 + j6 * fan_out, w0 + j7 * fan_out, fan_out)
    if code == TANH:
        for r in range(nb):
            zr = z0 + r * ld_out
            _tanh_inplace(act[zr:zr + fan_out])
    elif code != LINEAR:
        for r in range(nb):
            zr = z0 + r * ld_out
            for k in range(fan_out):
                act[zr + k] = _activate(code, act[zr + k])
    return n_active


@njit(cache=True)
def _weight_gradient(G, act, x0, ld_in, li, n_active, w0, fan_out, D, width, squared, cbuf,
                     obuf):
    """``G[W_j] += sum_r c_rj D_r`` over the active inputs ``j`` of a block,
    ``c_rj = x_rj`` (or ``x_rj**2`` when ``squared``, with ``D`` holding the
    squared errors: the per-example squared gradients of CCAdL).

    Only the rows with ``c_rj != 0`` take part (on MNIST about 40 % of the
    block's), gathered into ``cbuf``/``obuf`` (``BLOCK_ROWS + 8`` entries)
    and combined 8 at a time, the last group padded with zero terms to 4 or
    8.  ``G[W_j]`` comes from memory once per block.
    """
    for t in range(n_active):
        j = np.int64(act[li + t])
        m = 0
        for r in range(BLOCK_ROWS):
            c = act[x0 + r * ld_in + j]
            if squared:
                c *= c
            cbuf[m] = c
            obuf[m] = r * width
            m += 1 if c != 0 else 0
        for i in range(m, m + 8):
            cbuf[i] = 0
            obuf[i] = 0
        wr = w0 + j * fan_out
        g = G[wr:wr + fan_out]
        # consecutive calls on the same G[W_j]: it stays in L1 between them
        for i in range(0, m, 8):
            if m - i <= 4:
                _axpy4(g, cbuf[i], cbuf[i + 1], cbuf[i + 2], cbuf[i + 3], D, obuf[i],
                       obuf[i + 1], obuf[i + 2], obuf[i + 3], fan_out)
            else:
                _axpy8(g, cbuf[i], cbuf[i + 1], cbuf[i + 2], cbuf[i + 3], cbuf[i + 4],
                       cbuf[i + 5], cbuf[i + 6], cbuf[i + 7], D, obuf[i], obuf[i + 1],
                       obuf[i + 2], obuf[i + 3], obuf[i + 4], obuf[i + 5], obuf[i + 6],
                       obuf[i + 7], fan_out)


@njit(cache=True)
def _loss_delta(act, ob, n_out, out_code, loss_code, label_code, y_int, y_float, i, delta, db):
    """Loss of example ``i`` from its outputs ``act[ob:ob+n_out]``; writes
    dl/dz of the output layer into ``delta[db:db+n_out]``."""
    loss = 0.0
    if loss_code == CROSS_ENTROPY:
        label = y_int[i]
        m = act[ob]
        for k in range(1, n_out):
            m = max(m, act[ob + k])
        total = 0.0
        for k in range(n_out):
            total += exp_or_zero(np.float64(act[ob + k]) - m)
        lse = m + np.log(total)
        loss = lse - act[ob + label]
        for k in range(n_out):
            delta[db + k] = exp_or_zero(np.float64(act[ob + k]) - lse)
        delta[db + label] -= 1
    elif loss_code == MSE:
        inv = 1.0 / n_out
        for k in range(n_out):
            if label_code == LABEL_CLASS:
                t = 1.0 if k == y_int[i] else 0.0
            else:
                t = np.float64(y_float[i, k])
            e = np.float64(act[ob + k]) - t
            loss += e * e * inv
            delta[db + k] = 2 * e * inv
    else:  # logistic, one output, label 0/1; log(1+e^o) - y o without overflow
        o = np.float64(act[ob])
        y = np.float64(y_int[i])
        loss = max(o, 0.0) - o * y + np.log1p(np.exp(-abs(o)))
        if o >= 0:
            p = 1 / (1 + np.exp(-o))
        else:
            e = np.exp(o)
            p = e / (1 + e)
        delta[db] = p - y
    if out_code != LINEAR:
        for k in range(n_out):
            delta[db + k] *= _derivative(out_code, act[ob + k])
    return loss


@njit(cache=True)
def _predict_one(act, ob, n_out, loss_code):
    if n_out == 1:
        if loss_code == LOGISTIC:
            return 1 if act[ob] > 0 else 0
        return 1 if act[ob] >= 0 else -1
    best = 0
    for k in range(1, n_out):
        if act[ob + k] > act[ob + best]:
            best = k
    return best


# What a pass computes (one kernel for all, so only one parallel region is
# compiled: each costs seconds of cold-cache compile time).
MODE_LOSS, MODE_FORWARD, MODE_COUNT = 0, 1, 2


@njit(cache=True)
def _chunk(mode, theta, X, rows, start, end, y_int, y_float, sizes, w_off, b_off, u_off, acts,
           loss_code, label_code, want_grad, want_sq, acc, sq, act, d0, d1, out, pred):
    """One chunk ``rows[start:end]`` of a pass, block by block.

    ``MODE_LOSS``: returns the sum of the losses; when ``want_grad`` sets
    ``acc`` to the sum of per-example gradients (and ``sq`` to the sum of
    their squares when ``want_sq``).  ``MODE_FORWARD``: writes outputs and
    predictions of row ``i`` of the chunk to ``out[start+i]``,
    ``pred[start+i]``.  ``MODE_COUNT``: returns the number of correct
    predictions.  ``act`` is laid out by :func:`_layout`; ``d0``/``d1``
    hold the errors of a block, row ``r`` at ``r * (d0.size // BLOCK_ROWS)``.
    """
    n_layers = sizes.size - 1
    n_out = sizes[n_layers]
    n_in = sizes[0]
    width = d0.size // BLOCK_ROWS
    src = np.empty(n_layers + 1, np.int64)
    lst = np.empty(n_layers + 1, np.int64)
    n_active = np.zeros(n_layers, np.int64)
    _layout(sizes, src, lst)
    cbuf = np.zeros(BLOCK_ROWS + 8, act.dtype)   # gathered terms of the weight gradient
    obuf = np.zeros(BLOCK_ROWS + 8, np.int64)
    ld_out = n_out + 1
    # flags are ints, not bools: Numba would compile one copy of the whole
    # kernel per combination of literal True/False arguments
    want_grad = want_grad != 0 and mode == MODE_LOSS
    if want_grad:
        for p in range(acc.size):
            acc[p] = 0
    if want_grad and want_sq:
        for p in range(sq.size):
            sq[p] = 0
    # The block's buffers start at 0: the always-zero last column of every
    # layer, and the rows a short last block leaves unused, must hold finite
    # values (they are multiplied by 0, and 0 * inf is NaN).
    for p in range(src[n_layers] + BLOCK_ROWS * ld_out):
        act[p] = 0
    for p in range(d0.size):
        d0[p] = 0
        d1[p] = 0
    loss = 0.0
    for s in range(start, end, BLOCK_ROWS):
        nb = min(BLOCK_ROWS, end - s)
        if nb < BLOCK_ROWS:
            # short last block: clear what the previous full block left in
            # the unused rows
            for l in range(n_layers + 1):
                ld = sizes[l] + 1
                for p in range(src[l] + nb * ld, src[l] + BLOCK_ROWS * ld):
                    act[p] = 0
            for p in range(nb * width, d0.size):
                d0[p] = 0
                d1[p] = 0
        for r in range(nb):
            xi = rows[s + r]
            xr = src[0] + r * (n_in + 1)
            for j in range(n_in):
                act[xr + j] = X[xi, j]
        for l in range(n_layers):
            n_active[l] = _forward_layer(theta, l, nb, sizes, w_off, b_off, acts, act, src, lst)
        if mode == MODE_FORWARD:
            for r in range(nb):
                ob = src[n_layers] + r * ld_out
                for k in range(n_out):
                    out[s + r, k] = act[ob + k]
                pred[s + r] = _predict_one(act, ob, n_out, loss_code)
            continue
        if mode == MODE_COUNT:
            for r in range(nb):
                p = _predict_one(act, src[n_layers] + r * ld_out, n_out, loss_code)
                i = rows[s + r]
                if label_code == LABEL_SIGN:
                    label = 1 if y_float[i, 0] > 0 else -1
                else:
                    label = y_int[i]
                if p == label:
                    loss += 1
            continue
        for r in range(nb):
            loss += _loss_delta(act, src[n_layers] + r * ld_out, n_out, acts[n_layers - 1],
                                loss_code, label_code, y_int, y_float, rows[s + r], d0, r * width)
        if not want_grad:
            continue
        dcur = d0
        dprev = d1
        for l in range(n_layers - 1, -1, -1):
            fan_in = sizes[l]
            fan_out = sizes[l + 1]
            ld_in = fan_in + 1
            x0 = src[l]
            w0 = w_off[l]
            b0 = b_off[l]
            if l > 0:
                # errors of the layer below, before dcur is squared for sq
                code = acts[l - 1]
                for g in range(0, BLOCK_ROWS, 8):
                    dg = g * width
                    for j in range(fan_in):
                        wr = w0 + j * fan_out
                        e0, e1, e2, e3, e4, e5, e6, e7 = _dot8(theta[wr:wr + fan_out],
                                                               dcur[dg:], width, fan_out)
                        dprev[dg + j] = e0
                        dprev[dg + width + j] = e1
                        dprev[dg + 2 * width + j] = e2
                        dprev[dg + 3 * width + j] = e3
                        dprev[dg + 4 * width + j] = e4
                        dprev[dg + 5 * width + j] = e5
                        dprev[dg + 6 * width + j] = e6
                        dprev[dg + 7 * width + j] = e7
                # times the activation's derivative, in a loop of its own: one
                # inlined copy of _derivative instead of 8 (compile time); rows
                # past nb have zero errors, so they get zero here too
                for r in range(BLOCK_ROWS):
                    for j in range(fan_in):
                        dprev[r * width + j] *= _derivative(code, act[x0 + r * ld_in + j])
            # pass 0: gradient sums into acc; pass 1 (CCAdL): sums of squared
            # per-example gradients x_rj^2 d_rk^2 (weights), d_rk^2 (bias) into
            # sq.  One call site, so the kernels are inlined once (compile time).
            for sweep in range(2 if want_sq else 1):
                G = acc if sweep == 0 else sq
                if sweep == 1:
                    for p in range(nb * width):
                        dcur[p] *= dcur[p]
                for k in range(fan_out):
                    for r in range(nb):
                        G[b0 + k] += dcur[r * width + k]
                _weight_gradient(G, act, x0, ld_in, lst[l], n_active[l], w0, fan_out, dcur,
                                 width, sweep, cbuf, obuf)
            dcur, dprev = dprev, dcur
    return loss


@njit(cache=True)
def n_chunks_for(n_rows, max_chunks):
    """Number of chunks used for ``n_rows`` rows.

    ``max_chunks`` is the number of buffer rows, set to Numba's thread count
    when the buffers are made.  It is deliberately not the *current* thread
    count (``numba.get_num_threads`` cannot be disk-cached, and results would
    then depend on it): with fewer threads the chunks simply run one after
    the other and give the same bits.
    """
    return max(1, min(max_chunks, n_rows // MIN_CHUNK_ROWS))


@njit(cache=True, parallel=True)
def _parallel_chunks(mode, theta, X, rows, n_chunks, y_int, y_float, sizes, w_off, b_off,
                     u_off, acts, loss_code, label_code, want_grad, want_sq, acc, sq, act, d0,
                     d1, parts, out, pred):
    n = rows.size
    n_blocks = (n + BLOCK_ROWS - 1) // BLOCK_ROWS
    for c in prange(n_chunks):
        # Chunk c always gets the same rows and buffer, whichever thread runs
        # it: the final sum is independent of scheduling.  Chunks are whole
        # blocks (only the last one can end with a short block).
        lo = c * n_blocks // n_chunks * BLOCK_ROWS
        hi = min(n, (c + 1) * n_blocks // n_chunks * BLOCK_ROWS)
        parts[c] = _chunk(mode, theta, X, rows, lo, hi,
                          y_int, y_float, sizes, w_off, b_off, u_off, acts, loss_code,
                          label_code, want_grad, want_sq, acc[c], sq[c], act[c], d0[c], d1[c],
                          out, pred)


@njit(cache=True)
def _reduce(n_chunks, scale, prior, theta, acc, sq, want_sq, var_factor, n_rows, grad_out,
            var_out):
    # Serial: it touches n_chunks * n_params numbers, negligible next to the
    # passes over the data, and a second parallel region would cost seconds
    # of compile time.
    if not want_sq and n_chunks <= 2:
        # the sampling hot path (1 or 2 threads): branch-free loops LLVM
        # vectorises, same sums as the general loop below
        if n_chunks == 1:
            for p in range(grad_out.size):
                grad_out[p] = scale * np.float64(acc[0, p]) + prior * theta[p]
        else:
            for p in range(grad_out.size):
                grad_out[p] = scale * (np.float64(acc[0, p]) + acc[1, p]) + prior * theta[p]
        return
    if not want_sq:
        for p in range(grad_out.size):
            total = np.float64(acc[0, p])
            for c in range(1, n_chunks):
                total += acc[c, p]
            grad_out[p] = scale * total + prior * theta[p]
        return
    for p in range(grad_out.size):
        total = np.float64(acc[0, p])
        for c in range(1, n_chunks):
            total += acc[c, p]
        grad_out[p] = scale * total + prior * theta[p]
        squares = np.float64(sq[0, p])
        for c in range(1, n_chunks):
            squares += sq[c, p]
        if var_factor == 0.0:
            var_out[p] = 0.0
        elif n_rows > 1:
            # sample variance of per-example gradients, one pass;
            # clipped since rounding can make it slightly negative
            s2 = (squares - total * total / n_rows) / (n_rows - 1)
            var_out[p] = var_factor * max(s2, 0.0)
        else:
            var_out[p] = np.nan


@njit(cache=True)
def evaluate(mode, theta, X, rows, y_int, y_float, sizes, w_off, b_off, u_off, acts, loss_code,
             label_code, scale, prior, want_grad, grad_out, want_sq, var_factor, var_out,
             acc, sq, act, d0, d1, parts, out, pred):
    """Every pass over the rows ``X[rows]``, selected by ``mode``.

    One entry point (rather than one per task, and no intermediate jitted
    levels) because every jitted function calling the kernels re-optimises
    all of them when it is compiled: about 3 s each on a cold cache.

    ``MODE_LOSS``: returns the sum over rows of the per-example losses
    (float64).  When ``want_grad``, writes ``grad_out = scale * sum_i grad l_i
    + prior * theta``; when also ``want_sq``, writes ``var_out = var_factor *
    s^2`` with ``s^2`` the per-coordinate sample variance of the
    per-example gradients over the rows (NaN for a single row), from the
    sums of ``grad l_i`` and of its square (one pass).

    ``MODE_FORWARD``: outputs (after output activation) into ``out``
    (n, n_out), predicted labels into ``pred`` (argmax; for one output 0/1
    with the logistic loss, else the sign as -1/+1); returns 0.

    ``MODE_COUNT``: returns the number of rows whose predicted label equals
    the label (class label, or the sign of a +-1 target).

    ``acc``, ``sq``, ``act``, ``d0``, ``d1``, ``parts`` are work buffers with
    one row per possible chunk; ``out``/``pred`` are (0, n_out)/(0,)
    placeholders outside the forward mode (see
    :func:`thermo.networks.mlp.work_buffers`; ``act`` needs
    :func:`act_size` entries per row).  Raises ``ValueError`` when a buffer
    is too small for the network.
    """
    n = rows.size
    # The kernels index the buffers without bounds checks: refuse buffers
    # made for another network (or by an older version of work_buffers).
    n_layers = sizes.size - 1
    widest = 0
    for l in range(1, n_layers + 1):
        widest = max(widest, sizes[l])
    src = np.empty(n_layers + 1, np.int64)
    lst = np.empty(n_layers + 1, np.int64)
    if (act.shape[1] < _layout(sizes, src, lst) or d0.shape[1] < BLOCK_ROWS * widest
            or d1.shape[1] < BLOCK_ROWS * widest or acc.shape[1] < theta.size
            or sq.shape[1] < theta.size or d1.shape[0] < acc.shape[0]
            or act.shape[0] < acc.shape[0] or d0.shape[0] < acc.shape[0]
            or sq.shape[0] < acc.shape[0] or parts.size < acc.shape[0]):
        raise ValueError("work buffers too small for this network: make them with "
                         "thermo.networks.mlp.work_buffers")
    n_chunks = n_chunks_for(n, acc.shape[0])
    if n_chunks == 1:
        # No thread pool for small batches (its wake-up costs microseconds).
        # np.int64(0), not 0: a literal argument compiles a separate copy
        parts[0] = _chunk(mode, theta, X, rows, np.int64(0), n, y_int, y_float, sizes, w_off, b_off,
                          u_off, acts, loss_code, label_code, want_grad, want_sq, acc[0], sq[0],
                          act[0], d0[0], d1[0], out, pred)
    else:
        _parallel_chunks(mode, theta, X, rows, n_chunks, y_int, y_float, sizes, w_off, b_off,
                         u_off, acts, loss_code, label_code, want_grad, want_sq, acc, sq, act,
                         d0, d1, parts, out, pred)
    total = 0.0
    for c in range(n_chunks):
        total += parts[c]
    if mode == MODE_LOSS and want_grad:
        _reduce(n_chunks, scale, prior, theta, acc, sq, want_sq, var_factor, rows.size,
                grad_out, var_out)
    return total
