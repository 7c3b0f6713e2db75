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
Rows are processed in blocks of ``BLOCK_ROWS``: the forward and backward pass
of a block run back to back so the block's input rows are still in cache for
the weight gradient (the data are read from memory once).  Blocks are split
into at most one chunk per thread (``parallel=True``), each chunk
accumulating into its own gradient buffer; the buffers are summed in a fixed
order at the end, so results are bit-reproducible for a fixed number of
threads.  Zero inputs (MNIST pixels are ~80 % zeros, ReLU outputs) skip their
weight row, which the dense ``W`` layout (fan_in x fan_out) makes one
contiguous, vectorisable update per non-zero input.
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
BLOCK_ROWS = 16
#: Fewest rows worth a chunk of their own: below this, waking a second thread
#: costs more than it saves (measured on the MNIST perceptron).
MIN_CHUNK_ROWS = 48


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


@njit(cache=True)
def _forward_block(theta, X, rows, s, nb, sizes, w_off, b_off, u_off, acts, act, stride):
    """Forward pass of rows ``rows[s:s+nb]``: outputs of every layer, after
    activation, into ``act[r*stride + u_off[l] + k]``."""
    n_layers = sizes.size - 1
    for l in range(n_layers):
        fan_in = sizes[l]
        fan_out = sizes[l + 1]
        w0 = w_off[l]
        b0 = b_off[l]
        code = acts[l]
        for r in range(nb):
            ob = r * stride + u_off[l]
            for k in range(fan_out):
                act[ob + k] = theta[b0 + k]
            if l == 0:
                xi = rows[s + r]
                for j in range(fan_in):
                    v = X[xi, j]
                    if v != 0:
                        wr = w0 + j * fan_out
                        for k in range(fan_out):
                            act[ob + k] += v * theta[wr + k]
            else:
                ib = r * stride + u_off[l - 1]
                for j in range(fan_in):
                    v = act[ib + j]
                    if v != 0:
                        wr = w0 + j * fan_out
                        for k in range(fan_out):
                            act[ob + k] += v * theta[wr + k]
            if code != LINEAR:
                for k in range(fan_out):
                    act[ob + k] = _activate(code, act[ob + k])


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
            total += np.exp(np.float64(act[ob + k]) - m)
        lse = m + np.log(total)
        loss = lse - act[ob + label]
        for k in range(n_out):
            delta[db + k] = np.exp(np.float64(act[ob + k]) - lse)
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
    """One chunk ``rows[start:end]`` of a pass.

    ``MODE_LOSS``: returns the sum of the losses; when ``want_grad`` sets
    ``acc`` to the sum of per-example gradients (and ``sq`` to the sum of
    their squares when ``want_sq``).  ``MODE_FORWARD``: writes outputs and
    predictions of row ``i`` of the chunk to ``out[start+i]``,
    ``pred[start+i]``.  ``MODE_COUNT``: returns the number of correct
    predictions.
    """
    n_layers = sizes.size - 1
    n_out = sizes[n_layers]
    stride = u_off[n_layers - 1] + n_out
    width = d0.size // BLOCK_ROWS
    # flags are ints, not bools: Numba would compile one copy of the whole
    # kernel per combination of literal True/False arguments
    want_grad = want_grad != 0 and mode == MODE_LOSS
    if want_grad:
        for p in range(acc.size):
            acc[p] = 0
    if want_grad and want_sq:
        for p in range(sq.size):
            sq[p] = 0
    loss = 0.0
    for s in range(start, end, BLOCK_ROWS):
        nb = min(BLOCK_ROWS, end - s)
        _forward_block(theta, X, rows, s, nb, sizes, w_off, b_off, u_off, acts, act, stride)
        if mode == MODE_FORWARD:
            for r in range(nb):
                ob = r * stride + u_off[n_layers - 1]
                for k in range(n_out):
                    out[s + r, k] = act[ob + k]
                pred[s + r] = _predict_one(act, ob, n_out, loss_code)
            continue
        if mode == MODE_COUNT:
            for r in range(nb):
                p = _predict_one(act, r * stride + u_off[n_layers - 1], n_out, loss_code)
                i = rows[s + r]
                if label_code == LABEL_SIGN:
                    label = 1 if y_float[i, 0] > 0 else -1
                else:
                    label = y_int[i]
                if p == label:
                    loss += 1
            continue
        for r in range(nb):
            loss += _loss_delta(act, r * stride + u_off[n_layers - 1], n_out, acts[n_layers - 1],
                                loss_code, label_code, y_int, y_float, rows[s + r], d0, r * width)
        if not want_grad:
            continue
        dcur = d0
        dprev = d1
        for l in range(n_layers - 1, -1, -1):
            fan_in = sizes[l]
            fan_out = sizes[l + 1]
            w0 = w_off[l]
            b0 = b_off[l]
            for r in range(nb):
                db = r * width
                if l == 0:
                    xi = rows[s + r]
                    for j in range(fan_in):
                        v = X[xi, j]
                        if v != 0:
                            wr = w0 + j * fan_out
                            for k in range(fan_out):
                                acc[wr + k] += v * dcur[db + k]
                            if want_sq:
                                for k in range(fan_out):
                                    sq[wr + k] += (v * dcur[db + k]) ** 2
                else:
                    ib = r * stride + u_off[l - 1]
                    code = acts[l - 1]
                    for j in range(fan_in):
                        v = act[ib + j]
                        wr = w0 + j * fan_out
                        # error of input unit j, back through W; fused with
                        # the weight gradient so W's row j is read once
                        back = dcur[db] * theta[wr]
                        for k in range(1, fan_out):
                            back += dcur[db + k] * theta[wr + k]
                        dprev[db + j] = back * _derivative(code, v)
                        if v != 0:
                            for k in range(fan_out):
                                acc[wr + k] += v * dcur[db + k]
                            if want_sq:
                                for k in range(fan_out):
                                    sq[wr + k] += (v * dcur[db + k]) ** 2
                for k in range(fan_out):
                    acc[b0 + k] += dcur[db + k]
                if want_sq:
                    for k in range(fan_out):
                        sq[b0 + k] += dcur[db + k] ** 2
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
    for c in prange(n_chunks):
        # Chunk c always gets the same rows and buffer, whichever thread runs
        # it: the final sum is independent of scheduling.
        parts[c] = _chunk(mode, theta, X, rows, c * n // n_chunks, (c + 1) * n // n_chunks,
                          y_int, y_float, sizes, w_off, b_off, u_off, acts, loss_code,
                          label_code, want_grad, want_sq, acc[c], sq[c], act[c], d0[c], d1[c],
                          out, pred)


@njit(cache=True)
def _reduce(n_chunks, scale, prior, theta, acc, sq, want_sq, var_factor, n_rows, grad_out,
            var_out):
    # Serial: it touches n_chunks * n_params numbers, negligible next to the
    # passes over the data, and a second parallel region would cost seconds
    # of compile time.
    for p in range(grad_out.size):
        total = np.float64(acc[0, p])
        for c in range(1, n_chunks):
            total += acc[c, p]
        grad_out[p] = scale * total + prior * theta[p]
        if want_sq:
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
    :func:`thermo.networks.mlp.work_buffers`).
    """
    n = rows.size
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
