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
Rows are handled in blocks of :data:`BLOCK` = 4.  A block's inputs are
converted once into a small float buffer (``uint8 -> float`` expansion happens
here), then each class ``j`` takes one pass over the block with ``W``
transposed (``Wt[j]`` contiguous): four dot products sharing each load of
``Wt[j, k]`` (forward), and one fused four-row AXPY into the transposed
gradient buffer ``G[j]`` (backward).  Both inner loops vectorise (AVX2: 4
doubles / 8 floats per instruction) with reassociation allowed only there.
Chunks of rows run in parallel (``prange``), each with its own gradient
buffer; buffers are summed in a fixed order, so results are reproducible for
a fixed thread count.  The accumulation type is θ's dtype (float32 θ gives the
float32 fast path, with float32 rounding in the per-chunk sums).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from thermo.data.minibatch import draw_without_replacement

from thermo import _numba_cache  # noqa: F401  (threading layer before cached kernels load)

__all__ = [
    "BLOCK",
    "perceptron_loss_grad",
    "reference_loss_grad",
    "make_work",
    "sgld_steps",
    "baoab_steps",
]

#: Rows per register block.
BLOCK = 4
#: Fewest rows worth a parallel chunk of their own.
MIN_CHUNK_ROWS = 32
# Reassociation (for vectorised reductions) and FMA contraction only; NaN and
# inf keep their IEEE meaning so divergence stays detectable.
_FAST = {"reassoc", "contract", "nsz", "arcp"}


@njit(cache=True, fastmath=_FAST)
def _dot4(xr, w, z, j):
    """``z[r, j] = xr[r] . w`` for the four rows of the block."""
    zero = w[0] - w[0]
    a0 = zero
    a1 = zero
    a2 = zero
    a3 = zero
    x0 = xr[0]
    x1 = xr[1]
    x2 = xr[2]
    x3 = xr[3]
    for k in range(w.size):
        wk = w[k]
        a0 += x0[k] * wk
        a1 += x1[k] * wk
        a2 += x2[k] * wk
        a3 += x3[k] * wk
    z[0, j] = a0
    z[1, j] = a1
    z[2, j] = a2
    z[3, j] = a3


@njit(cache=True, fastmath=_FAST)
def _axpy4(g, xr, r0, r1, r2, r3):
    """``g[:D] += r0 xr[0] + r1 xr[1] + r2 xr[2] + r3 xr[3]``."""
    x0 = xr[0]
    x1 = xr[1]
    x2 = xr[2]
    x3 = xr[3]
    for k in range(x0.size):
        g[k] += r0 * x0[k] + r1 * x1[k] + r2 * x2[k] + r3 * x3[k]


@njit(cache=True)
def _rows(X, input_scale, y, rows, start, stop, theta, Wt, G, xr, z):
    """Loss sum of ``rows[start:stop]``; adds the gradient (transposed, with
    the bias gradient in column D) into ``G`` (C x (D + 1))."""
    D = X.shape[1]
    C = Wt.shape[0]
    off = D * C
    loss = 0.0
    for s in range(start, stop, BLOCK):
        nb = min(BLOCK, stop - s)
        for r in range(BLOCK):
            if r < nb:
                i = rows[s + r]
                for k in range(D):
                    xr[r, k] = X[i, k] * input_scale
            else:
                for k in range(D):
                    xr[r, k] = 0.0
        for j in range(C):
            _dot4(xr, Wt[j], z, j)
        for r in range(nb):
            for j in range(C):
                z[r, j] += theta[off + j]
            m = z[r, 0]
            for j in range(1, C):
                if z[r, j] > m:
                    m = z[r, j]
            label = y[rows[s + r]]
            # logsumexp - z[label] from the logit itself: log(softmax[label])
            # would be -inf once exp(z[label] - m) underflows
            z_label = z[r, label]
            total = 0.0
            for j in range(C):
                e = np.exp(z[r, j] - m)
                z[r, j] = e
                total += e
            loss += (np.log(total) + m) - z_label
            inv = 1.0 / total
            for j in range(C):
                z[r, j] *= inv
            z[r, label] -= 1.0
        for r in range(nb, BLOCK):
            for j in range(C):
                z[r, j] = 0.0
        for j in range(C):
            r0 = z[0, j]
            r1 = z[1, j]
            r2 = z[2, j]
            r3 = z[3, j]
            _axpy4(G[j], xr, r0, r1, r2, r3)
            G[j, D] += r0 + r1 + r2 + r3
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
        Gs[c, :, :] = 0.0
        start = c * n // n_chunks
        stop = (c + 1) * n // n_chunks
        losses[c] = _rows(X, input_scale, y, rows, start, stop, theta, Wt, Gs[c], xrs[c],
                          zs[c])


@njit(cache=True)
def _reduce_gradient(Gs, n_chunks, scale, prior, theta, grad_out):
    C = Gs.shape[1]
    D = Gs.shape[2] - 1
    for k in range(D):
        for j in range(C):
            acc = Gs[0, j, k]
            for c in range(1, n_chunks):
                acc += Gs[c, j, k]
            p = k * C + j
            grad_out[p] = scale * acc + prior * theta[p]
    for j in range(C):
        acc = Gs[0, j, D]
        for c in range(1, n_chunks):
            acc += Gs[c, j, D]
        p = D * C + j
        grad_out[p] = scale * acc + prior * theta[p]


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
        gradients (n, C, D + 1), per-chunk row blocks (n, BLOCK, D), logits
        (n, BLOCK, C) and loss sums (n,).
    """
    dtype = np.dtype(dtype)
    if n_threads is None:
        n_threads = numba.get_num_threads()
    n_threads = max(1, int(n_threads))
    return (np.empty((n_out, n_in), dtype), np.zeros((n_threads, n_out, n_in + 1), dtype),
            np.zeros((n_threads, BLOCK, n_in), dtype), np.zeros((n_threads, BLOCK, n_out), dtype),
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
def _sgld_pass(Gs, n_chunks, scale, prior, h, sigma, theta, grad_out, rng):
    """One pass over θ: reduce chunk gradients, add the prior, SGLD update.
    Returns ``(|θ_old|², |∇U|², |noise|²)``."""
    C = Gs.shape[1]
    D = Gs.shape[2] - 1
    sq_theta = 0.0
    sq_grad = 0.0
    sq_noise = 0.0
    for p in range(theta.size):
        if p < D * C:
            k = p // C
            j = p - k * C
        else:
            k = D
            j = p - D * C
        acc = Gs[0, j, k]
        for c in range(1, n_chunks):
            acc += Gs[c, j, k]
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
    C = Gs.shape[1]
    D = Gs.shape[2] - 1
    sq_p = 0.0
    sq_theta = 0.0
    for q in range(theta.size):
        if q < D * C:
            k = q // C
            j = q - k * C
        else:
            k = D
            j = q - D * C
        acc = Gs[0, j, k]
        for c in range(1, n_chunks):
            acc += Gs[c, j, k]
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
    C = Gs.shape[1]
    D = Gs.shape[2] - 1
    for q in range(theta.size):
        if q < D * C:
            k = q // C
            j = q - k * C
        else:
            k = D
            j = q - D * C
        acc = Gs[0, j, k]
        for c in range(1, n_chunks):
            acc += Gs[c, j, k]
        g = scale * acc + prior * theta[q]
        grad_out[q] = g
        momentum[q] -= half * g


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
