"""SGLD and BAOAB on an NVIDIA GPU (``numba.cuda``), with CPU twins.

Entry points: ``thermo.sample(posterior, "sgld" | "baoab", ..., device="cuda")``
(the public one; it calls :func:`sample_cuda`, which checks the request
against what the GPU supports and raises ``ValueError``/``TypeError`` before
any work) and :func:`sample_gpu` (lower level: also takes a
:class:`GPUProblem`, e.g. uint8 MNIST pixels with ``input_scale=1/255``).
Both return a :class:`thermo.samplers._framework.Run` with the usual fields
and share :func:`_initial_state` and :func:`_run`.  Without a GPU they raise
a ``RuntimeError`` (``numba.cuda.is_available()`` is False; use
``device='cpu'``), except under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``), where the same kernels run slowly on the CPU --
that is how the tests check them.

Against the CPU samplers: the same schemes and the same target, but other
random numbers (minibatch order from a generator seeded differently, noise
from xoroshiro128+ streams), so a GPU run is not bit-identical to a CPU run
with the same seed; it is reproducible and chunk-invariant in itself.

What runs where
---------------
* The data ``X`` (float or uint8, see ``input_scale``), labels, θ, momentum,
  gradient and the per-parameter random streams live on the device for the
  whole run.
* The host only launches kernels.  It uploads, once per ``steps_per_sync``
  steps, the minibatch row indices of those steps (drawn on the host with a
  ``numpy.random.Generator``: a permutation per epoch, consecutive slices,
  the tail shorter than a batch dropped), and downloads the records at the
  end of each such block.  No synchronisation happens inside a block.
* Each step: forward launches (one per layer), a loss/delta launch, and per
  layer a backprop launch and one fused gradient + update launch
  (:data:`thermo.networks.gpu.MODE_SGLD` / ``MODE_BAOAB``), see
  :mod:`thermo.networks.gpu`.  Records (energy, kinetic energy) are single-
  block reductions launched only on record steps.
* Noise: one xoroshiro128+ stream per parameter (``numba.cuda.random``),
  seeded from ``seed``; the streams' state is part of the returned state, so
  ``sample_gpu(n)`` equals ``sample_gpu(n/2)`` then ``sample_gpu(n/2,
  state=...)`` bit for bit (float64; in float32 the momentum and gradient
  are rounded to float32 where a run is split, see below).
* Start (as on the CPU): BAOAB draws the momentum ~ N(0, I/β) from the
  minibatch generator and stores ∇U_B(θ0) on the first minibatch (computed
  on the host); SGLD needs neither.
* BAOAB at sync points: each block of ``steps_per_sync`` steps starts with
  the opening B A O A from the stored gradient and ends with the closing B,
  so the device holds a complete step whenever the host looks (a clean
  ``last_good_state``); inside a block the closing B of one step and the
  opening B of the next are applied in one kernel, as two separate half
  kicks (the same float64 arithmetic).

Schemes (U_B the minibatch estimate ``(N/B) Σ_batch ℓ_i + (λ/2)|θ|²``)
----------------------------------------------------------------------
* SGLD: ``θ ← θ - h ∇U_B(θ) + sqrt(2h/β) ξ``; ``energy`` is U_B at the point
  where the step's gradient was taken.
* BAOAB: B ``p -= h/2 ∇U_B``, A ``θ += h/2 p``, O ``p = c₁p + c₂ξ`` (``c₁ =
  e^{-γh}``, ``c₂ = sqrt((1-c₁²)/β)``), A, new gradient, B.  The closing B of
  a step and the opening B of the next share one gradient and are applied
  together.  ``energy`` is U_B at the step's end point, ``kinetic_energy``
  ``|p|²/2`` right after O, ``kinetic_temperature`` ``|p|²/d``.

CPU references: :func:`sgld_reference` and :func:`baoab_reference` run the
same schemes in NumPy with the same minibatches and the same xoroshiro128+
streams (evaluated on the CPU), so the device results can be compared number
for number.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)
from thermo._cuda import require_cuda

__all__ = ["GPUProblem", "GPUState", "sample_cuda", "sample_gpu", "require_device",
           "sgld_reference", "baoab_reference", "batch_rows", "xoroshiro_states",
           "xoroshiro_normals"]

_METHODS = ("sgld", "baoab")


class GPUProblem:
    """A softmax-classifier posterior in the form the GPU sampler needs.

    ``U(θ) = Σ_i ℓ_i(θ) + (λ/2)|θ|²`` over the N rows of ``X`` (estimated on
    minibatches of ``batch_size`` rows as ``(N/B) Σ_batch ℓ_i + (λ/2)|θ|²``).

    Parameters
    ----------
    net : thermo.networks.MLP or sequence of int
        The network (linear output, cross-entropy loss), or its sizes.
    X : numpy.ndarray, shape (N, n_in)
        Inputs: float64, float32 or uint8.
    y : numpy.ndarray of int, shape (N,)
        Class labels.
    prior_precision : float
        λ >= 0.
    batch_size : int, optional
        B (default N: full batch).
    input_scale : float
        Multiplies each input as it is read (``1/255`` for uint8 pixels).
    activation : str or sequence of str
        Hidden activations when ``net`` is a list of sizes.
    """

    def __init__(self, net, X, y, prior_precision=0.0, batch_size=None, input_scale=1.0,
                 activation="tanh"):
        from thermo.networks.gpu import network_spec
        self.spec = network_spec(net, activation)
        self.X = np.ascontiguousarray(X)
        self.y = np.asarray(y)
        if self.X.ndim != 2 or self.X.shape[1] != self.spec.sizes[0]:
            raise ValueError(f"X must have shape (N, {int(self.spec.sizes[0])}), got "
                             f"{self.X.shape}")
        if self.y.shape != (self.X.shape[0],) or self.y.dtype.kind not in "iu":
            raise ValueError("y must hold one integer class label per row of X")
        self.n_data = self.X.shape[0]
        prior_precision = float(prior_precision)
        if not np.isfinite(prior_precision) or prior_precision < 0:
            raise ValueError(f"prior_precision must be finite and >= 0, got {prior_precision}")
        self.prior_precision = prior_precision
        batch_size = self.n_data if batch_size is None else int(batch_size)
        if not 1 <= batch_size <= self.n_data:
            raise ValueError(f"batch_size must lie in [1, {self.n_data}], got {batch_size}")
        self.batch_size = batch_size
        self.input_scale = float(input_scale)
        self.dimension = self.spec.n_params

    @classmethod
    def from_posterior(cls, posterior):
        """Build from a :class:`thermo.potentials.Posterior` (class labels,
        cross-entropy loss)."""
        from thermo.networks.gpu import network_spec
        network_spec(posterior.net)      # linear output, cross entropy, known activations
        data = posterior.kernel_data
        if data.y_int.size != data.X.shape[0]:
            raise ValueError("the GPU sampler needs integer class labels (cross entropy)")
        if getattr(data, "replace", False):
            raise ValueError("the GPU sampler draws minibatches without replacement only "
                             "(Posterior(..., replace=False))")
        return cls(posterior.net, data.X, data.y_int, posterior.prior_precision,
                   posterior.batch_size)


class GPUState(NamedTuple):
    """State of a GPU run (host copies); pass as ``state=`` to continue."""

    method: str
    theta: np.ndarray
    momentum: np.ndarray        # zeros for SGLD
    gradient: np.ndarray        # last ∇U_B computed (BAOAB: at θ)
    step: int                   # total steps done
    noise_states: np.ndarray    # xoroshiro128p states, one per parameter
    batch_rng: dict             # bit_generator.state of the minibatch Generator
    order: np.ndarray           # permutation of the current epoch
    cursor: int                 # entries of ``order`` already used


def batch_rows(rng, order, cursor, batch_size, n_steps):
    """Row indices of the next ``n_steps`` minibatches.

    A batch is ``order[cursor:cursor + B]``; when fewer than B entries are
    left, ``order`` is reshuffled in place with ``rng.shuffle`` and the cursor
    restarts at 0 (full batch: always ``order`` itself, no draws).

    Returns
    -------
    rows : numpy.ndarray of int32, shape (n_steps, batch_size)
    cursor : int
    """
    n = order.size
    out = np.empty((n_steps, batch_size), np.int32)
    for s in range(n_steps):
        if batch_size < n and cursor + batch_size > n:
            rng.shuffle(order)
            cursor = 0
        if batch_size == n:
            cursor = 0
        out[s] = order[cursor:cursor + batch_size]
        cursor += batch_size
    return out, cursor


# --------------------------------------------------------------------------
# xoroshiro128+ streams on the host: the same states as
# numba.cuda.random.create_xoroshiro128p_states (SplitMix64 seed, stream i =
# stream 0 jumped i x 2**64 steps) and the same Box-Muller normals as
# xoroshiro128p_normal_float64, in nopython code (numba's own host versions
# are compiled in object mode under the simulator, ~20 s).

@njit(cache=True)
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True)
def _next(s, i):
    s0 = s[i, 0]
    s1 = s[i, 1]
    result = s0 + s1
    s1 ^= s0
    s[i, 0] = _rotl(s0, 55) ^ s1 ^ (s1 << np.uint64(14))
    s[i, 1] = _rotl(s1, 36)
    return result


@njit(cache=True)
def _init_states(s, seed):
    z = seed + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    s[0, 0] = z
    s[0, 1] = z
    jump0 = np.uint64(0xbeac0467eba5facb)
    jump1 = np.uint64(0xd86b048b86aa9922)
    for i in range(1, s.shape[0]):
        s[i, 0] = s[i - 1, 0]
        s[i, 1] = s[i - 1, 1]
        a0 = np.uint64(0)
        a1 = np.uint64(0)
        for word in range(2):
            jump = jump0 if word == 0 else jump1
            for b in range(64):
                if jump & (np.uint64(1) << np.uint64(b)):
                    a0 ^= s[i, 0]
                    a1 ^= s[i, 1]
                _next(s, i)
        s[i, 0] = a0
        s[i, 1] = a1


@njit(cache=True)
def _uniform32(s, i):
    x = _next(s, i)
    return np.float32((x >> np.uint64(11)) * (1.0 / 9007199254740992.0))


@njit(cache=True)
def _normals_kernel(s, out):
    two_pi = 2.0 * math.pi
    for i in range(s.shape[0]):
        u1 = _uniform32(s, i)
        u2 = _uniform32(s, i)
        out[i] = math.sqrt(-2.0 * math.log(np.float64(u1))) * math.cos(two_pi * u2)


def xoroshiro_states(n, seed):
    """Host array of ``n`` xoroshiro128+ states, identical to
    ``numba.cuda.random.create_xoroshiro128p_states(n, seed).copy_to_host()``.

    Parameters
    ----------
    n : int
    seed : int
        64-bit seed.

    Returns
    -------
    numpy.ndarray of ``numba.cuda.random.xoroshiro128p_dtype``
    """
    from numba.cuda.random import xoroshiro128p_dtype
    states = np.zeros(int(n), xoroshiro128p_dtype)
    if n > 0:
        _init_states(states.view(np.uint64).reshape(-1, 2), np.uint64(seed))
    return states


def xoroshiro_normals(states):
    """One standard normal from each stream, advancing ``states`` in place.

    The Box-Muller transform of ``numba.cuda.random.xoroshiro128p_normal_float64``
    (two float32 uniforms per draw).  The logarithm is taken in float64, as
    under the CUDA simulator; a GPU takes it in float32, so on hardware the
    draws agree to float32 rounding (relative ~1e-7).

    Returns
    -------
    numpy.ndarray of float64
    """
    out = np.empty(states.size)
    _normals_kernel(states.view(np.uint64).reshape(-1, 2), out)
    return out


def _as_problem(model):
    if isinstance(model, GPUProblem):
        return model
    if hasattr(model, "kernel_data") and hasattr(model, "net"):
        return GPUProblem.from_posterior(model)
    raise TypeError("sample_gpu needs a GPUProblem or a thermo.Posterior, got "
                    f"{type(model).__name__}")


def _check_parameters(method, n_steps, step_size, beta, friction, record_every):
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS} on the GPU, got {method!r}")
    if int(n_steps) != n_steps or n_steps < 0:
        raise ValueError(f"n_steps must be an int >= 0, got {n_steps!r}")
    if not (np.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be finite and > 0, got {step_size!r}")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    if not (np.isfinite(friction) and friction >= 0):
        raise ValueError(f"friction must be finite and >= 0, got {friction!r}")
    if int(record_every) != record_every or record_every < 1:
        raise ValueError(f"record_every must be an int >= 1, got {record_every!r}")


def _initial_state(problem, method, theta0, seed, dtype, beta=1.0):
    """Fresh state at θ0.

    Noise streams and minibatch generator from ``SeedSequence(seed).spawn(2)``;
    the first epoch's permutation; for BAOAB, as on the CPU, momentum ~
    N(0, I/β) and the stored gradient ∇U_B(θ0) on the first minibatch (both
    from the minibatch generator, gradient computed on the host).  SGLD
    computes its gradient in each step and keeps zeros.
    """
    if theta0 is None:
        raise ValueError("theta0 is required unless state is given")
    theta = np.asarray(theta0)
    if theta.dtype.kind != "f":
        raise TypeError(f"theta0 must be a float array, got dtype {theta.dtype}")
    if theta.shape != (problem.dimension,):
        raise ValueError(f"theta0 must have shape ({problem.dimension},), got {theta.shape}")
    if not np.all(np.isfinite(theta)):
        raise ValueError("theta0 contains NaN or inf")
    theta = theta.astype(dtype)
    ss = np.random.SeedSequence(seed)
    noise_seed, batch_seed = ss.spawn(2)
    states = xoroshiro_states(problem.dimension, noise_seed.generate_state(1, np.uint64)[0])
    rng = np.random.default_rng(batch_seed)
    order = np.arange(problem.n_data, dtype=np.int64)
    if problem.batch_size < problem.n_data:
        rng.shuffle(order)
    momentum = np.zeros_like(theta)
    gradient = np.zeros_like(theta)
    cursor = 0
    if method == "baoab":
        if np.isfinite(beta):
            momentum = (rng.standard_normal(theta.size) / math.sqrt(beta)).astype(dtype)
        rows, cursor = batch_rows(rng, order, cursor, problem.batch_size, 1)
        from thermo.networks.gpu import mlp_loss_grad
        _, g, _ = mlp_loss_grad(theta, problem.X, problem.y, rows[0], problem.spec,
                                problem.n_data / problem.batch_size,
                                problem.prior_precision, problem.input_scale)
        gradient = g.astype(dtype)
    return GPUState(method, theta, momentum, gradient, 0, states, rng.bit_generator.state,
                    order, cursor)


def sample_gpu(model, method, theta0=None, *, n_steps, step_size, beta=1.0, friction=1.0,
               seed=None, record_every=1, record_trajectory=False, state=None,
               steps_per_sync=1000, dtype=np.float64):
    """Sample ``exp(-β U)`` of a classifier posterior with SGLD or BAOAB on the GPU.

    Parameters
    ----------
    model : GPUProblem or thermo.Posterior
        Network, data, prior and batch size.
    method : {"sgld", "baoab"}
    theta0 : array_like, optional
        Start point; required unless ``state`` is given.
    n_steps : int
        Steps to run (>= 0).
    step_size : float
        h > 0.
    beta : float
        β > 0 (``inf``: no noise).
    friction : float
        γ >= 0 (BAOAB).
    seed : int or numpy.random.SeedSequence, optional
        Seeds the noise streams and the minibatch generator (not with
        ``state``); BAOAB's initial momentum ~ N(0, I/β) is drawn from the
        latter and its stored gradient is ∇U_B(θ0) on the first minibatch.
    record_every : int
        Record after each step whose total count is a multiple of it.
    record_trajectory : bool
        Also keep θ at each record.
    state : GPUState, optional
        Continue a previous run (bit for bit).
    steps_per_sync : int
        Steps launched between host synchronisations (records are copied back
        and divergence is checked once per block).
    dtype : numpy dtype
        θ's float type on the device (float64 or float32).

    Returns
    -------
    thermo.samplers._framework.Run
        ``observables``: ``step``, ``energy`` and, for BAOAB,
        ``kinetic_energy`` and ``kinetic_temperature``; ``state`` a
        :class:`GPUState`.

    Raises
    ------
    RuntimeError
        Without a GPU (outside the simulator).
    thermo.DivergenceError
        When θ or U becomes non-finite (checked once per sync block: the
        reported step is the first non-finite record; ``last_good_state`` is
        the state at the start of that block).
    """
    problem = _as_problem(model)
    method = str(method).lower()
    _check_parameters(method, n_steps, step_size, beta, friction, record_every)
    n_steps = int(n_steps)
    record_every = int(record_every)
    steps_per_sync = max(1, int(steps_per_sync))
    dtype = np.dtype(dtype)
    if dtype not in (np.float64, np.float32):
        raise TypeError(f"dtype must be float64 or float32, got {dtype}")
    if state is not None:
        _check_state(problem, method, state, seed, None)
    require_cuda()
    if state is None:
        state = _initial_state(problem, method, theta0, seed, dtype, float(beta))
    return _run(problem, method, state, n_steps, float(step_size), float(beta),
                float(friction), record_every, bool(record_trajectory), steps_per_sync)


def _check_state(problem, method, state, seed, dtype):
    if seed is not None:
        raise ValueError("seed and state cannot both be given (the state carries its "
                         "generators)")
    if not isinstance(state, GPUState):
        raise TypeError(f"state is a {type(state).__name__}; the GPU continues only the "
                        "GPUState of an earlier GPU run (run.state of sample(..., "
                        "device='cuda')); a CPU state cannot be moved to the GPU")
    if state.method != method:
        raise ValueError(f"state is the GPUState of a {state.method!r} run, not {method!r}")
    if state.theta.shape != (problem.dimension,):
        raise ValueError("state does not match the problem's dimension")
    if dtype is not None and state.theta.dtype != dtype:
        raise TypeError(f"state.theta has dtype {state.theta.dtype}, the potential needs "
                        f"{np.dtype(dtype)}")


#: The message of :func:`require_device`'s RuntimeError (then ``NO_GPU_MESSAGE``).
DEVICE_MESSAGE = ("device='cuda' needs an NVIDIA GPU with a working CUDA driver, or Numba's "
                  "CUDA simulator (NUMBA_ENABLE_CUDASIM=1 set before numba.cuda is first "
                  "imported; slow, for tests): ")


def require_device():
    """Raise a clear ``RuntimeError`` unless CUDA kernels can run here.

    Raises
    ------
    RuntimeError
        ``DEVICE_MESSAGE`` followed by :data:`thermo._cuda.NO_GPU_MESSAGE`,
        when ``numba.cuda.is_available()`` is False outside the simulator.
    """
    from thermo._cuda import NO_GPU_MESSAGE, cuda_available
    if not cuda_available():
        raise RuntimeError(DEVICE_MESSAGE + NO_GPU_MESSAGE)


#: Options of ``thermo.sample`` that ``device="cuda"`` accepts (besides the
#: keyword arguments of its signature).
CUDA_OPTIONS = ("chunk_steps",)


def sample_cuda(potential, method, theta0=None, *, n_steps, step_size, beta=1.0, friction=1.0,
                seed=None, record_every=1, record_trajectory=False, state=None, bias=None,
                progress=False, **options):
    """``thermo.sample(..., device="cuda")``: check the request, then run on the GPU.

    Same arguments as :func:`thermo.sample`.  Supported: a
    :class:`thermo.Posterior` of a softmax classifier (linear output, cross
    entropy, integer labels, minibatches without replacement, any hidden
    activations of :func:`thermo.networks.gpu.network_spec`), methods
    ``"sgld"`` and ``"baoab"``, no ``bias``, and of the options only
    ``chunk_steps`` (steps between host round trips, default 1000; never
    changes the result).  Everything else raises ``ValueError`` or
    ``TypeError`` before any work; without a GPU (outside the simulator) a
    ``RuntimeError`` (:func:`require_device`).

    Parameters
    ----------
    potential : thermo.Posterior
    method : {"sgld", "baoab"}
    theta0 : array_like, optional
    n_steps, step_size, beta, friction, seed, record_every, record_trajectory, state, bias,
    progress, **options
        As in :func:`thermo.sample`; ``seed`` an int, a
        ``numpy.random.SeedSequence`` or None (no Generator); ``state`` a
        :class:`GPUState`.

    Returns
    -------
    thermo.samplers._framework.Run
        ``observables`` ``step`` and ``energy`` (U_B, the minibatch estimate
        including the prior), for BAOAB also ``kinetic_energy`` and
        ``kinetic_temperature``; ``state`` a :class:`GPUState`.

    Examples
    --------
    >>> import numpy as np, thermo
    >>> net = thermo.MLP([4, 3])
    >>> rng = np.random.default_rng(0)
    >>> post = thermo.Posterior(net, rng.normal(size=(20, 4)), rng.integers(0, 3, 20))
    >>> run = thermo.sample(post, "baoab", theta0=net.init(seed=0), n_steps=10,
    ...                     step_size=1e-2, seed=0, device="cuda")  # doctest: +SKIP
    >>> sorted(run.observables)  # doctest: +SKIP
    ['energy', 'kinetic_energy', 'kinetic_temperature', 'step']
    """
    from thermo.potentials.posterior import Posterior
    from thermo.samplers._framework import _check_common, _check_integer, get_sampler

    if not isinstance(method, str):
        raise TypeError(f"method must be a string, got {type(method).__name__}")
    if method not in _METHODS:
        raise ValueError(f"device='cuda' supports the methods 'sgld' and 'baoab', got "
                         f"{method!r}; use device='cpu' for the others")
    if not isinstance(potential, Posterior):
        raise TypeError(f"device='cuda' supports thermo.Posterior potentials only (softmax "
                        f"classifiers: linear output, cross-entropy loss), got "
                        f"{type(potential).__name__}; use device='cpu'")
    if bias is not None:
        raise ValueError("device='cuda' does not support a bias (metadynamics); use "
                         "device='cpu'")
    n_steps, step_size, beta, friction, record_every = _check_common(
        n_steps, step_size, beta, friction, record_every)
    options = dict(options)
    for name in ("record_accuracy", "record_full_energy"):
        if options.pop(name, False):
            raise ValueError(f"{name} is not supported with device='cuda' (only step, "
                             "energy and, for BAOAB, kinetic energy and temperature are "
                             "recorded); use device='cpu'")
    chunk_steps = options.pop("chunk_steps", None)
    if options:
        raise TypeError(f"option(s) {', '.join(map(repr, sorted(options)))} not supported "
                        f"with device='cuda'; supported options: {', '.join(CUDA_OPTIONS)}")
    steps_per_sync = 1000 if chunk_steps is None else _check_integer("chunk_steps",
                                                                      chunk_steps, 1)
    # the CPU scheme's own checks (e.g. BAOAB needs friction > 0)
    parameters = get_sampler(method).validate(
        {"step_size": step_size, "beta": beta, "friction": friction}, {}, potential)
    problem = GPUProblem.from_posterior(potential)
    dtype = np.dtype(potential.dtype)
    if dtype not in (np.float64, np.float32):
        raise TypeError(f"the GPU sampler needs a float64 or float32 network, got {dtype}")
    if state is None:
        if theta0 is None:
            raise ValueError("theta0 is required (or pass state= to continue a run)")
        theta0 = np.array(potential.check_theta(theta0, "theta0"), copy=True)
        if not (seed is None or isinstance(seed, (int, np.integer, np.random.SeedSequence))
                ) or isinstance(seed, (bool, np.bool_)):
            raise TypeError(f"seed must be an int, a numpy.random.SeedSequence or None with "
                            f"device='cuda', got {type(seed).__name__}")
    else:
        if theta0 is not None:
            raise ValueError("give either theta0 or state, not both")
        if seed is not None:
            raise ValueError("seed cannot be combined with state (the state carries "
                             "its random generators)")
        _check_state(problem, method, state, None, dtype)
        potential.check_theta(state.theta, "state.theta")
    require_device()
    if state is None:
        state = _initial_state(problem, method, theta0, seed, dtype, beta)
    run = _run(problem, method, state, n_steps, step_size, beta, friction, record_every,
               bool(record_trajectory), steps_per_sync, progress=bool(progress))
    run.parameters = dict(parameters, **{k: v for k, v in run.parameters.items()
                                         if k not in ("step_size", "beta", "friction")})
    run.parameters["seed"] = (seed if isinstance(seed, (int, np.integer, type(None)))
                              else repr(seed))
    return run


def _run(problem, method, state, n_steps, h, beta, friction, record_every, record_trajectory,
         steps_per_sync, progress=False):
    from numba import cuda

    from thermo.networks import gpu as G
    from thermo.samplers._framework import DivergenceError, Run

    dtype = state.theta.dtype
    d = problem.dimension
    B = problem.batch_size
    N = problem.n_data
    scale = N / B
    prior = problem.prior_precision
    half = 0.5 * h
    c1 = float(np.exp(-friction * h))
    c2 = float(np.sqrt((1.0 - c1 * c1) / beta)) if np.isfinite(beta) else 0.0
    sigma = float(np.sqrt(2.0 * h / beta)) if np.isfinite(beta) else 0.0

    dev = G.DeviceMLP(problem.spec, problem.X, problem.y, B, problem.input_scale, dtype)
    theta = cuda.to_device(state.theta.astype(dtype))
    momentum = cuda.to_device(state.momentum.astype(dtype))
    grad = cuda.to_device(state.gradient.astype(dtype))
    states = cuda.to_device(state.noise_states)
    rng = np.random.default_rng()
    rng.bit_generator.state = state.batch_rng
    order = state.order.copy()
    cursor = state.cursor

    first = state.step + 1
    record_steps = np.arange(first + (-first) % record_every, state.step + n_steps + 1,
                             record_every, dtype=np.int64)
    n_records = record_steps.size
    energy = np.full(n_records, np.nan)
    kinetic = np.full(n_records, np.nan)
    trajectory = np.empty((n_records, d), dtype) if record_trajectory else None
    parameters = {"step_size": h, "beta": beta, "friction": friction,
                  "record_every": record_every, "batch_size": B, "device": "cuda",
                  "steps_per_sync": steps_per_sync}
    if method == "sgld":
        del parameters["friction"]

    def current_state(step):
        return GPUState(method, theta.copy_to_host(), momentum.copy_to_host(),
                        grad.copy_to_host(), step, states.copy_to_host(),
                        rng.bit_generator.state, order.copy(), cursor)

    def partial(n_good):
        obs = {"step": record_steps[:n_good], "energy": energy[:n_good].copy()}
        if method == "baoab":
            obs["kinetic_energy"] = kinetic[:n_good].copy()
            obs["kinetic_temperature"] = 2.0 * kinetic[:n_good] / d
        traj = None if trajectory is None else trajectory[:n_good].copy()
        return Run(method, dict(parameters), traj, obs, None)

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n_steps, unit="step", desc=f"{method} (cuda)")
    rec = 0
    done = 0
    try:
        while done < n_steps:
            block = min(steps_per_sync, n_steps - done)
            # BAOAB: each block opens with B A O A from the stored gradient and
            # ends with the closing B (MODE_KICK), so that the device holds a
            # complete step at every synchronisation (a clean last good state);
            # inside a block the closing B of a step and the opening of the next
            # are fused (the same arithmetic, see thermo.networks.gpu._k_param).
            good_state = current_state(state.step + done)
            if method == "baoab":
                _launch_open(dev, theta, momentum, grad, states, half, c1, c2, d)
            rows_host, cursor = batch_rows(rng, order, cursor, B, block)
            rows_dev = cuda.to_device(rows_host)
            d_energy = cuda.to_device(np.zeros(n_records))
            d_kinetic = cuda.to_device(np.zeros(n_records))
            rec_start = rec
            for s in range(block):
                step = state.step + done + s + 1
                rows = rows_dev[s]
                is_record = rec < n_records and record_steps[rec] == step
                if is_record and method == "baoab":
                    dev.add_sum(momentum, d_kinetic, rec, 0.5, square=True)
                dev.forward(theta, rows)
                dev.loss_delta(rows)
                if is_record:
                    dev.add_sum(dev.losses[:B], d_energy, rec, scale)
                    if prior > 0:
                        dev.add_sum(theta, d_energy, rec, 0.5 * prior, square=True)
                if method == "sgld":
                    dev.backward(theta, grad, rows, scale, prior, G.MODE_SGLD, momentum,
                                 states, step=h, c2=sigma)
                else:
                    if is_record and trajectory is not None:
                        # θ at the step's end point, before the fused update
                        # moves on into the next step
                        trajectory[rec] = theta.copy_to_host()
                    if s + 1 < block:
                        dev.backward(theta, grad, rows, scale, prior, G.MODE_BAOAB, momentum,
                                     states, half=half, c1=c1, c2=c2)
                    else:
                        dev.backward(theta, grad, rows, scale, prior, G.MODE_KICK, momentum,
                                     states, half=half)
                if is_record:
                    if trajectory is not None and method == "sgld":
                        trajectory[rec] = theta.copy_to_host()
                    rec += 1
            cuda.synchronize()
            energy[rec_start:rec] = d_energy.copy_to_host()[rec_start:rec]
            kinetic[rec_start:rec] = d_kinetic.copy_to_host()[rec_start:rec]
            theta_host = theta.copy_to_host()
            bad = ~np.isfinite(energy[rec_start:rec])
            if bad.any() or not np.all(np.isfinite(theta_host)):
                first_bad = rec_start + int(np.argmax(bad)) if bad.any() else rec
                bad_step = (int(record_steps[first_bad]) if first_bad < n_records
                            else state.step + done + block)
                raise DivergenceError(
                    f"non-finite θ or U on the GPU by step {bad_step} (checked once per "
                    f"{steps_per_sync} steps; step_size={h} may be too large); the last "
                    f"good state is step {good_state.step}", bad_step, good_state,
                    partial(rec_start))
            done += block
            if bar is not None:
                bar.update(block)
    finally:
        if bar is not None:
            bar.close()

    final = current_state(state.step + n_steps)
    observables = {"step": record_steps, "energy": energy}
    if method == "baoab":
        observables["kinetic_energy"] = kinetic
        observables["kinetic_temperature"] = 2.0 * kinetic / d
    return Run(method, parameters, trajectory, observables, final)


def _launch_open(dev, theta, momentum, grad, states, half, c1, c2, d):
    """B A O A of a BAOAB step using the stored gradient (no data pass)."""
    from thermo.networks import gpu as G
    G._k_open[G._blocks(d, G.TPB1), G.TPB1](theta, momentum, grad, states, half, c1, c2)


# --------------------------------------------------------------------------
# CPU references (NumPy + the same xoroshiro128+ streams on the CPU).

def _normals(states):
    return xoroshiro_normals(states)


def sgld_reference(problem, theta, rows, step_size, beta, noise_states):
    """CPU twin of the SGLD run of :func:`sample_gpu`.

    Parameters
    ----------
    problem : GPUProblem
    theta : numpy.ndarray
        Start point (float64 copy is made).
    rows : numpy.ndarray of int, shape (n_steps, B)
        The minibatch of each step (see :func:`batch_rows`).
    step_size, beta : float
    noise_states : numpy.ndarray
        Host copy of the xoroshiro128p states, one per parameter (advanced in
        place).

    Returns
    -------
    theta : numpy.ndarray
        Final θ.
    energy : numpy.ndarray
        U_B at each step's gradient point.
    """
    from thermo.networks.gpu import mlp_loss_grad
    theta = np.array(theta, np.float64)
    scale = problem.n_data / problem.batch_size
    sigma = np.sqrt(2.0 * step_size / beta) if np.isfinite(beta) else 0.0
    energy = []
    for batch in rows:
        loss, g, _ = mlp_loss_grad(theta, problem.X, problem.y, batch, problem.spec, scale,
                                   problem.prior_precision, problem.input_scale)
        energy.append(scale * loss + 0.5 * problem.prior_precision * theta @ theta)
        noise = _normals(noise_states) if sigma > 0 else 0.0
        theta = theta - step_size * g + sigma * noise
    return theta, np.array(energy)


def baoab_reference(problem, theta, momentum, gradient, rows, step_size, beta, friction,
                    noise_states):
    """CPU twin of the BAOAB run of :func:`sample_gpu`.

    Parameters
    ----------
    problem : GPUProblem
    theta, momentum, gradient : numpy.ndarray
        Start point, momentum and the stored gradient at θ.
    rows : numpy.ndarray of int, shape (n_steps, B)
    step_size, beta, friction : float
    noise_states : numpy.ndarray
        Host xoroshiro128p states (advanced in place).

    Returns
    -------
    theta, momentum, gradient : numpy.ndarray
    energy, kinetic : numpy.ndarray
        U_B at each step's end point; ``|p|²/2`` after each O step.
    """
    from thermo.networks.gpu import mlp_loss_grad
    theta = np.array(theta, np.float64)
    p = np.array(momentum, np.float64)
    g = np.array(gradient, np.float64)
    h = step_size
    scale = problem.n_data / problem.batch_size
    c1 = np.exp(-friction * h)
    c2 = np.sqrt((1.0 - c1 * c1) / beta) if np.isfinite(beta) else 0.0
    energy, kinetic = [], []
    for batch in rows:
        p = p - 0.5 * h * g
        theta = theta + 0.5 * h * p
        p = c1 * p + (c2 * _normals(noise_states) if c2 > 0 else 0.0)
        kinetic.append(0.5 * p @ p)
        theta = theta + 0.5 * h * p
        loss, g, _ = mlp_loss_grad(theta, problem.X, problem.y, batch, problem.spec, scale,
                                   problem.prior_precision, problem.input_scale)
        energy.append(scale * loss + 0.5 * problem.prior_precision * theta @ theta)
        p = p - 0.5 * h * g
    return theta, p, g, np.array(energy), np.array(kinetic)
