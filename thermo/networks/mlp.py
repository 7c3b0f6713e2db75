"""Fully connected networks (multi-layer perceptrons) on a flat parameter vector.

Conventions
-----------
* θ is one flat 1-D array of the network's dtype (float64 or float32), layer by
  layer: ``W`` (fan_in x fan_out, row-major) then ``b`` (fan_out).
* :meth:`MLP.loss` and :meth:`MLP.loss_and_grad` return the **mean** loss over
  the rows of ``X`` (TATi's convention).  The posterior potential
  (:class:`thermo.potentials.Posterior`) uses the **total** loss U instead.
* Forward and backward passes are the hand-written Numba kernels of
  :mod:`thermo.networks.kernels`; this module validates input in Python and
  holds the work buffers (allocated once per network, so an ``MLP`` must not
  be used from several Python threads at once).
"""
from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from thermo.networks import kernels as _k

__all__ = ["MLP", "LayerLayout", "WorkBuffers", "work_buffers", "prepare_data",
           "HIDDEN_ACTIVATIONS", "OUTPUT_ACTIVATIONS", "LOSSES"]

HIDDEN_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softplus")
OUTPUT_ACTIVATIONS = ("linear", "tanh", "sigmoid")
LOSSES = ("cross_entropy", "mse", "logistic")


class LayerLayout(NamedTuple):
    """Where one layer's parameters sit in θ.

    Attributes
    ----------
    weight_offset : int
        Index in θ of the first weight ``W[0, 0]``.
    weight_shape : tuple of int
        ``(fan_in, fan_out)``; ``W`` is stored row-major.
    bias_offset : int
        Index in θ of the first bias entry (``weight_offset + fan_in * fan_out``).
    bias_size : int
        ``fan_out``.

    Examples
    --------
    >>> net = MLP([2, 3, 1], loss="mse")
    >>> net.layout[1]
    LayerLayout(weight_offset=9, weight_shape=(3, 1), bias_offset=12, bias_size=1)
    >>> theta = np.arange(net.n_params, dtype=np.float64)
    >>> layer = net.layout[1]
    >>> theta[layer.weight_offset:layer.bias_offset].reshape(layer.weight_shape).ravel()
    array([ 9., 10., 11.])
    """
    weight_offset: int
    weight_shape: tuple
    bias_offset: int
    bias_size: int


class WorkBuffers(NamedTuple):
    """Work arrays of the kernels, one row per possible chunk (thread)."""
    acc: np.ndarray     # (chunks, n_params) gradient sums
    sq: np.ndarray      # (chunks, n_params) sums of squared per-example gradients
    act: np.ndarray     # (chunks, act_size) a block's layer values and input lists
    d0: np.ndarray      # (chunks, BLOCK_ROWS * widest layer) back-propagated errors
    d1: np.ndarray
    parts: np.ndarray   # (chunks,) float64 per-chunk loss sums / counts
    out: np.ndarray     # (0, n_out) placeholder for the outputs of a forward pass
    pred: np.ndarray    # (0,) int64 placeholder for its predictions


def work_buffers(net):
    """Fresh kernel work buffers for ``net`` (one set per object that calls
    the kernels, so two objects never share them)."""
    chunks = max(1, numba.config.NUMBA_NUM_THREADS)
    width = int(max(net.sizes[1:]))
    dt = net.dtype
    return WorkBuffers(
        acc=np.zeros((chunks, net.n_params), dt),
        sq=np.zeros((chunks, net.n_params), dt),
        act=np.zeros((chunks, _k.act_size(net.sizes)), dt),
        d0=np.zeros((chunks, _k.BLOCK_ROWS * width), dt),
        d1=np.zeros((chunks, _k.BLOCK_ROWS * width), dt),
        parts=np.zeros(chunks, np.float64),
        out=np.zeros((0, net.sizes[-1]), dt),
        pred=np.zeros(0, np.int64),
    )


def _check_X(net, X, name="X"):
    if isinstance(X, np.ndarray) and X.dtype.kind in "fiub":
        pass
    else:
        X = np.asarray(X)
        if X.dtype.kind not in "fiub":
            raise TypeError(f"{name} must be a numeric array, got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty (no rows)")
    if X.shape[1] != net.sizes[0]:
        raise ValueError(f"{name} has {X.shape[1]} features but the network expects "
                         f"{net.sizes[0]} inputs (sizes[0])")
    X = np.ascontiguousarray(X, dtype=net.dtype)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or inf")
    return X


def prepare_data(net, X, y, name="y"):
    """Validate ``X`` and labels ``y`` for ``net``'s loss.

    Returns ``(X, y_int, y_float, label_code)``: ``X`` C-contiguous in the
    network dtype, ``y_int`` int64 (n,) class labels (or an empty array),
    ``y_float`` (n, n_out) float targets in the network dtype (or empty) and
    the label kind code of :mod:`thermo.networks.kernels`.
    """
    X = _check_X(net, X)
    n = X.shape[0]
    n_out = net.sizes[-1]
    y = np.asarray(y)
    if y.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be numeric, got dtype {y.dtype}")
    if y.shape[:1] != (n,):
        raise ValueError(f"{name} has shape {y.shape}: expected {n} rows like X")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"{name} contains NaN or inf")
    empty_int = np.zeros(0, np.int64)
    empty_float = np.zeros((0, n_out), net.dtype)

    def integral_labels(what):
        if y.ndim != 1:
            raise ValueError(f"{name} must be 1-D {what}, got shape {y.shape}")
        if y.dtype.kind == "f":
            raise TypeError(f"{name} must hold integer {what} for loss {net.loss_name!r}, "
                            f"got dtype {y.dtype}")
        return y.astype(np.int64)

    if net.loss_name == "cross_entropy":
        labels = integral_labels("class labels")
        if labels.min() < 0 or labels.max() >= n_out:
            raise ValueError(f"{name} holds class labels in [{labels.min()}, {labels.max()}] "
                             f"but the network has {n_out} outputs (labels 0..{n_out - 1})")
        return X, labels, empty_float, _k.LABEL_CLASS
    if net.loss_name == "logistic":
        labels = integral_labels("0/1 labels")
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(f"{name} must hold labels 0 or 1 for the logistic loss, "
                             f"found values in [{labels.min()}, {labels.max()}]")
        return X, labels, empty_float, _k.LABEL_CLASS
    # mse: float targets, class labels (one-hot) or +-1 labels for one output
    if y.ndim == 2:
        if y.shape[1] != n_out:
            raise ValueError(f"{name} has {y.shape[1]} target columns but the network has "
                             f"{n_out} outputs")
        if y.dtype.kind != "f":
            raise TypeError(f"2-D {name} must hold float targets, got dtype {y.dtype}")
        return X, empty_int, np.ascontiguousarray(y, dtype=net.dtype), _k.LABEL_TARGET
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D labels or 2-D (n, {n_out}) targets, "
                         f"got shape {y.shape}")
    if n_out == 1:
        targets = np.ascontiguousarray(y.reshape(n, 1), dtype=net.dtype)
        if np.isin(y, (-1, 1)).all():
            return X, empty_int, targets, _k.LABEL_SIGN
        if y.dtype.kind != "f":
            raise ValueError(f"{name}: integer labels for mse with one output must be -1 or "
                             f"+1, found values in [{y.min()}, {y.max()}]")
        return X, empty_int, targets, _k.LABEL_TARGET
    if y.dtype.kind == "f":
        raise TypeError(f"1-D {name} for mse with {n_out} outputs must hold integer class "
                        f"labels (one-hot targets), got dtype {y.dtype}; pass float "
                        f"targets as a 2-D (n, {n_out}) array")
    labels = y.astype(np.int64)
    if labels.min() < 0 or labels.max() >= n_out:
        raise ValueError(f"{name} holds class labels in [{labels.min()}, {labels.max()}] "
                         f"but the network has {n_out} outputs (labels 0..{n_out - 1})")
    return X, labels, empty_float, _k.LABEL_CLASS


class MLP:
    """A fully connected feed-forward network acting on a flat θ.

    Parameters
    ----------
    sizes : sequence of int
        ``[n_in, h1, ..., n_out]``; ``len(sizes) - 1`` weight layers (depth).
    activation : str or sequence of str, default "tanh"
        Hidden-layer activation, one name for all hidden layers or one per
        hidden layer: linear, relu, tanh, sigmoid, softplus.
    output_activation : {"linear", "tanh", "sigmoid"}, default "linear"
        Applied to the last layer; the loss acts on the result ``o``.
    loss : {"cross_entropy", "mse", "logistic"}, default "cross_entropy"
        Per-example loss of the output ``o``:

        * ``cross_entropy``: softmax cross entropy ``logsumexp(o) - o[y]``,
          integer class labels ``0 .. n_out-1``;
        * ``mse``: ``mean_k (o_k - t_k)^2`` (mean over outputs, like
          TensorFlow/TATi); ``y`` float targets ``(n, n_out)``, integer class
          labels (one-hot targets built inside the kernel, so TATi's default
          network — tanh output, mse, one-hot labels — is
          ``MLP(sizes, output_activation="tanh", loss="mse")`` with integer
          labels), or +-1 labels when ``n_out == 1``;
        * ``logistic``: ``n_out == 1``, labels 0/1, log loss of
          ``sigmoid(o)`` computed stably from the logit ``o`` (keep
          ``output_activation="linear"`` so that ``o`` is the logit).
    dtype : numpy float type, default float64
        float64 or float32; θ must have this dtype.

    Notes
    -----
    ``loss`` and ``loss_and_grad`` give the **mean** loss over rows.  Results
    are bit-reproducible for a fixed number of Numba threads (the per-thread
    gradient sums are added in a fixed order).

    Examples
    --------
    >>> net = MLP([2, 3, 2])  # 2 inputs, 3 tanh units, 2 classes
    >>> net.n_params, net.depth
    (17, 2)
    >>> theta = net.init(seed=0)
    >>> [(W.shape, b.shape) for W, b in net.unflatten(theta)]
    [((2, 3), (3,)), ((3, 2), (2,))]
    >>> X, y = np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([0, 1])
    >>> loss, gradient = net.loss_and_grad(theta, X, y)
    >>> round(loss, 4), gradient.shape, net.predict(theta, X)
    (0.3106, (17,), array([0, 1]))
    """

    def __init__(self, sizes, activation="tanh", output_activation="linear",
                 loss="cross_entropy", dtype=np.float64):
        try:
            sizes = [int(s) for s in sizes]
        except (TypeError, ValueError):
            raise TypeError(f"sizes must be a sequence of integers, got {sizes!r}") from None
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least [n_in, n_out], got {sizes}")
        if min(sizes) < 1:
            raise ValueError(f"every layer size must be >= 1, got {sizes}")
        n_hidden = len(sizes) - 2
        if isinstance(activation, str):
            hidden = [activation] * n_hidden
        else:
            hidden = list(activation)
            if len(hidden) != n_hidden:
                raise ValueError(f"activation lists {len(hidden)} names but the network has "
                                 f"{n_hidden} hidden layers")
        for name in hidden:
            if name not in HIDDEN_ACTIVATIONS:
                raise ValueError(f"unknown hidden activation {name!r}; choose from "
                                 f"{HIDDEN_ACTIVATIONS}")
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"unknown output activation {output_activation!r}; choose from "
                             f"{OUTPUT_ACTIVATIONS}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose from {LOSSES}")
        if loss == "logistic" and sizes[-1] != 1:
            raise ValueError(f"the logistic loss needs one output, the network has {sizes[-1]}")
        if loss == "cross_entropy" and sizes[-1] < 2:
            raise ValueError("cross_entropy needs at least 2 outputs (classes); use "
                             "loss='logistic' for one output")
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise TypeError(f"dtype must be float64 or float32, got {dtype}")
        if dtype == np.dtype(np.float32) and max(sizes) > 2 ** 24:
            # the kernel keeps a block's lists of active inputs in its float
            # work buffer; float32 holds integers exactly only up to 2^24
            raise ValueError(f"float32 networks support layers of at most 2^24 units, "
                             f"got {max(sizes)}")

        self.sizes = tuple(sizes)
        self.activations = tuple(hidden)
        self.output_activation = output_activation
        self.loss_name = loss
        self.dtype = dtype
        self.depth = len(sizes) - 1

        layout = []
        offset = 0
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layout.append(LayerLayout(offset, (fan_in, fan_out), offset + fan_in * fan_out,
                                      fan_out))
            offset += fan_in * fan_out + fan_out
        self.layout = tuple(layout)
        self.n_params = offset

        # Integer descriptions read by the kernels.
        self._sizes = np.array(sizes, np.int64)
        self._w_off = np.array([lay.weight_offset for lay in layout], np.int64)
        self._b_off = np.array([lay.bias_offset for lay in layout], np.int64)
        self._u_off = np.concatenate([[0], np.cumsum(sizes[1:-1])]).astype(np.int64)
        self._acts = np.array([_k.ACTIVATIONS[a] for a in hidden]
                              + [_k.ACTIVATIONS[output_activation]], np.int64)
        self._loss_code = _k.LOSSES[loss]
        # the network description as the kernels take it
        self._codes = (self._sizes, self._w_off, self._b_off, self._u_off, self._acts,
                       self._loss_code)
        self._work = work_buffers(self)
        self._rows = np.arange(0, dtype=np.int64)

    def __repr__(self):
        return (f"MLP(sizes={list(self.sizes)}, activation={list(self.activations)}, "
                f"output_activation={self.output_activation!r}, loss={self.loss_name!r}, "
                f"dtype={self.dtype.name})")

    # -- parameters
    def check_theta(self, theta, name="theta"):
        """θ as a contiguous 1-D array; raises on wrong length, dtype or NaN.

        θ must already have the network dtype (no silent conversion, which
        would hide float32/float64 mix-ups and copy θ every call).
        """
        if not isinstance(theta, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(theta).__name__}")
        if theta.dtype != self.dtype:
            raise TypeError(f"{name} has dtype {theta.dtype} but the network is "
                            f"{self.dtype.name}; convert with theta.astype(np.{self.dtype.name})")
        if theta.ndim != 1 or theta.shape[0] != self.n_params:
            raise ValueError(f"{name} must have shape ({self.n_params},) for {self!r}, "
                             f"got {theta.shape}")
        if not np.isfinite(theta).all():
            raise ValueError(f"{name} contains NaN or inf")
        return np.ascontiguousarray(theta)

    def unflatten(self, theta):
        """List of ``(W, b)`` per layer: views into ``theta`` (writes go through)."""
        if not isinstance(theta, np.ndarray) or theta.ndim != 1 or theta.size != self.n_params:
            raise ValueError(f"theta must be a 1-D array of length {self.n_params}")
        return [(theta[lay.weight_offset:lay.bias_offset].reshape(lay.weight_shape),
                 theta[lay.bias_offset:lay.bias_offset + lay.bias_size])
                for lay in self.layout]

    def init(self, seed=0, scheme="glorot"):
        """Initial θ.

        ``scheme="glorot"``: weights uniform in ``±sqrt(6/(fan_in+fan_out))``,
        biases 0.  ``scheme="tati"``: TATi's default, weights uniform in
        [-0.5, 0.5], biases 0.1.  ``seed`` seeds ``numpy.random.default_rng``.
        """
        if scheme not in ("glorot", "tati"):
            raise ValueError(f"unknown init scheme {scheme!r}; choose 'glorot' or 'tati'")
        rng = np.random.default_rng(seed)
        theta = np.empty(self.n_params, np.float64)
        for W, b in self.unflatten(theta):
            if scheme == "glorot":
                limit = np.sqrt(6.0 / (W.shape[0] + W.shape[1]))
                W[...] = rng.uniform(-limit, limit, W.shape)
                b[...] = 0.0
            else:
                W[...] = rng.uniform(-0.5, 0.5, W.shape)
                b[...] = 0.1
        return theta.astype(self.dtype)

    # -- evaluation
    def _all_rows(self, n):
        if self._rows.size < n:
            self._rows = np.arange(n, dtype=np.int64)
        return self._rows[:n]

    def _loss_grad(self, theta, X, y, want_grad):
        theta = self.check_theta(theta)
        X, y_int, y_float, label_code = prepare_data(self, X, y)
        n = X.shape[0]
        grad = np.empty_like(theta)
        w = self._work  # grad doubles as the unused variance output
        total = _k.evaluate(_k.MODE_LOSS, theta, X, self._all_rows(n), y_int, y_float,
                            *self._codes, label_code, 1.0 / n, 0.0, int(want_grad), grad, 0,
                            0.0, grad, *w)
        return total / n, grad

    def loss(self, theta, X, y):
        """Mean loss over the rows of ``X`` (float)."""
        return self._loss_grad(theta, X, y, False)[0]

    def loss_and_grad(self, theta, X, y):
        """Mean loss over the rows of ``X`` and its gradient (network dtype)."""
        return self._loss_grad(theta, X, y, True)

    def _forward(self, theta, X):
        theta = self.check_theta(theta)
        X = _check_X(self, X)
        n = X.shape[0]
        out = np.empty((n, self.sizes[-1]), self.dtype)
        pred = np.empty(n, np.int64)
        # out/pred stand in for the labels too: same types, so the same
        # compiled kernel serves every mode.
        _k.evaluate(_k.MODE_FORWARD, theta, X, self._all_rows(n), pred, out, *self._codes,
                    _k.LABEL_CLASS, 1.0, 0.0, 0, theta, 0, 0.0, theta,
                    *self._work[:-2], out, pred)
        return out, pred

    def forward(self, theta, X):
        """Outputs ``o`` after the output activation, shape (n, n_out).

        For cross entropy these are the logits fed to the softmax, for the
        logistic loss (linear output) the logit of class 1.
        """
        return self._forward(theta, X)[0]

    def predict(self, theta, X):
        """Predicted labels (int64): argmax of the outputs; for one output
        ``o > 0`` as 0/1 with the logistic loss, else the sign as -1/+1."""
        return self._forward(theta, X)[1]

    def accuracy(self, theta, X, y):
        """Fraction of rows whose prediction equals the label ``y``."""
        theta = self.check_theta(theta)
        X, y_int, y_float, label_code = prepare_data(self, X, y)
        if label_code == _k.LABEL_TARGET:
            raise ValueError("accuracy needs class labels; y holds regression targets")
        n = X.shape[0]
        hits = _k.evaluate(_k.MODE_COUNT, theta, X, self._all_rows(n), y_int, y_float,
                           *self._codes, label_code, 1.0, 0.0, 0, theta, 0, 0.0, theta,
                           *self._work)
        return hits / n
