"""The collective-variable protocol: how Numba kernels see a CV s(θ).

A collective variable (CV) maps the parameters θ ∈ R^d to a few numbers
s(θ) = (s_1(θ), ..., s_m(θ)) ∈ R^m (m = 1 or 2 for metadynamics).  Like
potentials and biases (see :mod:`thermo.potentials.base`), a CV is a Python
object whose ``kernel_data`` is an instance of a ``typing.NamedTuple`` class
registered here with its jitted implementation.  A bias such as
:class:`thermo.bias.Metadynamics` nests the CV's kernel data in its own, so
one compiled sampler kernel serves each (bias, CV) class pair and no Python
runs per step.

Generic kernel-side functions
-----------------------------
``cv_value_gradient(data, theta, values_out, jacobian_out) -> None``
    Writes s(θ) into ``values_out`` (float64, shape (m,)) and the Jacobian
    J_{kl} = ∂s_k/∂θ_l into ``jacobian_out`` (float64, shape (m, d)).
    ``theta`` may be float32 or float64.
``cv_value(data, theta, values_out, jacobian_work) -> None``
    Writes s(θ) into ``values_out`` and keeps in work storage whatever
    :func:`cv_add_vjp` needs at this θ.
``cv_add_vjp(data, theta, cotangent, gradient, jacobian_work) -> None``
    *Adds* the vector–Jacobian product Σ_k c_k ∂s_k/∂θ (``cotangent`` c of
    shape (m,)) to ``gradient`` (shape (d,), float32 or float64).  Two-phase
    contract: call it right after ``cv_value`` at the same θ, with the same
    ``data`` and ``jacobian_work`` (float64, shape (m, d)) and no other
    evaluation of the CV in between.

A CV registered with a fast ``value`` and ``add_vjp`` (see :func:`register_cv`)
never forms J: a CV on a feature map y = A(θ − c) pulls the cotangent back to
feature space first (k numbers) and then through A once, one pass over the
k × d matrix instead of writing m × d Jacobian entries.  A CV registered with
``value_gradient`` only gets both from it: ``cv_value`` writes J into
``jacobian_work`` and ``cv_add_vjp`` adds cᵀJ from there (bit for bit the old
Jacobian path), so ``jacobian_work`` must have shape (m, d) for such CVs (it
may be empty for CVs with a fast path, see :func:`has_vjp`).

A user CV in a few lines (here s(θ) = |θ|²/2)::

    from typing import NamedTuple
    import numpy as np
    from thermo.cv import CV, register_cv

    class HalfNormData(NamedTuple):
        unused: int

    def half_norm(data, theta, values_out, jacobian_out):
        values_out[0] = 0.0
        for i in range(theta.size):
            values_out[0] += 0.5 * theta[i] * theta[i]
            jacobian_out[0, i] = theta[i]

    register_cv(HalfNormData, half_norm)
    cv = CV(HalfNormData(0), dimension=10, n_coords=1)

The implementation is a plain Python function in the Numba subset; thermo
compiles it inside the sampler kernels.  For a faster bias force, also pass
``value(data, theta, values_out)`` and ``add_vjp(data, theta, cotangent,
gradient)`` (here ``gradient[i] += cotangent[0] * theta[i]``).
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numba.extending import overload, register_jitable

from thermo import _numba_cache  # noqa: F401  (threading layer, tolerant cache index)

__all__ = ["register_cv", "cv_value_gradient", "cv_value", "cv_add_vjp", "has_vjp", "CV"]

_IMPLEMENTATIONS: dict = {}


def register_cv(data_class, value_gradient, value=None, add_vjp=None):
    """Tie a NamedTuple class to the jitted implementation of a CV.

    Parameters
    ----------
    data_class : type
        A ``typing.NamedTuple`` subclass holding arrays, scalars and nested
        registered NamedTuples only.
    value_gradient : callable
        ``f(data, theta, values_out, jacobian_out) -> None`` in the Numba
        subset; writes s(θ) into ``values_out`` (m,) and ∂s/∂θ into
        ``jacobian_out`` (m, d).  Its parameters must carry these names.
    value : callable, optional
        ``f(data, theta, values_out) -> None``: s(θ) only, caching in the CV's
        own work arrays (fields of ``data``) what ``add_vjp`` needs.  Give it
        together with ``add_vjp``.
    add_vjp : callable, optional
        ``f(data, theta, cotangent, gradient) -> None``: *adds*
        Σ_k cotangent_k ∂s_k/∂θ to ``gradient`` (d,), called right after
        ``value`` at the same θ (two-phase contract, see the module
        docstring).  Without ``value``/``add_vjp`` both are derived from
        ``value_gradient`` through the full Jacobian.

    Returns
    -------
    None

    Examples
    --------
    >>> from typing import NamedTuple
    >>> class SquaredNormData(NamedTuple):
    ...     scale: float
    >>> def squared_norm(data, theta, values_out, jacobian_out):
    ...     values_out[0] = data.scale * np.sum(theta ** 2)
    ...     jacobian_out[0, :] = 2.0 * data.scale * theta
    >>> register_cv(SquaredNormData, squared_norm)
    >>> cv = CV(SquaredNormData(0.5), dimension=2, n_coords=1)
    >>> cv(np.array([1.0, 2.0])).tolist(), cv.vjp(np.array([1.0, 2.0]), [3.0]).tolist()
    ([2.5], [3.0, 6.0])

    The same CV with a vector–Jacobian product that forms no Jacobian:

    >>> class FastSquaredNormData(NamedTuple):
    ...     scale: float
    >>> def fast_value(data, theta, values_out):
    ...     values_out[0] = data.scale * np.sum(theta ** 2)
    >>> def fast_vjp(data, theta, cotangent, gradient):
    ...     for i in range(theta.size):
    ...         gradient[i] += cotangent[0] * 2.0 * data.scale * theta[i]
    >>> register_cv(FastSquaredNormData, squared_norm, value=fast_value, add_vjp=fast_vjp)
    >>> fast = CV(FastSquaredNormData(0.5), dimension=2, n_coords=1)
    >>> has_vjp(fast), fast.vjp(np.array([1.0, 2.0]), [3.0]).tolist()
    (True, [3.0, 6.0])
    """
    if not (isinstance(data_class, type) and issubclass(data_class, tuple)
            and hasattr(data_class, "_fields")):
        raise TypeError(f"register_cv() needs a NamedTuple class, got {data_class!r}")
    if not callable(value_gradient):
        raise TypeError("value_gradient must be a function")
    if (value is None) != (add_vjp is None):
        raise TypeError("give value and add_vjp together (or neither)")
    if value is not None and not (callable(value) and callable(add_vjp)):
        raise TypeError("value and add_vjp must be functions")
    # register_jitable: callable from kernels whatever their parameter names
    _IMPLEMENTATIONS[data_class] = {
        "value_gradient": value_gradient,
        "value": None if value is None else register_jitable(value),
        "add_vjp": None if add_vjp is None else register_jitable(add_vjp)}


def _lookup(data_type, name="value_gradient"):
    entry = _IMPLEMENTATIONS.get(getattr(data_type, "instance_class", None))
    return None if entry is None else entry[name]


def has_vjp(cv):
    """Whether a CV has a vector–Jacobian product that forms no Jacobian.

    Parameters
    ----------
    cv : CV, NamedTuple instance or NamedTuple class
        A CV, its kernel data, or the registered data class.

    Returns
    -------
    bool
        True when registered with ``value`` and ``add_vjp``; False when the
        VJP goes through the full Jacobian (then ``cv_value`` needs a
        ``jacobian_work`` of shape (m, d)).

    Examples
    --------
    >>> from thermo.cv import Distance, Linear
    >>> has_vjp(Linear([[1.0, 0.0]])), has_vjp(Distance(np.zeros(2)))
    (True, False)
    """
    if isinstance(cv, CV):
        cv = cv.kernel_data
    data_class = cv if isinstance(cv, type) else type(cv)
    entry = _IMPLEMENTATIONS.get(data_class)
    if entry is None:
        raise TypeError(f"{data_class.__name__} is not a registered CV class")
    return entry["add_vjp"] is not None


def cv_value_gradient(data, theta, values_out, jacobian_out):
    """s(θ) into ``values_out`` and ∂s/∂θ into ``jacobian_out`` (kernel-side).

    Parameters
    ----------
    data : NamedTuple
        Kernel data of a registered CV.
    theta : ndarray, shape (d,)
    values_out : ndarray, shape (m,)
    jacobian_out : ndarray, shape (m, d)

    Returns
    -------
    None

    Examples
    --------
    Called from Numba code, e.g. inside a sampler kernel:

    >>> from numba import njit
    >>> from thermo.cv import Distance
    >>> @njit
    ... def first_value(data, theta):
    ...     values = np.empty(1)
    ...     jacobian = np.empty((1, theta.size))
    ...     cv_value_gradient(data, theta, values, jacobian)
    ...     return values[0]
    >>> round(first_value(Distance(np.zeros(2)).kernel_data, np.array([3.0, 4.0])), 12)
    5.0
    """
    raise NotImplementedError("call from Numba code, or use CV methods")


def cv_value(data, theta, values_out, jacobian_work):
    """s(θ) into ``values_out``, caching what :func:`cv_add_vjp` needs (kernel-side).

    Parameters
    ----------
    data : NamedTuple
        Kernel data of a registered CV.
    theta : ndarray, shape (d,)
    values_out : ndarray, shape (m,)
    jacobian_work : ndarray, shape (m, d)
        Work array; receives the Jacobian for CVs without a fast VJP
        (:func:`has_vjp` False), unused (may be empty) otherwise.

    Returns
    -------
    None

    Examples
    --------
    Called from Numba code, e.g. inside a sampler kernel:

    >>> from numba import njit
    >>> from thermo.cv import Linear
    >>> @njit
    ... def values(data, theta):
    ...     out = np.empty(1)
    ...     cv_value(data, theta, out, np.empty((1, 0)))
    ...     return out[0]
    >>> values(Linear([[2.0, 1.0]]).kernel_data, np.array([3.0, 4.0]))
    10.0
    """
    raise NotImplementedError("call from Numba code, or use CV methods")


def cv_add_vjp(data, theta, cotangent, gradient, jacobian_work):
    """Add Σ_k c_k ∂s_k/∂θ to ``gradient`` after :func:`cv_value` (kernel-side).

    Parameters
    ----------
    data : NamedTuple
        Kernel data of a registered CV, as passed to the preceding
        :func:`cv_value` at the same θ.
    theta : ndarray, shape (d,)
    cotangent : ndarray, shape (m,)
        c, e.g. ∂V/∂s of a bias V(s).
    gradient : ndarray, shape (d,)
        Receives gradient += cᵀ ∂s/∂θ (float32 or float64).
    jacobian_work : ndarray, shape (m, d)
        The work array of the preceding :func:`cv_value` call.

    Returns
    -------
    None

    Examples
    --------
    >>> from numba import njit
    >>> from thermo.cv import Distance
    >>> @njit
    ... def force(data, theta, c):
    ...     values = np.empty(1)
    ...     work = np.empty((1, theta.size))
    ...     gradient = np.zeros(theta.size)
    ...     cv_value(data, theta, values, work)
    ...     cv_add_vjp(data, theta, c, gradient, work)
    ...     return gradient
    >>> force(Distance(np.zeros(2)).kernel_data, np.array([3.0, 4.0]), np.array([10.0]))
    array([6., 8.])
    """
    raise NotImplementedError("call from Numba code, or use CV methods")


# Not cached themselves: compiled into (and cached with) each calling kernel,
# so CVs defined without a source file (REPL, doctest) work too.
@overload(cv_value_gradient)
def _overload_cv_value_gradient(data, theta, values_out, jacobian_out):
    return _lookup(data)


@overload(cv_value)
def _overload_cv_value(data, theta, values_out, jacobian_work):
    if _lookup(data) is None:
        return None
    value = _lookup(data, "value")
    if value is None:
        def through_jacobian(data, theta, values_out, jacobian_work):
            cv_value_gradient(data, theta, values_out, jacobian_work)
        return through_jacobian

    def fast(data, theta, values_out, jacobian_work):
        value(data, theta, values_out)
    return fast


@overload(cv_add_vjp)
def _overload_cv_add_vjp(data, theta, cotangent, gradient, jacobian_work):
    if _lookup(data) is None:
        return None
    add_vjp = _lookup(data, "add_vjp")
    if add_vjp is None:
        def from_jacobian(data, theta, cotangent, gradient, jacobian_work):
            # the Jacobian left by cv_value; same loop order as the former
            # metadynamics force (bit for bit)
            for k in range(cotangent.size):
                ck = cotangent[k]
                if ck != 0.0:
                    for l in range(gradient.size):
                        gradient[l] += ck * jacobian_work[k, l]
        return from_jacobian

    def fast(data, theta, cotangent, gradient, jacobian_work):
        add_vjp(data, theta, cotangent, gradient)
    return fast


@njit(cache=True)
def _call_cv_value_gradient(data, theta, values_out, jacobian_out):
    cv_value_gradient(data, theta, values_out, jacobian_out)


@njit(cache=True)
def _call_cv_values(data, thetas, values_out, jacobian_work):
    # Values of the CV at many points (Jacobian work only for CVs without VJP).
    m = values_out.shape[1]
    row = np.empty(m)
    for n in range(thetas.shape[0]):
        cv_value(data, thetas[n], row, jacobian_work)
        for k in range(m):
            values_out[n, k] = row[k]


@njit(cache=True)
def _call_cv_vjp(data, theta, cotangent, values_out, gradient, jacobian_work):
    cv_value(data, theta, values_out, jacobian_work)
    cv_add_vjp(data, theta, cotangent, gradient, jacobian_work)


class CV:
    """A collective variable s: R^d → R^m with exact Jacobian.

    Parameters
    ----------
    kernel_data : NamedTuple
        Instance of a class registered with :func:`register_cv`.
    dimension : int
        d, the length of θ.
    n_coords : int
        m, the number of CV components.
    names : sequence of str, optional
        Component names (default ``s1, s2, ...``), used in hills files.

    Examples
    --------
    >>> from thermo.cv import Distance
    >>> cv = Distance(np.zeros(2))
    >>> value, jacobian = cv.value_and_jacobian(np.array([3.0, 4.0]))
    >>> value.round(12).tolist(), jacobian.round(12).tolist()
    ([5.0], [[0.6, 0.8]])
    """

    def __init__(self, kernel_data, dimension, n_coords, names=None):
        if type(kernel_data) not in _IMPLEMENTATIONS:
            raise TypeError(
                f"{type(kernel_data).__name__} is not registered; call "
                "thermo.cv.register_cv(data_class, value_gradient) first")
        dimension = int(dimension)
        n_coords = int(n_coords)
        if dimension < 1:
            raise ValueError(f"dimension must be >= 1, got {dimension}")
        if n_coords < 1:
            raise ValueError(f"n_coords must be >= 1, got {n_coords}")
        if names is None:
            names = [f"s{k + 1}" for k in range(n_coords)]
        names = [str(name) for name in names]
        if len(names) != n_coords:
            raise ValueError(f"need {n_coords} names, got {len(names)}")
        self.kernel_data = kernel_data
        self.dimension = dimension
        self.n_coords = n_coords
        self.names = names

    def _check_points(self, theta):
        theta = np.asarray(theta)
        if theta.dtype.kind != "f":
            raise TypeError(f"theta must be a float array, got dtype {theta.dtype}")
        if theta.shape[-1] != self.dimension or theta.ndim not in (1, 2):
            raise ValueError(
                f"theta must have shape ({self.dimension},) or (n, {self.dimension}), "
                f"got {theta.shape}")
        if theta.dtype not in (np.float32, np.float64):
            theta = theta.astype(np.float64)
        return np.ascontiguousarray(theta)

    def value_and_jacobian(self, theta):
        """s(θ) (shape (m,)) and the Jacobian ∂s_k/∂θ_l (shape (m, d)) at one θ."""
        theta = self._check_points(theta)
        if theta.ndim != 1:
            raise ValueError("value_and_jacobian takes one point θ of shape (d,)")
        values = np.empty(self.n_coords)
        jacobian = np.empty((self.n_coords, self.dimension))
        _call_cv_value_gradient(self.kernel_data, theta, values, jacobian)
        return values, jacobian

    def __call__(self, theta):
        """s(θ): shape (m,) for one θ, (n, m) for an (n, d) array of points."""
        theta = self._check_points(theta)
        single = theta.ndim == 1
        points = theta[None, :] if single else theta
        values = np.empty((points.shape[0], self.n_coords))
        _call_cv_values(self.kernel_data, points, values, self._jacobian_work())
        return values[0] if single else values

    value = __call__

    def _jacobian_work(self):
        return np.empty((self.n_coords, 0 if has_vjp(self) else self.dimension))

    def vjp(self, theta, cotangent, gradient=None):
        """Vector–Jacobian product Σ_k c_k ∂s_k/∂θ at one θ.

        Uses the CV's fast kernel path when it has one (:func:`has_vjp`),
        the full Jacobian otherwise.

        Parameters
        ----------
        theta : ndarray, shape (d,)
        cotangent : array_like, shape (m,)
            c.
        gradient : ndarray, shape (d,), optional
            If given (float32 or float64, contiguous), cᵀ ∂s/∂θ is *added* to it
            in place and it is returned.

        Returns
        -------
        ndarray, shape (d,)
            cᵀ ∂s/∂θ (plus the incoming ``gradient``).

        Examples
        --------
        >>> from thermo.cv import Linear
        >>> cv = Linear([[1.0, 0.0], [0.0, 2.0]])
        >>> cv.vjp(np.array([5.0, 7.0]), [3.0, 1.0]).tolist()
        [3.0, 2.0]
        """
        theta = self._check_points(theta)
        if theta.ndim != 1:
            raise ValueError("vjp takes one point θ of shape (d,)")
        cotangent = np.ascontiguousarray(cotangent, dtype=np.float64)
        if cotangent.shape != (self.n_coords,):
            raise ValueError(f"cotangent must have shape ({self.n_coords},), "
                             f"got {cotangent.shape}")
        if gradient is None:
            gradient = np.zeros(self.dimension)
        elif not (isinstance(gradient, np.ndarray) and gradient.shape == (self.dimension,)
                  and gradient.dtype in (np.float32, np.float64)
                  and gradient.flags.c_contiguous and gradient.flags.writeable):
            raise ValueError(f"gradient must be a writeable contiguous float array of "
                             f"shape ({self.dimension},)")
        values = np.empty(self.n_coords)
        _call_cv_vjp(self.kernel_data, theta, cotangent, values, gradient,
                     self._jacobian_work())
        return gradient
