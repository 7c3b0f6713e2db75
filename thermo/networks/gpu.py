"""CUDA (``numba.cuda``) kernels of the fully connected network, with CPU twins.

Every device kernel ``gpu_*`` / ``_k_*`` here has a plain NumPy reference
computing the same quantity (STUMPY style): :func:`mlp_forward` /
:func:`gpu_mlp_forward`, :func:`mlp_loss_grad` / :func:`gpu_mlp_loss_grad`.
The tests (``tests/test_gpu_sim.py``) compare the two under Numba's CUDA
simulator; on a machine with an NVIDIA GPU the same code runs on the device.

Network and conventions are those of :class:`thermo.networks.MLP` and
:mod:`thermo.networks.kernels`: θ flat, layer by layer ``W`` (fan_in x
fan_out, row-major) then ``b``; hidden activations by the integer codes of
:data:`thermo.networks.kernels.ACTIVATIONS`; the GPU path supports a linear
output with the softmax cross-entropy loss (integer class labels), which
covers the MNIST perceptron and classifiers with any number of hidden layers.
Losses are **sums** over rows; gradients are ``scale Σ ∇ℓ_i + prior θ``.

Inputs may be float64, float32 or uint8 (``input_scale`` multiplies each
input as it is read, e.g. ``1/255``); on the device the full data set stays
resident and a minibatch is only an index array.

Kernel layout (one launch per layer and direction)
--------------------------------------------------
* forward ``_k_forward``: one thread per (row, output unit), the unit index
  fastest, so a warp reads consecutive entries of a row of ``W``;
* ``_k_softmax_ce``: one thread per row, loss and output delta ``p - onehot``;
* ``_k_backprop``: one thread per (row, input unit), ``δ_prev = (δ Wᵀ) f'(a)``;
* ``_k_param``: one thread per parameter, which sums its gradient over the
  batch and -- in the sampler modes of :mod:`thermo.samplers.gpu` -- applies
  the update (SGLD, or BAOAB's B+A+O+A) with its own xoroshiro128+ normal
  stream (``numba.cuda.random``), so gradient and update are one kernel and
  the gradient never makes a round trip.  A layer's ``δ_prev`` is computed
  before the layer's parameters are updated (it needs the old ``W``).
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda
from numba.cuda.random import xoroshiro128p_normal_float64

from thermo._cuda import require_cuda, simulator_enabled
from thermo.networks.kernels import ACTIVATIONS, LINEAR, RELU, TANH, SIGMOID

__all__ = [
    "NetworkSpec",
    "network_spec",
    "mlp_forward",
    "mlp_loss_grad",
    "gpu_mlp_forward",
    "gpu_mlp_loss_grad",
    "DeviceMLP",
    "MODE_GRADIENT",
    "MODE_SGLD",
    "MODE_BAOAB",
    "MODE_KICK",
]

# Modes of the per-parameter kernel.
MODE_GRADIENT, MODE_SGLD, MODE_BAOAB, MODE_KICK = 0, 1, 2, 3

# Threads per block: 1-D kernels and 2-D kernels (x = fast index).  The
# simulator runs every thread as a Python thread, so it gets small blocks.
if simulator_enabled():
    TPB1, TPB2 = 32, (8, 4)
else:
    TPB1, TPB2 = 256, (32, 8)


# --------------------------------------------------------------------------
# Network description.

class NetworkSpec(tuple):
    """``(sizes, w_off, b_off, acts)``: layer sizes, offsets of each layer's
    ``W`` and ``b`` in θ, hidden activation codes (see :func:`network_spec`)."""

    __slots__ = ()

    @property
    def sizes(self):
        return self[0]

    @property
    def w_off(self):
        return self[1]

    @property
    def b_off(self):
        return self[2]

    @property
    def acts(self):
        return self[3]

    @property
    def n_params(self):
        return int(self[2][-1] + self[0][-1])


def network_spec(sizes, activation="tanh"):
    """Describe a softmax-classifier MLP for the GPU kernels.

    Parameters
    ----------
    sizes : sequence of int or thermo.networks.MLP
        ``[n_in, h1, ..., n_out]``, or an MLP (whose output activation must be
        linear and loss cross entropy).
    activation : str or sequence of str
        Hidden activation(s) (ignored for an MLP, which carries its own).

    Returns
    -------
    NetworkSpec
    """
    if hasattr(sizes, "sizes") and hasattr(sizes, "activations"):
        net = sizes
        if getattr(net, "output_activation", "linear") != "linear":
            raise ValueError("the GPU kernels need a linear output activation, got "
                             f"{net.output_activation!r}")
        if getattr(net, "loss_name", "cross_entropy") != "cross_entropy":
            raise ValueError("the GPU kernels support the cross_entropy loss only, got "
                             f"{net.loss_name!r}")
        sizes, activation = list(net.sizes), list(net.activations)
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must be at least [n_in, n_out] of positive ints, got {sizes}")
    n_hidden = len(sizes) - 2
    if isinstance(activation, str):
        activation = [activation] * n_hidden
    activation = list(activation)
    if len(activation) != n_hidden:
        raise ValueError(f"need {n_hidden} hidden activations, got {len(activation)}")
    try:
        acts = np.array([ACTIVATIONS[a] for a in activation], np.int64)
    except KeyError as err:
        raise ValueError(f"unknown activation {err.args[0]!r}; known: "
                         f"{sorted(ACTIVATIONS)}") from None
    w_off, b_off = [], []
    offset = 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        w_off.append(offset)
        offset += fan_in * fan_out
        b_off.append(offset)
        offset += fan_out
    return NetworkSpec((np.array(sizes, np.int64), np.array(w_off, np.int64),
                        np.array(b_off, np.int64), acts))


# --------------------------------------------------------------------------
# Scalar activation functions, compiled for the device (and used by the
# NumPy references through np.vectorize-free array code below).

def _activate(code, z):
    if code == RELU:
        return z if z > 0 else 0.0
    if code == TANH:
        return math.tanh(z)
    if code == SIGMOID:
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)
    if code == LINEAR:
        return z
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))      # softplus


def _derivative(code, a):
    """Activation derivative from the activation's output ``a``."""
    if code == RELU:
        return 1.0 if a > 0 else 0.0
    if code == TANH:
        return 1.0 - a * a
    if code == SIGMOID:
        return a * (1.0 - a)
    if code == LINEAR:
        return 1.0
    return -math.expm1(-a)                                   # softplus


_d_activate = cuda.jit(device=True)(_activate)
_d_derivative = cuda.jit(device=True)(_derivative)


def _activate_array(code, Z):
    if code == RELU:
        return np.maximum(Z, 0.0)
    if code == TANH:
        return np.tanh(Z)
    if code == SIGMOID:
        out = np.empty_like(Z)
        pos = Z >= 0
        out[pos] = 1.0 / (1.0 + np.exp(-Z[pos]))
        e = np.exp(Z[~pos])
        out[~pos] = e / (1.0 + e)
        return out
    if code == LINEAR:
        return Z
    return np.maximum(Z, 0.0) + np.log1p(np.exp(-np.abs(Z)))


def _derivative_array(code, A):
    if code == RELU:
        return (A > 0).astype(A.dtype)
    if code == TANH:
        return 1.0 - A * A
    if code == SIGMOID:
        return A * (1.0 - A)
    if code == LINEAR:
        return np.ones_like(A)
    return -np.expm1(-A)


# --------------------------------------------------------------------------
# CPU references (NumPy, float64).

def _layer_params(theta, spec, layer):
    sizes, w_off, b_off, _ = spec
    n_in, n_out = int(sizes[layer]), int(sizes[layer + 1])
    W = theta[w_off[layer]:w_off[layer] + n_in * n_out].reshape(n_in, n_out)
    b = theta[b_off[layer]:b_off[layer] + n_out]
    return W, b


def mlp_forward(theta, X, rows, spec, input_scale=1.0):
    """CPU reference of :func:`gpu_mlp_forward`.

    Parameters
    ----------
    theta : numpy.ndarray
        Flat parameters.
    X : numpy.ndarray, shape (N, n_in)
        Inputs (float or uint8).
    rows : numpy.ndarray of int
        Rows of ``X`` to use.
    spec : NetworkSpec
    input_scale : float
        Multiplies the inputs.

    Returns
    -------
    list of numpy.ndarray
        Activations of every layer, ``[x, a_1, ..., z_L]`` (the last is the
        linear output), float64.
    """
    theta = np.asarray(theta, np.float64)
    A = [np.asarray(X)[np.asarray(rows)].astype(np.float64) * input_scale]
    depth = len(spec.sizes) - 1
    for layer in range(depth):
        W, b = _layer_params(theta, spec, layer)
        Z = A[-1] @ W + b
        A.append(Z if layer == depth - 1 else _activate_array(int(spec.acts[layer]), Z))
    return A


def mlp_loss_grad(theta, X, y, rows, spec, scale=1.0, prior=0.0, input_scale=1.0):
    """CPU reference of :func:`gpu_mlp_loss_grad`: softmax cross entropy.

    Returns
    -------
    loss : float
        ``Σ_rows ℓ_i``.
    grad : numpy.ndarray
        ``scale Σ_rows ∇ℓ_i + prior θ`` (float64).
    losses : numpy.ndarray
        Per-row losses.
    """
    theta = np.asarray(theta, np.float64)
    rows = np.asarray(rows)
    A = mlp_forward(theta, X, rows, spec, input_scale)
    Z = A[-1]
    m = Z.max(axis=1, keepdims=True)
    P = np.exp(Z - m)
    S = P.sum(axis=1, keepdims=True)
    labels = np.asarray(y)[rows]
    n = len(rows)
    losses = np.log(S[:, 0]) + m[:, 0] - Z[np.arange(n), labels]
    delta = P / S
    delta[np.arange(n), labels] -= 1.0
    grad = np.empty_like(theta)
    depth = len(spec.sizes) - 1
    for layer in range(depth - 1, -1, -1):
        W, _ = _layer_params(theta, spec, layer)
        n_in, n_out = W.shape
        w0, b0 = int(spec.w_off[layer]), int(spec.b_off[layer])
        grad[w0:w0 + n_in * n_out] = (A[layer].T @ delta).ravel()
        grad[b0:b0 + n_out] = delta.sum(axis=0)
        if layer > 0:
            delta = (delta @ W.T) * _derivative_array(int(spec.acts[layer - 1]), A[layer])
    return float(losses.sum()), scale * grad + prior * theta, losses


# --------------------------------------------------------------------------
# Device kernels.

@cuda.jit
def _k_forward(src, indirect, rows, src_scale, theta, w_off, b_off, n_in, n_out, act,
               apply_act, out):
    """out[i, j] = f(Σ_k src_i[k] W[k, j] + b[j]); src_i = src[rows[i]] when
    ``indirect`` else src[i]."""
    j, i = cuda.grid(2)
    if i < out.shape[0] and j < n_out:
        r = rows[i] if indirect else i
        acc = 0.0
        for k in range(n_in):
            acc += (src[r, k] * src_scale) * theta[w_off + k * n_out + j]
        acc += theta[b_off + j]
        out[i, j] = _d_activate(act, acc) if apply_act else acc


@cuda.jit
def _k_softmax_ce(Z, y, rows, losses, delta):
    """Per-row softmax cross-entropy loss and output delta ``p - onehot``."""
    i = cuda.grid(1)
    if i < Z.shape[0]:
        n_out = Z.shape[1]
        m = Z[i, 0]
        for j in range(1, n_out):
            if Z[i, j] > m:
                m = Z[i, j]
        total = 0.0
        for j in range(n_out):
            total += math.exp(Z[i, j] - m)
        label = y[rows[i]]
        losses[i] = math.log(total) + m - Z[i, label]
        inv = 1.0 / total
        for j in range(n_out):
            delta[i, j] = math.exp(Z[i, j] - m) * inv
        delta[i, label] -= 1.0


@cuda.jit
def _k_backprop(delta, theta, w_off, n_in, n_out, A_prev, act_prev, delta_prev):
    """δ_prev[i, k] = (Σ_j δ[i, j] W[k, j]) f'(a_prev[i, k])."""
    k, i = cuda.grid(2)
    if i < delta.shape[0] and k < n_in:
        acc = 0.0
        base = w_off + k * n_out
        for j in range(n_out):
            acc += delta[i, j] * theta[base + j]
        delta_prev[i, k] = acc * _d_derivative(act_prev, A_prev[i, k])


@cuda.jit
def _k_param(src, indirect, rows, src_scale, delta, w_off, b_off, n_in, n_out, scale, prior,
             mode, theta, grad, momentum, states, step, half, c1, c2):
    """One thread per parameter of a layer: gradient summed over the batch,
    written to ``grad``, then the update of ``mode``:

    * MODE_GRADIENT: none;
    * MODE_SGLD: ``θ ← θ - h g + σ ξ`` (``step`` = h, ``c2`` = σ);
    * MODE_BAOAB: ``p ← (p - half g) - half g`` (closing B of one step,
      opening B of the next: two separate half kicks, so a run split in two
      gives the same bits), ``θ ← θ + half p; p ← c1 p + c2 ξ; θ ← θ + half p``;
    * MODE_KICK: ``p ← p - half g``.

    ξ is drawn from the xoroshiro128+ stream of the parameter's global index.
    """
    j, k = cuda.grid(2)
    if j < n_out and k <= n_in:
        n_rows = delta.shape[0]
        acc = 0.0
        if k < n_in:
            q = w_off + k * n_out + j
            for i in range(n_rows):
                r = rows[i] if indirect else i
                acc += (src[r, k] * src_scale) * delta[i, j]
        else:
            q = b_off + j
            for i in range(n_rows):
                acc += delta[i, j]
        t = theta[q]
        g = scale * acc + prior * t
        grad[q] = g
        if mode == MODE_SGLD:
            if c2 > 0:
                theta[q] = t - step * g + c2 * xoroshiro128p_normal_float64(states, q)
            else:
                theta[q] = t - step * g
        elif mode == MODE_BAOAB:
            p = (momentum[q] - half * g) - half * g
            t = t + half * p
            if c2 > 0:
                p = c1 * p + c2 * xoroshiro128p_normal_float64(states, q)
            else:
                p = c1 * p
            momentum[q] = p
            theta[q] = t + half * p
        elif mode == MODE_KICK:
            momentum[q] = momentum[q] - half * g


@cuda.jit
def _k_open(theta, momentum, grad, states, half, c1, c2):
    """Opening B, A, O, A of a BAOAB step from a stored gradient (one thread
    per parameter, no data pass)."""
    q = cuda.grid(1)
    if q < theta.size:
        p = momentum[q] - half * grad[q]
        t = theta[q] + half * p
        if c2 > 0:
            p = c1 * p + c2 * xoroshiro128p_normal_float64(states, q)
        else:
            p = c1 * p
        momentum[q] = p
        theta[q] = t + half * p


@cuda.jit
def _k_sum(x, square, factor, out, index):
    """``out[index] += factor Σ x`` (or Σ x² when ``square``); one block."""
    buf = cuda.shared.array(TPB1, dtype=np.float64)
    t = cuda.threadIdx.x
    acc = 0.0
    for n in range(t, x.size, cuda.blockDim.x):
        v = x[n]
        acc += v * v if square else v
    buf[t] = acc
    cuda.syncthreads()
    width = cuda.blockDim.x // 2
    while width > 0:
        if t < width:
            buf[t] += buf[t + width]
        cuda.syncthreads()
        width //= 2
    if t == 0:
        out[index] += factor * buf[0]


def _blocks(n, tpb):
    return (n + tpb - 1) // tpb


# --------------------------------------------------------------------------
# Device-resident network.

class DeviceMLP:
    """A softmax-classifier MLP with its data resident on the GPU.

    Parameters
    ----------
    spec : NetworkSpec
    X : numpy.ndarray, shape (N, n_in)
        Inputs (float64, float32 or uint8), copied to the device once.
    y : numpy.ndarray of int, shape (N,)
        Class labels.
    batch_size : int
        Largest number of rows per call (sizes the work buffers).
    input_scale : float
        Multiplies each input when read (``1/255`` for uint8 pixels).
    dtype : numpy dtype
        Float type of the activations and deltas on the device.

    Raises
    ------
    RuntimeError
        Without a GPU (and outside the simulator).
    """

    def __init__(self, spec, X, y, batch_size, input_scale=1.0, dtype=np.float64):
        require_cuda()
        X = np.ascontiguousarray(X)
        if X.ndim != 2 or X.shape[1] != spec.sizes[0]:
            raise ValueError(f"X must have shape (N, {int(spec.sizes[0])}), got {X.shape}")
        if X.dtype not in (np.float64, np.float32, np.uint8):
            raise TypeError(f"X must be float64, float32 or uint8, got {X.dtype}")
        y = np.asarray(y)
        if y.shape != (X.shape[0],) or y.dtype.kind not in "iu":
            raise ValueError("y must hold one integer label per row of X")
        n_out = int(spec.sizes[-1])
        if y.size and (y.min() < 0 or y.max() >= n_out):
            raise ValueError(f"labels must lie in [0, {n_out})")
        self.spec = spec
        self.n_data = X.shape[0]
        self.batch_size = int(batch_size)
        self.input_scale = float(input_scale)
        self.dtype = np.dtype(dtype)
        self.X = cuda.to_device(X)
        self.y = cuda.to_device(y.astype(np.int32))
        B = self.batch_size
        self.acts = [cuda.device_array((B, int(n)), self.dtype) for n in spec.sizes[1:]]
        self.deltas = [cuda.device_array((B, int(n)), self.dtype) for n in spec.sizes[1:]]
        self.losses = cuda.device_array(B, np.float64)
        self.identity = cuda.to_device(np.arange(B, dtype=np.int32))

    # -- building blocks ---------------------------------------------------
    def _source(self, layer, rows):
        if layer == 0:
            return self.X, True, rows, self.input_scale
        return self.acts[layer - 1], False, self.identity, 1.0

    def forward(self, theta, rows):
        """Launch the forward pass of ``X[rows]`` (device arrays); the output
        logits end up in ``self.acts[-1][:len(rows)]``."""
        spec = self.spec
        n = rows.shape[0]
        depth = len(spec.sizes) - 1
        for layer in range(depth):
            n_in, n_out = int(spec.sizes[layer]), int(spec.sizes[layer + 1])
            src, indirect, idx, sc = self._source(layer, rows)
            last = layer == depth - 1
            act = LINEAR if last else int(spec.acts[layer])
            grid = (_blocks(n_out, TPB2[0]), _blocks(n, TPB2[1]))
            _k_forward[grid, TPB2](src, indirect, idx, sc, theta, int(spec.w_off[layer]),
                                   int(spec.b_off[layer]), n_in, n_out, act, not last,
                                   self.acts[layer][:n])

    def loss_delta(self, rows):
        """Launch the loss/delta kernel after :meth:`forward`."""
        n = rows.shape[0]
        _k_softmax_ce[_blocks(n, TPB1), TPB1](self.acts[-1][:n], self.y, rows,
                                               self.losses[:n], self.deltas[-1][:n])

    def backward(self, theta, grad, rows, scale, prior, mode=MODE_GRADIENT, momentum=None,
                 states=None, step=0.0, half=0.0, c1=1.0, c2=0.0):
        """Launch the backward pass (and, with a sampler ``mode``, the fused
        per-parameter update) after :meth:`loss_delta`."""
        spec = self.spec
        n = rows.shape[0]
        depth = len(spec.sizes) - 1
        if momentum is None:
            momentum = grad
        if states is None:
            states = _dummy_states()
        for layer in range(depth - 1, -1, -1):
            n_in, n_out = int(spec.sizes[layer]), int(spec.sizes[layer + 1])
            delta = self.deltas[layer][:n]
            if layer > 0:
                grid = (_blocks(n_in, TPB2[0]), _blocks(n, TPB2[1]))
                _k_backprop[grid, TPB2](delta, theta, int(spec.w_off[layer]), n_in, n_out,
                                        self.acts[layer - 1][:n], int(spec.acts[layer - 1]),
                                        self.deltas[layer - 1][:n])
            src, indirect, idx, sc = self._source(layer, rows)
            grid = (_blocks(n_out, TPB2[0]), _blocks(n_in + 1, TPB2[1]))
            _k_param[grid, TPB2](src, indirect, idx, sc, delta, int(spec.w_off[layer]),
                                 int(spec.b_off[layer]), n_in, n_out, float(scale),
                                 float(prior), mode, theta, grad, momentum, states,
                                 float(step), float(half), float(c1), float(c2))

    def add_sum(self, x, out, index, factor=1.0, square=False):
        """Launch ``out[index] += factor Σ x`` (Σ x² when ``square``)."""
        _k_sum[1, TPB1](x, square, float(factor), out, index)


_DUMMY = {}


def _dummy_states():
    if "states" not in _DUMMY:
        from numba.cuda.random import xoroshiro128p_dtype
        _DUMMY["states"] = cuda.to_device(np.zeros(1, xoroshiro128p_dtype))
    return _DUMMY["states"]


# --------------------------------------------------------------------------
# Host-level twins of the CPU references.

def _rows_array(rows, n_data):
    rows = np.arange(n_data) if rows is None else np.asarray(rows)
    if rows.ndim != 1 or rows.dtype.kind not in "iu" or rows.size == 0:
        raise ValueError("rows must be a non-empty 1-D integer array")
    if rows.min() < 0 or rows.max() >= n_data:
        raise ValueError("rows out of range")
    return rows.astype(np.int32)


def gpu_mlp_forward(theta, X, rows, spec, input_scale=1.0):
    """GPU twin of :func:`mlp_forward`: returns the same list of activations.

    Raises
    ------
    RuntimeError
        Without a GPU (and outside the simulator).
    """
    require_cuda()
    rows = _rows_array(rows, np.asarray(X).shape[0])
    theta = np.asarray(theta)
    dev = DeviceMLP(spec, X, np.zeros(len(X), np.int64), len(rows), input_scale, theta.dtype)
    d_rows = cuda.to_device(rows)
    d_theta = cuda.to_device(theta)
    dev.forward(d_theta, d_rows)
    inputs = np.asarray(X)[rows].astype(np.float64) * input_scale
    return [inputs] + [a.copy_to_host().astype(np.float64) for a in dev.acts]


def gpu_mlp_loss_grad(theta, X, y, rows, spec, scale=1.0, prior=0.0, input_scale=1.0):
    """GPU twin of :func:`mlp_loss_grad`: ``(loss, grad, losses)``.

    Raises
    ------
    RuntimeError
        Without a GPU (and outside the simulator).
    """
    require_cuda()
    rows = _rows_array(rows, np.asarray(X).shape[0])
    theta = np.asarray(theta)
    dev = DeviceMLP(spec, X, y, len(rows), input_scale, theta.dtype)
    d_rows = cuda.to_device(rows)
    d_theta = cuda.to_device(theta)
    d_grad = cuda.device_array_like(theta)
    dev.forward(d_theta, d_rows)
    dev.loss_delta(d_rows)
    dev.backward(d_theta, d_grad, d_rows, scale, prior)
    losses = dev.losses.copy_to_host()
    return float(losses.sum()), d_grad.copy_to_host(), losses
