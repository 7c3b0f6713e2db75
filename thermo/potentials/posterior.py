"""The posterior of a network's parameters given data: U(θ) = total loss + prior.

Conventions
-----------
``U(θ) = Σ_{i=1}^{N} ℓ_i(θ) + (λ/2)|θ|²`` is the **total** loss over the N
training examples plus the negative log of a Gaussian prior of precision λ
(``prior_precision``); samplers target ``exp(-β U)``.  ``ℓ_i`` is the
per-example loss of :class:`thermo.networks.MLP` (whose ``loss`` method is the
*mean* ``(1/N) Σ ℓ_i``).

TATi samples ``exp(-β_TATi L)`` with ``L`` the *mean* loss and no prior, so
TATi's ``β_TATi`` corresponds to ``β = β_TATi / N`` here (``β U = β_TATi L``
when λ = 0).

Minibatches: with ``batch_size`` B < N, ``energy_gradient`` returns the
unbiased estimate ``(N/B) Σ_{i∈batch} ℓ_i + (λ/2)|θ|²`` and its gradient, the
batch drawn inside the kernel from the sampler's generator (see
:mod:`thermo.data.minibatch`): without replacement within an epoch, reshuffled
each epoch (default), or with replacement.  ``batch_size=None`` or ``N`` means
the exact full-batch U.
"""
from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numba import njit

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)
from thermo._sums import sum_of_squares
from thermo.data.minibatch import draw, new_order
from thermo.networks import kernels as _k
from thermo.networks import fast_perceptron as _fp  # after kernels (threading layer)
from thermo.networks import sparse_perceptron as _sp
from thermo.networks.mlp import MLP, prepare_data, work_buffers
from thermo.potentials.base import Potential, register

__all__ = ["Posterior", "PosteriorData"]


class PosteriorData(NamedTuple):
    """Kernel data of :class:`Posterior` (arrays are shared, not copied)."""
    X: np.ndarray           # (N, n_in) network dtype, C-contiguous
    y_int: np.ndarray       # (N,) int64 class labels, or (0,)
    y_float: np.ndarray     # (N, n_out) float targets, or (0, n_out)
    sizes: np.ndarray       # network description (see thermo.networks.kernels)
    w_off: np.ndarray
    b_off: np.ndarray
    u_off: np.ndarray
    acts: np.ndarray
    loss_code: int
    label_code: int
    prior_precision: float
    stochastic: bool        # batch_size < N
    replace: bool           # draw with replacement
    scale: float            # N / B
    var_factor: float       # N²/B × finite-population correction (see energy_gradient_variance)
    all_rows: np.ndarray    # arange(N)
    order: np.ndarray       # minibatch state: permutation of the current epoch
    cursor: np.ndarray      # (1,) entries of order already used
    batch: np.ndarray       # (B,) indices of the current minibatch
    acc: np.ndarray         # kernel work buffers (thermo.networks.mlp.WorkBuffers)
    sq: np.ndarray
    act: np.ndarray
    d0: np.ndarray
    d1: np.ndarray
    parts: np.ndarray
    out: np.ndarray
    pred: np.ndarray
    # Softmax-regression fast path (thermo.networks.fast_perceptron): an int
    # flag checked at run time (one compiled kernel serves both paths) and the
    # fast kernel's work buffers (1-element placeholders when fast == 0).
    fast: np.int64          # 1: single weight layer, linear output, cross entropy;
                            # 2: the same on sparse inputs (sparse_perceptron)
    input_scale: np.floating  # 1 in the network dtype (fast kernel's input factor)
    f_wt: np.ndarray        # (n_out, n_in) transposed weights
    f_gs: np.ndarray        # (chunks, n_out, n_in + 1) per-chunk gradients
    f_xr: np.ndarray        # (chunks, ROWS, n_in) row blocks
    f_z: np.ndarray         # (chunks, ROWS, n_out) logits
    f_loss: np.ndarray      # (chunks,) loss sums
    # Sparse inputs (fast == 2; 1-element placeholders otherwise): X as
    # compressed sparse rows and thermo.networks.sparse_perceptron's buffers.
    s_indptr: np.ndarray    # (N + 1,) int64
    s_indices: np.ndarray   # (nnz,) uint16 (n_in <= 65536) or int32
    s_values: np.ndarray    # (nnz,) network dtype, or uint8 codes into s_palette
    s_palette: np.ndarray   # (256,) the distinct values when coded, else (0,)
    s_wp: np.ndarray        # (n_in + 1, Cp) padded weights
    s_gs: np.ndarray        # (chunks, n_in + 1, Cp) per-chunk gradients
    s_z: np.ndarray         # (chunks, Cp) logits
    s_loss: np.ndarray      # (chunks,) loss sums


@njit(cache=True)
def _half_norm2(prior, theta):
    """The Gaussian prior's energy ``prior |θ|² / 2`` (in float64)."""
    if prior == 0.0:
        return 0.0
    return 0.5 * prior * sum_of_squares(theta, 1.0)


# Flags for the kernel as non-literal int64: a literal 0/1 argument would make
# Numba compile a separate copy of the whole kernel for each value.
_ON = np.int64(1)
_OFF = np.int64(0)


# The protocol functions call the kernel entry point directly (no shared
# jitted helper): each jitted level above the kernels costs seconds of
# cold-cache compile time (see thermo.networks.kernels.evaluate).
def _posterior_energy_gradient(data, theta, gradient, rng):
    rows = data.all_rows
    scale = 1.0
    if data.stochastic:
        draw(data.replace, data.order, data.cursor, data.batch, rng)
        rows = data.batch
        scale = data.scale
    if data.fast == 2:
        loss = _sp._loss_grad(data.s_indptr, data.s_indices, data.s_values, data.s_palette,
                              data.y_int, rows, theta, scale, data.prior_precision, gradient,
                              data.s_wp, data.s_gs, data.s_z, data.s_loss)
    elif data.fast == 1:
        loss = _fp._loss_grad(data.X, data.input_scale, data.y_int, rows, theta, scale,
                              data.prior_precision, gradient, data.f_wt, data.f_gs, data.f_xr,
                              data.f_z, data.f_loss)
    else:
        loss = _k.evaluate(_k.MODE_LOSS, theta, data.X, rows, data.y_int, data.y_float,
                           data.sizes, data.w_off, data.b_off, data.u_off, data.acts,
                           data.loss_code, data.label_code, scale, data.prior_precision, _ON,
                           gradient, _OFF, 0.0, gradient, data.acc, data.sq, data.act, data.d0,
                           data.d1, data.parts, data.out, data.pred)
    return scale * loss + _half_norm2(data.prior_precision, theta)


def _posterior_full_energy_gradient(data, theta, gradient):
    if data.fast == 2:
        loss = _sp._loss_grad(data.s_indptr, data.s_indices, data.s_values, data.s_palette,
                              data.y_int, data.all_rows, theta, 1.0, data.prior_precision,
                              gradient, data.s_wp, data.s_gs, data.s_z, data.s_loss)
        return loss + _half_norm2(data.prior_precision, theta)
    if data.fast == 1:
        loss = _fp._loss_grad(data.X, data.input_scale, data.y_int, data.all_rows, theta, 1.0,
                              data.prior_precision, gradient, data.f_wt, data.f_gs, data.f_xr,
                              data.f_z, data.f_loss)
        return loss + _half_norm2(data.prior_precision, theta)
    loss = _k.evaluate(_k.MODE_LOSS, theta, data.X, data.all_rows, data.y_int, data.y_float,
                       data.sizes, data.w_off, data.b_off, data.u_off, data.acts,
                       data.loss_code, data.label_code, 1.0, data.prior_precision, _ON,
                       gradient, _OFF, 0.0, gradient, data.acc, data.sq, data.act, data.d0,
                       data.d1, data.parts, data.out, data.pred)
    return loss + _half_norm2(data.prior_precision, theta)


def _posterior_energy_gradient_variance(data, theta, gradient, variance, rng):
    rows = data.all_rows
    scale = 1.0
    if data.stochastic:
        draw(data.replace, data.order, data.cursor, data.batch, rng)
        rows = data.batch
        scale = data.scale
    # A full batch has no variance: the kernel is still asked for it (one
    # code path), and var_factor is 0 there.
    loss = _k.evaluate(_k.MODE_LOSS, theta, data.X, rows, data.y_int, data.y_float, data.sizes,
                       data.w_off, data.b_off, data.u_off, data.acts, data.loss_code,
                       data.label_code, scale, data.prior_precision, _ON, gradient, _ON,
                       data.var_factor, variance, data.acc, data.sq, data.act, data.d0,
                       data.d1, data.parts, data.out, data.pred)
    return scale * loss + _half_norm2(data.prior_precision, theta)


def _posterior_accuracy(data, theta):
    if data.label_code == _k.LABEL_TARGET:
        return np.nan
    hits = _k.evaluate(_k.MODE_COUNT, theta, data.X, data.all_rows, data.y_int, data.y_float,
                       data.sizes, data.w_off, data.b_off, data.u_off, data.acts,
                       data.loss_code, data.label_code, 1.0, 0.0, _OFF, theta, _OFF, 0.0, theta,
                       data.acc, data.sq, data.act, data.d0, data.d1, data.parts,
                       data.out, data.pred)
    return hits / data.all_rows.size


def _fast_path(net, label_code):
    """Whether :mod:`thermo.networks.fast_perceptron` computes this
    posterior's energy and gradient: one weight layer (softmax regression),
    linear output, cross entropy on integer class labels.  Decided once, at
    construction; other networks and losses use the general kernel.  The
    variance (CCAdL), accuracy and :meth:`Posterior.loss` always use the
    general kernel."""
    return (len(net.sizes) == 2 and net._loss_code == _k.CROSS_ENTROPY
            and int(net._acts[-1]) == _k.LINEAR and label_code == _k.LABEL_CLASS
            and net.dtype in (np.float64, np.float32))


register(PosteriorData, _posterior_energy_gradient, _posterior_full_energy_gradient,
         _posterior_energy_gradient_variance, _posterior_accuracy)


class Posterior(Potential):
    """Posterior of the parameters of ``net`` given data ``(X, y)``.

    ``U(θ) = Σ_i ℓ_i(θ) + (λ/2)|θ|²``, the total loss over the N rows plus
    a Gaussian prior of precision λ; see the module docstring (TATi's
    ``β_TATi`` is ``β N`` here).

    Parameters
    ----------
    net : thermo.networks.MLP
        The network; its loss defines ``ℓ_i``.
    X : array (N, n_in)
        Inputs, converted to the network dtype (float32 networks get float32
        data).  Must be finite.
    y : array
        Labels or targets in the form the network's loss accepts (see
        :class:`~thermo.networks.MLP`).
    prior_precision : float, default 0
        λ >= 0.
    batch_size : int or None, default None
        Minibatch size B (1 <= B <= N); None or N for the exact full batch.
    replace : bool, default False
        Draw minibatch indices with replacement instead of epoch-wise
        without replacement.  Irrelevant for a full batch.
    sparse_inputs : bool or None, default None
        Whether the softmax-regression fast path stores the inputs as
        compressed sparse rows (:mod:`thermo.networks.sparse_perceptron`,
        work in proportion to the nonzeros: MNIST pixels are 19 % nonzero).
        None chooses sparse when at most :attr:`SPARSE_DENSITY` of the inputs
        are nonzero; True requires the fast path (``ValueError`` otherwise).
        The results agree with the dense kernel to rounding; a fixed choice
        gives bit-identical runs.

    Attributes
    ----------
    net, n_data (N), batch_size (B; N for a full batch), replace,
    prior_precision, stochastic (True when B < N), dimension, dtype,
    fast_path (True when the energy and gradient use the softmax-regression
    kernels of :mod:`thermo.networks.fast_perceptron` or
    :mod:`thermo.networks.sparse_perceptron`: one weight layer, linear
    output, cross entropy; agrees with the general kernel to rounding),
    input_format (``"sparse"`` or ``"dense"``: how those kernels read X;
    ``"dense"`` off the fast path), input_density (fraction of nonzero
    inputs).

    Notes
    -----
    The minibatch state (``order``, ``cursor``) lives in this object and
    changes with each stochastic call; save and restore it with
    :meth:`minibatch_state` / :meth:`set_minibatch_state` together with the
    generator state.  The object holds work buffers, so it must not be
    evaluated from several Python threads at once.

    Examples
    --------
    >>> import numpy as np
    >>> from thermo.networks import MLP
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    >>> y = np.array([0, 1, 1, 0])
    >>> net = MLP([2, 2], loss="cross_entropy")
    >>> posterior = Posterior(net, X, y, prior_precision=1.0)
    >>> energy, gradient = posterior.energy_and_gradient(np.zeros(net.n_params))
    >>> round(energy, 6), gradient.shape   # U = 4 ln 2 at θ = 0 (total, not mean, loss)
    (2.772589, (6,))
    """

    #: Largest input density for which ``sparse_inputs=None`` stores the
    #: inputs sparse.  A sparse row costs ~5 ns per nonzero (float64,
    #: 10 classes, measured) against ~3 ns per entry dense, and 12 bytes per
    #: nonzero against 8 per entry: below one half both time and memory win.
    SPARSE_DENSITY = 0.5

    def __init__(self, net, X, y, prior_precision=0.0, batch_size=None, replace=False,
                 sparse_inputs=None):
        if not isinstance(net, MLP):
            raise TypeError(f"net must be a thermo.networks.MLP, got {type(net).__name__}")
        X, y_int, y_float, label_code = prepare_data(net, X, y)
        n = X.shape[0]
        try:
            prior_precision = float(prior_precision)
        except (TypeError, ValueError):
            raise TypeError(f"prior_precision must be a number, got {prior_precision!r}") from None
        if not np.isfinite(prior_precision) or prior_precision < 0:
            raise ValueError(f"prior_precision must be finite and >= 0, got {prior_precision}")
        if batch_size is None:
            batch_size = n
        if isinstance(batch_size, (bool, np.bool_)) or not isinstance(
                batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be an integer or None, got {batch_size!r}")
        batch_size = int(batch_size)
        if not 1 <= batch_size <= n:
            raise ValueError(f"batch_size must be between 1 and the number of examples "
                             f"N={n}, got {batch_size}")
        if not isinstance(replace, (bool, np.bool_)):
            raise TypeError(f"replace must be True or False, got {replace!r}")
        stochastic = batch_size < n
        replace = bool(replace)
        # Variance of the estimator (N/B) Σ_batch g_i of Σ_i g_i, estimated
        # from the sample variance s² of the batch's per-example gradients
        # (s² is unbiased for the population variance S² with divisor N-1):
        # with replacement N²/B · s²; without replacement (simple random
        # sample) N²/B · (N-B)/N · s², which is N²/B · (N-B)/(N-1) · σ² with
        # σ² the population variance of divisor N.
        var_factor = n * n / batch_size
        if not replace:
            var_factor *= (n - batch_size) / n
        if not stochastic:
            var_factor = 0.0  # exact gradient (also makes N = 1 give 0, not NaN)
        order, cursor = new_order(n)
        w = work_buffers(net)
        fast = _fast_path(net, label_code)
        if sparse_inputs is not None and not isinstance(sparse_inputs, (bool, np.bool_)):
            raise TypeError(f"sparse_inputs must be None, True or False, got {sparse_inputs!r}")
        density = float(np.count_nonzero(X)) / max(1, X.size)
        if sparse_inputs and not fast:
            raise ValueError("sparse_inputs=True needs the softmax-regression fast path (one "
                             "weight layer, linear output, cross entropy on class labels)")
        sparse = fast and (density <= self.SPARSE_DENSITY if sparse_inputs is None
                           else bool(sparse_inputs))
        n_chunks = max(1, numba.config.NUMBA_NUM_THREADS)
        if sparse:
            rows_csr = _sp.to_sparse_rows(X, net.dtype)
            s_work = _sp.make_sparse_work(net.sizes[0], net.sizes[-1], net.dtype,
                                          n_threads=n_chunks)
        else:
            # placeholders of the types compressed rows have (uint16 columns,
            # uint8 codes): a dense posterior and an MNIST-like sparse one then
            # share one kernel-data type, and the samplers compile once for both
            rows_csr = _sp.SparseRows(np.zeros(1, np.int64), np.zeros(1, np.uint16),
                                      np.zeros(1, np.uint8), np.zeros(256, net.dtype), (0, 0))
            s_work = _sp.make_sparse_work(1, 1, net.dtype, n_threads=1)
        if fast and not sparse:
            # chunk count fixed at construction (not the current thread
            # count), as for the general kernel's buffers: same bits whatever
            # numba.set_num_threads says later
            f_work = _fp.make_work(net.sizes[0], net.sizes[-1], net.dtype, n_threads=n_chunks)
        else:
            f_work = _fp.make_work(1, 1, net.dtype, n_threads=1)
        data = PosteriorData(
            X=X, y_int=y_int, y_float=y_float, sizes=net._sizes, w_off=net._w_off,
            b_off=net._b_off, u_off=net._u_off, acts=net._acts, loss_code=net._loss_code,
            label_code=label_code, prior_precision=prior_precision, stochastic=stochastic,
            replace=replace, scale=n / batch_size, var_factor=var_factor,
            all_rows=np.arange(n, dtype=np.int64), order=order, cursor=cursor,
            batch=np.zeros(batch_size, np.int64), **w._asdict(),
            fast=np.int64(2 if sparse else 1 if fast else 0), input_scale=net.dtype.type(1.0),
            f_wt=f_work[0], f_gs=f_work[1], f_xr=f_work[2], f_z=f_work[3], f_loss=f_work[4],
            s_indptr=rows_csr.indptr, s_indices=rows_csr.indices, s_values=rows_csr.values,
            s_palette=rows_csr.palette,
            s_wp=s_work[0], s_gs=s_work[1], s_z=s_work[2], s_loss=s_work[3])
        self.dtype = net.dtype
        super().__init__(net.n_params, data)
        self.net = net
        self.n_data = n
        self.batch_size = batch_size
        self.replace = replace
        self.prior_precision = prior_precision
        self.stochastic = stochastic
        self.fast_path = bool(fast)
        self.input_format = "sparse" if sparse else "dense"
        self.input_density = density

    def __repr__(self):
        return (f"Posterior({self.net!r}, n_data={self.n_data}, batch_size={self.batch_size}, "
                f"replace={self.replace}, prior_precision={self.prior_precision})")

    def check_theta(self, theta, name="theta"):
        """θ as a contiguous array of the network dtype; raises ``TypeError``
        for another dtype and ``ValueError`` for a wrong length or NaN/inf."""
        return self.net.check_theta(theta, name)

    def energy_gradient_variance(self, theta, rng=None):
        """U, ∇U and the per-coordinate variance of the ∇U estimator.

        For a stochastic posterior, draws one minibatch (B examples) with
        ``rng`` and returns the minibatch estimate of U and ∇U and the
        estimated variance of that gradient estimator, from the per-example
        gradients ``g_i`` of the batch: ``Var = N²/B · s²`` with ``s²`` their
        sample variance (divisor B-1), times the finite-population correction
        ``(N-B)/N`` when sampling without replacement (equivalently
        ``(N-B)/(N-1)`` times the population variance of divisor N).  The
        prior term is exact and adds no variance.  NaN for B = 1 (no
        variance can be estimated from one example); zeros for a full batch.
        The one-pass formula loses precision when the gradient's mean is many
        orders of magnitude above its spread.
        """
        return super().energy_gradient_variance(theta, rng=rng)

    def loss(self, theta):
        """Mean loss over all N examples (TATi's convention), no prior."""
        theta = self.check_theta(theta)
        d = self.kernel_data
        total = _k.evaluate(_k.MODE_LOSS, theta, d.X, d.all_rows, d.y_int, d.y_float, d.sizes,
                            d.w_off, d.b_off, d.u_off, d.acts, d.loss_code, d.label_code, 1.0,
                            0.0, 0, theta, 0, 0.0, theta, d.acc, d.sq, d.act, d.d0,
                            d.d1, d.parts, d.out, d.pred)
        return total / self.n_data

    # -- minibatch state, for sampler states and checkpoints
    def minibatch_state(self):
        """Copy of the minibatch state: ``{"order": int64 (N,), "cursor":
        int64 (1,)}`` (meaningful without replacement; saved always)."""
        return {"order": self.kernel_data.order.copy(),
                "cursor": self.kernel_data.cursor.copy()}

    def reset_minibatch_state(self):
        """Return to the fresh state of a new Posterior (the next draw starts
        a new epoch), so that a fresh ``sample``/``optimize`` run with a given
        seed draws the same batches whatever ran on this object before."""
        order, cursor = new_order(self.n_data)
        self.kernel_data.order[:] = order
        self.kernel_data.cursor[:] = cursor

    def set_minibatch_state(self, state):
        """Restore a state from :meth:`minibatch_state` (copied in place)."""
        try:
            order = np.asarray(state["order"])
            cursor = np.asarray(state["cursor"]).reshape(-1)
        except (TypeError, KeyError) as err:
            raise ValueError(f"minibatch state needs 'order' and 'cursor' entries: {err}") from None
        n = self.n_data
        if order.shape != (n,) or order.dtype.kind not in "iu":
            raise ValueError(f"order must be an integer array of shape ({n},), "
                             f"got {order.dtype} {order.shape}")
        if not np.array_equal(np.sort(order), np.arange(n)):
            raise ValueError(f"order must be a permutation of 0..{n - 1}")
        if cursor.shape != (1,) or cursor.dtype.kind not in "iu" or not 0 <= cursor[0] <= n:
            raise ValueError(f"cursor must be one integer in [0, {n}], got {cursor!r}")
        self.kernel_data.order[:] = order
        self.kernel_data.cursor[:] = cursor
