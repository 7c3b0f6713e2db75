"""Metadynamics (plain and well-tempered) along one or two collective variables.

Theory
------
A bias V(s, t) on a CV s(θ) ∈ R^m (m = 1, 2) grows by Gaussian hills,
deposited at the current s every ``pace`` steps:

.. math::
    V(s, t) = \\sum_{i: t_i ≤ t} h_i \\exp\\Big(-\\sum_k
              \\frac{(s_k - s_{i,k})^2}{2 σ_k^2}\\Big).

*Plain* metadynamics uses a constant height h_i = w; *well-tempered*
metadynamics (bias factor γ > 1) scales it by the bias already present,
h_i = w exp(−β V(s_i, t_i)/(γ − 1)).  At long times the bias converges to

.. math::
    V(s) = -\\frac{γ - 1}{γ} F(s) + \\text{const}
    \\quad\\Longrightarrow\\quad
    F(s) = -\\frac{γ}{γ - 1} V(s) \\;\\;(\\text{well-tempered}), \\qquad
    F(s) = -V(s) \\;\\;(\\text{plain, } γ → ∞),

with F(s) = −β^{-1} log ∫ δ(s(θ) − s) e^{−βU(θ)} dθ the free energy (potential
of mean force).  Samplers then target exp(−β(U + V(s(θ)) + W(s(θ)))), W the
optional harmonic walls W = Σ_k κ_k/2 (s_k − b_k)² beyond bounds b_k that keep
the CV in range.  The force on θ is −∇_θ(V + W) = −Σ_k ∂(V + W)/∂s_k ∇_θ s_k
(chain rule with the CV's exact gradient, as a vector–Jacobian product: see
:func:`thermo.cv.base.cv_add_vjp`).

Reweighting (Tiwary & Parrinello, J. Phys. Chem. B 119, 736 (2015)): a
configuration sampled at time t carries the weight exp(β(V(s, t) + W(s) − c(t)))
towards the unbiased ensemble, with

.. math::
    c(t) = \\frac{1}{β} \\log
       \\frac{\\int ds\\, \\exp\\big(\\frac{γ}{γ-1} β V(s, t)\\big)}
            {\\int ds\\, \\exp\\big(\\frac{1}{γ-1} β V(s, t)\\big)}
    \\qquad (\\text{plain: } c(t) = β^{-1}\\log \\langle e^{βV}\\rangle_{\\text{grid}}),

computed on the grid nodes after each hill.  ``bias_weight_log`` returns
β(V + W − c) of the current configuration (with the bias that generated it,
i.e. before a hill is added at that step).

Numerics
--------
* Grid: V and its derivatives ∂V/∂s_k (and ∂²V/∂s_1∂s_2 in 2-D) are stored
  exactly (analytic Gaussian derivatives) on a regular grid and interpolated
  with cubic Hermite (1-D) or bicubic Hermite (2-D) polynomials, whose
  derivative is the exact derivative of the interpolant (consistent force).
  The interpolation error is O(Δs⁴/σ⁴) relative to a hill's height.  Hills are
  added to the nodes within 6σ (truncation ≤ e^{−18}).  Outside the grid, V is
  continued by its value at the nearest grid point (zero force along that
  direction); put walls inside the grid.  ``interpolate=False`` evaluates the
  exact hill sum instead (O(number of hills) per step, for checks).
* c(t) is kept as two running log-sum-exp sums over the grid nodes; a hill
  changes only the nodes of its window, so each deposit replaces their
  contributions (O(window), not O(grid): on a 241² grid with σ = 4 spacings
  the deposit costs ≈ 0.1 ms instead of ≈ 1 ms), and every
  ``CT_RESUM_EVERY`` = 1024 hills the sums are recomputed from scratch.
* Everything happens inside the sampler's Numba kernel: hills live in
  preallocated arrays with a count, the grid is updated in place; Python never
  runs per step.  Capacities are ``max_hills`` and ``max_records``; use
  :meth:`Metadynamics.reserve` before long runs.
* Heights are stored as in PLUMED's HILLS files: H_i = h_i γ/(γ − 1) for
  well-tempered (h_i for plain), and the grid accumulates Σ H_i g_i, so that
  F(s) = −Σ H_i g_i(s) directly and a restart from the file rebuilds the grid
  bit for bit.

Temperature
-----------
Metadynamics needs β for the well-tempered scaling and for c(t): pass the
sampler's temperature kT = 1/β as ``temperature``.  :meth:`Metadynamics.check_beta`
raises ValueError when a sampler's β differs; ``thermo.sample`` calls it.
"""
from __future__ import annotations

import math
import os
import warnings
from typing import NamedTuple

import numpy as np
from numba import njit

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)
from thermo.bias.base import Bias, bias_update, register_bias
from thermo.cv.base import CV, cv_add_vjp, cv_value, has_vjp

__all__ = ["Metadynamics", "reweighted_free_energy"]

CUTOFF_SIGMAS = 6.0          # hills are added to grid nodes within 6σ
# indices into MetadynamicsData.counts
N_HILLS = 0        # hills stored
N_DEPOSITED = 1    # hills deposited in total (stored + dropped); the bias "version"
N_RECORDS = 2      # colvar rows stored
N_DROPPED_RECORDS = 3
CACHE_VERSION = 4  # N_DEPOSITED when the cache was filled, -1 when empty
N_INHERITED = 5    # hills in the grid from a restored snapshot (never stored here)
# indices into MetadynamicsData.state
C_T = 0            # c(t)
WEIGHT_LOG = 1     # β (V + W − c) of the current configuration
CACHE_V = 2        # V_metad at the cached θ
CACHE_W = 3        # W at the cached θ
CT_REF_A = 4       # running sums for c(t): Σ exp(a − ref_a) and Σ exp(b − ref_b) over the
CT_SUM_A = 5       # grid nodes, a = β Σ H g, b = a/γ (see _compute_ct)
CT_REF_B = 6
CT_SUM_B = 7
N_STATE = 8
CT_RESUM_EVERY = 1024   # recompute the c(t) sums from scratch after this many hills
# columns of the colvar record: step, s_1..s_m, V, W, c, weight_log


class MetadynamicsCore(NamedTuple):
    """The CV-independent part of :class:`Metadynamics`' kernel data (mutable
    arrays updated in place).  Kept separate so that the grid and hill
    routines compile once for every CV class.

    Scalars: ``beta``, ``height`` w, ``tempering`` 1/(γ − 1) (0 for plain),
    ``file_scale`` (γ − 1)/γ (1 for plain; V = file_scale · Σ H_i g_i),
    ``pace``, ``record_every``, ``interpolate``.
    Grid: ``grid_lower``, ``grid_spacing`` (m,), ``grid_shape`` (2,) int,
    ``grid`` (4, n_1, n_2): Σ H g, ∂_1, ∂_2, ∂_1∂_2 (n_2 = 1 in 1-D).
    Walls: ``wall_lower``, ``wall_upper``, ``wall_kappa`` (m,) (±inf: none).
    Hills: ``sigma`` (m,), ``hill_centres`` (cap, m), ``hill_sigmas`` (cap, m),
    ``hill_heights`` (cap,) (file heights H), ``hill_steps`` (cap,) int,
    ``hill_ct`` (cap,) c(t) after each hill.  ``records`` (rows, m + 5) colvar.
    ``counts`` int64 (6,) and ``state`` float64 (8,) (see module constants),
    ``cache_theta`` (d,), ``cache_s`` (m,), work arrays ``work_s`` (m,),
    ``work_ds`` (m,), ``work_jacobian`` (m, d), or (m, 0) for a CV with a fast
    vector–Jacobian product (see :func:`thermo.cv.base.has_vjp`).
    """
    beta: float
    height: float
    tempering: float
    file_scale: float
    pace: int
    record_every: int
    interpolate: bool
    grid_lower: np.ndarray
    grid_spacing: np.ndarray
    grid_shape: np.ndarray
    grid: np.ndarray
    wall_lower: np.ndarray
    wall_upper: np.ndarray
    wall_kappa: np.ndarray
    sigma: np.ndarray
    hill_centres: np.ndarray
    hill_sigmas: np.ndarray
    hill_heights: np.ndarray
    hill_steps: np.ndarray
    hill_ct: np.ndarray
    records: np.ndarray
    counts: np.ndarray
    state: np.ndarray
    cache_theta: np.ndarray
    cache_s: np.ndarray
    work_s: np.ndarray
    work_ds: np.ndarray
    work_jacobian: np.ndarray


class MetadynamicsData(NamedTuple):
    """Kernel data of :class:`Metadynamics`: the CV's data and the core state."""
    cv: tuple
    core: MetadynamicsCore


# ---------------------------------------------------------------------------
# grid: cubic Hermite interpolation

@njit(cache=True)
def _hermite(t):
    """Cubic Hermite basis h00, h10, h01, h11 at t and their derivatives."""
    t2 = t * t
    t3 = t2 * t
    return (2.0 * t3 - 3.0 * t2 + 1.0, t3 - 2.0 * t2 + t, -2.0 * t3 + 3.0 * t2, t3 - t2,
            6.0 * t2 - 6.0 * t, 3.0 * t2 - 4.0 * t + 1.0, -6.0 * t2 + 6.0 * t, 3.0 * t2 - 2.0 * t)


@njit(cache=True)
def _locate(s, lower, spacing, n):
    """Cell index i, local coordinate t ∈ [0, 1] and inside flag of s on a grid of n nodes."""
    x = (s - lower) / spacing
    if x <= 0.0:
        return 0, 0.0, False
    if x >= n - 1:
        return n - 2, 1.0, False
    i = int(math.floor(x))
    if i > n - 2:
        i = n - 2
    return i, x - i, True


@njit(cache=True)
def _grid_sum_1d(data, s, ds_out):
    """Σ H g at s (1-D) by cubic Hermite interpolation; writes d/ds into ds_out[0]."""
    g = data.grid
    n = data.grid_shape[0]
    dx = data.grid_spacing[0]
    i, t, inside = _locate(s[0], data.grid_lower[0], dx, n)
    h00, h10, h01, h11, d00, d10, d01, d11 = _hermite(t)
    value = h00 * g[0, i, 0] + h10 * dx * g[1, i, 0] + h01 * g[0, i + 1, 0] \
        + h11 * dx * g[1, i + 1, 0]
    if inside:
        ds_out[0] = (d00 * g[0, i, 0] + d01 * g[0, i + 1, 0]) / dx \
            + d10 * g[1, i, 0] + d11 * g[1, i + 1, 0]
    else:
        ds_out[0] = 0.0
    return value


@njit(cache=True)
def _grid_sum_2d(data, s, ds_out):
    """Σ H g at s (2-D) by bicubic Hermite interpolation; gradient into ds_out."""
    g = data.grid
    nx = data.grid_shape[0]
    ny = data.grid_shape[1]
    dx = data.grid_spacing[0]
    dy = data.grid_spacing[1]
    i, t, inside_x = _locate(s[0], data.grid_lower[0], dx, nx)
    j, u, inside_y = _locate(s[1], data.grid_lower[1], dy, ny)
    a00, a10, a01, a11, da00, da10, da01, da11 = _hermite(t)
    b00, b10, b01, b11, db00, db10, db01, db11 = _hermite(u)
    # value basis along x for the left (0) and right (1) node: (value, slope) pairs
    value = 0.0
    gx = 0.0
    gy = 0.0
    for a in range(2):
        if a == 0:
            hv, hs, dhv, dhs = a00, a10, da00, da10
        else:
            hv, hs, dhv, dhs = a01, a11, da01, da11
        for b in range(2):
            if b == 0:
                kv, ks, dkv, dks = b00, b10, db00, db10
            else:
                kv, ks, dkv, dks = b01, b11, db01, db11
            f = g[0, i + a, j + b]
            fx = g[1, i + a, j + b] * dx
            fy = g[2, i + a, j + b] * dy
            fxy = g[3, i + a, j + b] * dx * dy
            value += hv * kv * f + hs * kv * fx + hv * ks * fy + hs * ks * fxy
            gx += dhv * kv * f + dhs * kv * fx + dhv * ks * fy + dhs * ks * fxy
            gy += hv * dkv * f + hs * dkv * fx + hv * dks * fy + hs * dks * fxy
    ds_out[0] = gx / dx if inside_x else 0.0
    ds_out[1] = gy / dy if inside_y else 0.0
    return value


@njit(cache=True)
def _exact_sum(data, s, ds_out):
    """Σ_i H_i g_i(s) over the stored hills, exactly; gradient into ds_out."""
    m = s.size
    for k in range(m):
        ds_out[k] = 0.0
    total = 0.0
    for i in range(data.counts[N_HILLS]):
        exponent = 0.0
        for k in range(m):
            z = (s[k] - data.hill_centres[i, k]) / data.hill_sigmas[i, k]
            exponent += 0.5 * z * z
        value = data.hill_heights[i] * math.exp(-exponent)
        total += value
        for k in range(m):
            sig = data.hill_sigmas[i, k]
            ds_out[k] -= value * (s[k] - data.hill_centres[i, k]) / (sig * sig)
    return total


@njit(cache=True)
def _metad_bias(data, s, ds_out):
    """V(s) of the hills (without walls); writes ∂V/∂s into ds_out."""
    if data.interpolate:
        if s.size == 1:
            total = _grid_sum_1d(data, s, ds_out)
        else:
            total = _grid_sum_2d(data, s, ds_out)
    else:
        total = _exact_sum(data, s, ds_out)
    for k in range(s.size):
        ds_out[k] *= data.file_scale
    return data.file_scale * total


@njit(cache=True)
def _wall_bias(data, s, ds_out):
    """Harmonic walls W(s); *adds* ∂W/∂s to ds_out."""
    total = 0.0
    for k in range(s.size):
        if s[k] > data.wall_upper[k]:
            z = s[k] - data.wall_upper[k]
        elif s[k] < data.wall_lower[k]:
            z = s[k] - data.wall_lower[k]
        else:
            continue
        total += 0.5 * data.wall_kappa[k] * z * z
        ds_out[k] += data.wall_kappa[k] * z
    return total


@njit(cache=True)
def _hill_window(data, centre, sigma, lower, upper):
    """Grid index ranges [lower[k], upper[k]] of the nodes within 6σ of ``centre``."""
    lower[1] = 0
    upper[1] = 0
    for k in range(centre.size):
        n = data.grid_shape[k]
        lo = int(math.ceil((centre[k] - CUTOFF_SIGMAS * sigma[k] - data.grid_lower[k])
                           / data.grid_spacing[k]))
        hi = int(math.floor((centre[k] + CUTOFF_SIGMAS * sigma[k] - data.grid_lower[k])
                            / data.grid_spacing[k]))
        lower[k] = max(lo, 0)
        upper[k] = min(hi, n - 1)


@njit(cache=True)
def _add_hill_to_grid(data, centre, sigma, file_height, lower, upper):
    """Add H g(s) and its analytic derivatives to the grid nodes of the window."""
    m = centre.size
    g = data.grid
    if m == 1:
        inv_var = 1.0 / (sigma[0] * sigma[0])
        for i in range(lower[0], upper[0] + 1):
            dx = data.grid_lower[0] + i * data.grid_spacing[0] - centre[0]
            value = file_height * math.exp(-0.5 * dx * dx * inv_var)
            g[0, i, 0] += value
            g[1, i, 0] -= value * dx * inv_var
    else:
        inv_var_x = 1.0 / (sigma[0] * sigma[0])
        inv_var_y = 1.0 / (sigma[1] * sigma[1])
        ny = upper[1] - lower[1] + 1
        ey = np.empty(max(ny, 0))
        for j in range(lower[1], upper[1] + 1):
            dy = data.grid_lower[1] + j * data.grid_spacing[1] - centre[1]
            ey[j - lower[1]] = math.exp(-0.5 * dy * dy * inv_var_y)
        for i in range(lower[0], upper[0] + 1):
            dx = data.grid_lower[0] + i * data.grid_spacing[0] - centre[0]
            hx = file_height * math.exp(-0.5 * dx * dx * inv_var_x)
            fx = -dx * inv_var_x
            for j in range(lower[1], upper[1] + 1):
                dy = data.grid_lower[1] + j * data.grid_spacing[1] - centre[1]
                value = hx * ey[j - lower[1]]
                fy = -dy * inv_var_y
                g[0, i, j] += value
                g[1, i, j] += value * fx
                g[2, i, j] += value * fy
                g[3, i, j] += value * fx * fy


@njit(cache=True)
def _ct_from_sums(data):
    """c(t) from the running sums in ``data.state``."""
    st = data.state
    return (st[CT_REF_A] + math.log(st[CT_SUM_A]) - st[CT_REF_B]
            - math.log(st[CT_SUM_B])) / data.beta


@njit(cache=True)
def _compute_ct(data):
    """c(t) from all grid node values of V (log-sum-exp; see module docstring).

    Also (re)initialises the running sums that :func:`_store_and_add_hill`
    updates incrementally: with a = β Σ H g (= β V γ/(γ − 1)) and
    b = β V/(γ − 1) = a/γ at every node, ``state`` holds ref_a = max a,
    Σ exp(a − ref_a), ref_b = max b, Σ exp(b − ref_b).
    """
    g = data.grid
    nx = data.grid_shape[0]
    ny = data.grid_shape[1]
    beta = data.beta
    fb = data.file_scale * data.tempering      # b = fb · a
    a_max = -np.inf
    b_max = -np.inf
    for i in range(nx):
        for j in range(ny):
            a = beta * g[0, i, j]
            b = fb * a
            if a > a_max:
                a_max = a
            if b > b_max:
                b_max = b
    sum_a = 0.0
    sum_b = 0.0
    for i in range(nx):
        for j in range(ny):
            a = beta * g[0, i, j]
            sum_a += math.exp(a - a_max)
            sum_b += math.exp(fb * a - b_max)
    st = data.state
    st[CT_REF_A] = a_max
    st[CT_SUM_A] = sum_a
    st[CT_REF_B] = b_max
    st[CT_SUM_B] = sum_b
    return _ct_from_sums(data)


@njit(cache=True)
def _window_sums(data, lower, upper):
    """Σ exp(a − ref_a), Σ exp(b − ref_b) and max a, max b over the window."""
    g = data.grid
    beta = data.beta
    fb = data.file_scale * data.tempering
    ref_a = data.state[CT_REF_A]
    ref_b = data.state[CT_REF_B]
    sum_a = 0.0
    sum_b = 0.0
    a_max = -np.inf
    for i in range(lower[0], upper[0] + 1):
        for j in range(lower[1], upper[1] + 1):
            a = beta * g[0, i, j]
            if a > a_max:
                a_max = a
            sum_a += math.exp(a - ref_a)
            sum_b += math.exp(fb * a - ref_b)
    return sum_a, sum_b, a_max, fb * a_max


@njit(cache=True)
def _window_max(data, lower, upper):
    """max a and max b (= fb · a) over the window, without exponentials."""
    g = data.grid
    a_max = -np.inf
    for i in range(lower[0], upper[0] + 1):
        for j in range(lower[1], upper[1] + 1):
            a = data.beta * g[0, i, j]
            if a > a_max:
                a_max = a
    return a_max, data.file_scale * data.tempering * a_max


@njit(cache=True)
def _store_and_add_hill(data, centre, sigma, file_height, step):
    """Append one hill to the hill arrays (if room), add it to the grid, update c(t).

    c(t) is updated from the running sums by replacing the contributions of the
    nodes in the hill's window (O(window) instead of O(grid)); every
    ``CT_RESUM_EVERY`` hills (counted by the deposit number, so that a restart
    does the same) the sums are recomputed from scratch, which bounds the
    rounding drift.  (Hills only raise V, so Σ − old + new ≥ max(Σ, new): no
    cancellation.)
    """
    n = data.counts[N_HILLS]
    if n < data.hill_heights.size:
        for k in range(centre.size):
            data.hill_centres[n, k] = centre[k]
            data.hill_sigmas[n, k] = sigma[k]
        data.hill_heights[n] = file_height
        data.hill_steps[n] = step
        data.counts[N_HILLS] = n + 1
    data.counts[N_DEPOSITED] += 1
    lower = np.empty(2, dtype=np.int64)
    upper = np.empty(2, dtype=np.int64)
    _hill_window(data, centre, sigma, lower, upper)
    empty = upper[0] < lower[0] or upper[1] < lower[1]
    if empty:
        c = data.state[C_T]
    elif data.counts[N_DEPOSITED] % CT_RESUM_EVERY == 0:
        _add_hill_to_grid(data, centre, sigma, file_height, lower, upper)
        c = _compute_ct(data)
    else:
        st = data.state
        old_a, old_b, _, _ = _window_sums(data, lower, upper)
        _add_hill_to_grid(data, centre, sigma, file_height, lower, upper)
        # new maxima: rescale the running sums before adding the new terms
        a_max, b_max = _window_max(data, lower, upper)
        if a_max > st[CT_REF_A]:
            shift = math.exp(st[CT_REF_A] - a_max)
            st[CT_SUM_A] *= shift
            old_a *= shift
            st[CT_REF_A] = a_max
        if b_max > st[CT_REF_B]:
            shift = math.exp(st[CT_REF_B] - b_max)
            st[CT_SUM_B] *= shift
            old_b *= shift
            st[CT_REF_B] = b_max
        new_a, new_b, _, _ = _window_sums(data, lower, upper)
        st[CT_SUM_A] += new_a - old_a
        st[CT_SUM_B] += new_b - old_b
        c = _ct_from_sums(data)
    data.state[C_T] = c
    if n < data.hill_heights.size:
        data.hill_ct[n] = c


@njit(cache=True)
def _replay_hills(data, centres, sigmas, file_heights, steps):
    """Rebuild hills, grid and c(t) from a hills table (restart), in file order."""
    for i in range(file_heights.size):
        _store_and_add_hill(data, centres[i], sigmas[i], file_heights[i], steps[i])


# ---------------------------------------------------------------------------
# the bias protocol

def metadynamics_energy_gradient(data, theta, gradient):
    """V(s(θ)) + W(s(θ)); adds Σ_k ∂(V + W)/∂s_k ∇_θ s_k to ``gradient``.

    The chain rule is a vector–Jacobian product of the CV (``cv_add_vjp``
    after ``cv_value``): CVs with a fast path never form the m × d Jacobian.
    """
    core = data.core
    s = core.work_s
    ds = core.work_ds
    jacobian = core.work_jacobian
    cv_value(data.cv, theta, s, jacobian)
    v = _metad_bias(core, s, ds)
    w = _wall_bias(core, s, ds)
    m = s.size
    active = False
    for k in range(m):
        if ds[k] != 0.0:
            active = True
    if active:
        cv_add_vjp(data.cv, theta, ds, gradient, jacobian)
    core.cache_theta[:] = theta
    for k in range(m):
        core.cache_s[k] = s[k]
    core.state[CACHE_V] = v
    core.state[CACHE_W] = w
    core.counts[CACHE_VERSION] = core.counts[N_DEPOSITED]
    return v + w


@njit(cache=True)
def _same_point(theta, cached):
    """θ == cached element-wise, tested in blocks of 8 without an exit per
    element (so the comparison vectorises); NaN compares unequal."""
    d = theta.size
    l = 0
    while l + 8 <= d:
        differ = False
        for i in range(l, l + 8):
            differ |= theta[i] != cached[i]
        if differ:
            return False
        l += 8
    while l < d:
        if theta[l] != cached[l]:
            return False
        l += 1
    return True


def metadynamics_update(data, theta, step):
    """After step ``step``: weight of the current configuration, colvar record,
    and a new hill when ``step`` is a multiple of ``pace``."""
    core = data.core
    m = core.cache_s.size
    fresh = core.counts[CACHE_VERSION] == core.counts[N_DEPOSITED] \
        and _same_point(theta, core.cache_theta)
    if fresh:
        s = core.cache_s
        v = core.state[CACHE_V]
        w = core.state[CACHE_W]
    else:
        s = core.work_s
        cv_value(data.cv, theta, s, core.work_jacobian)
        v = _metad_bias(core, s, core.work_ds)
        w = _wall_bias(core, s, core.work_ds)
    c = core.state[C_T]
    weight_log = core.beta * (v + w - c)
    core.state[WEIGHT_LOG] = weight_log
    if core.record_every > 0 and step % core.record_every == 0:
        row = core.counts[N_RECORDS]
        if row < core.records.shape[0]:
            core.records[row, 0] = step
            for k in range(m):
                core.records[row, 1 + k] = s[k]
            core.records[row, m + 1] = v
            core.records[row, m + 2] = w
            core.records[row, m + 3] = c
            core.records[row, m + 4] = weight_log
            core.counts[N_RECORDS] = row + 1
        else:
            core.counts[N_DROPPED_RECORDS] += 1
    if step % core.pace == 0:
        height = core.height * math.exp(-core.beta * v * core.tempering)
        centre = np.empty(m)
        for k in range(m):
            centre[k] = s[k]
        _store_and_add_hill(core, centre, core.sigma, height / core.file_scale, step)


def metadynamics_weight_log(data):
    """β (V(s, t) + W(s) − c(t)) of the configuration passed to the last update."""
    return data.core.state[WEIGHT_LOG]


register_bias(MetadynamicsData, metadynamics_energy_gradient, update=metadynamics_update,
              weight_log=metadynamics_weight_log)


@njit(cache=True)
def _bias_on_points(data, points, exact, out_v, out_dv):
    """V (hills only) and ∂V/∂s at many CV points; ``exact`` uses the hill sum."""
    ds = np.empty(points.shape[1])
    for n in range(points.shape[0]):
        s = points[n]
        if exact:
            v = data.file_scale * _exact_sum(data, s, ds)
            for k in range(s.size):
                ds[k] *= data.file_scale
        else:
            v = _metad_bias(data, s, ds)
        out_v[n] = v
        for k in range(s.size):
            out_dv[n, k] = ds[k]


@njit(cache=True)
def _call_update(data, theta, step):
    bias_update(data, theta, step)


# ---------------------------------------------------------------------------
# Python side

def _per_cv(value, m, name, positive=True):
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        array = np.full(m, float(array))
    if array.shape != (m,):
        raise ValueError(f"{name} must be a number or {m} numbers, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or (positive and np.any(array <= 0)):
        raise ValueError(f"{name} must be finite{' and positive' if positive else ''}, "
                         f"got {array}")
    return array


class Metadynamics(Bias):
    """Well-tempered or plain metadynamics on a CV with one or two components.

    Parameters
    ----------
    cv : thermo.cv.CV
        The collective variable s(θ) (``cv.n_coords`` must be 1 or 2).
    height : float
        Initial hill height w (energy units), > 0.
    sigma : float or sequence of float
        Hill widths σ_k (CV units).
    pace : int
        Deposit a hill after every ``pace``-th step.
    temperature : float
        kT = 1/β of the sampler (energy units); must match the sampler's β.
    bias_factor : float or None
        γ > 1 for well-tempered metadynamics, None (or inf) for plain.
    grid : sequence of (lower, upper, n_points)
        One triple per CV component: the grid on which V is stored and
        interpolated, c(t) is integrated and F is reported.  The spacing
        (upper − lower)/(n_points − 1) should be ≤ σ/4 (checked: ≤ σ/2).
    interpolate : bool
        True (default): forces from the grid.  False: exact hill sum.
    walls : sequence of (lower, upper) or None
        Harmonic walls W = κ/2 (s − b)² beyond the bounds (use ±inf for one
        side); None for none.
    wall_kappa : float or sequence of float
        κ_k of the walls (energy / CV unit²).
    max_hills : int
        Capacity of the hill arrays (more hills still shape the grid but are
        missing from :attr:`hills`, the hills file and the exact sum).
    record_every : int
        Record (step, s, V, W, c, β(V + W − c)) every this many steps (0: never);
        see :meth:`colvar`.
    max_records : int
        Capacity of the colvar record.
    time_step : float
        Factor turning step counts into the hills file's ``time`` column.
    names : sequence of str, optional
        CV names for the hills file (default: the CV's names).

    Examples
    --------
    >>> bias = Metadynamics(cv, height=0.5, sigma=0.1, pace=200, temperature=1.0,
    ...                     bias_factor=10.0, grid=[(-2.0, 2.0, 201)])   # doctest: +SKIP
    >>> run = thermo.sample(potential, "baoab", ..., beta=1.0, bias=bias)  # doctest: +SKIP
    >>> s, F = bias.free_energy()                                          # doctest: +SKIP
    """

    def __init__(self, cv, height, sigma, pace, temperature=1.0, bias_factor=None, grid=None,
                 interpolate=True, walls=None, wall_kappa=100.0, max_hills=100_000,
                 record_every=0, max_records=100_000, time_step=1.0, names=None):
        if not isinstance(cv, CV):
            raise TypeError(f"cv must be a thermo.cv.CV, got {type(cv).__name__}")
        m = cv.n_coords
        if m not in (1, 2):
            raise ValueError(f"metadynamics supports 1 or 2 CV components, got {m}")
        height = float(height)
        if not (np.isfinite(height) and height > 0):
            raise ValueError(f"height must be positive, got {height}")
        sigma = _per_cv(sigma, m, "sigma")
        if int(pace) != pace or pace < 1:
            raise ValueError(f"pace must be a positive integer, got {pace}")
        pace = int(pace)
        temperature = float(temperature)
        if not (np.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature (kT) must be positive and finite, got {temperature}")
        if bias_factor is None or bias_factor == np.inf:
            tempering, file_scale, bias_factor = 0.0, 1.0, np.inf
        else:
            bias_factor = float(bias_factor)
            if not bias_factor > 1:
                raise ValueError(f"bias_factor must be > 1 (or None for plain), got {bias_factor}")
            tempering = 1.0 / (bias_factor - 1.0)
            file_scale = (bias_factor - 1.0) / bias_factor
        if grid is None:
            raise ValueError("grid is required: one (lower, upper, n_points) per CV component")
        grid = list(grid)
        if m == 1 and len(grid) == 3 and np.isscalar(grid[0]):
            grid = [tuple(grid)]
        if len(grid) != m:
            raise ValueError(f"grid needs {m} (lower, upper, n_points) triples, got {len(grid)}")
        lower = np.empty(m)
        spacing = np.empty(m)
        shape = np.ones(2, dtype=np.int64)
        for k, spec in enumerate(grid):
            if len(spec) != 3:
                raise ValueError(f"grid[{k}] must be (lower, upper, n_points), got {spec!r}")
            lo, hi, n = float(spec[0]), float(spec[1]), spec[2]
            if int(n) != n or n < 4:
                raise ValueError(f"grid[{k}] needs an integer n_points >= 4, got {n}")
            if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
                raise ValueError(f"grid[{k}] needs finite lower < upper, got {lo}, {hi}")
            n = int(n)
            lower[k] = lo
            spacing[k] = (hi - lo) / (n - 1)
            shape[k] = n
            if spacing[k] > sigma[k] / 2:
                raise ValueError(f"grid[{k}] spacing {spacing[k]:.3g} is coarser than "
                                 f"sigma/2 = {sigma[k] / 2:.3g}; use more points")
        wall_lower = np.full(m, -np.inf)
        wall_upper = np.full(m, np.inf)
        if walls is not None:
            walls = list(walls)
            if m == 1 and len(walls) == 2 and np.isscalar(walls[0]):
                walls = [tuple(walls)]
            if len(walls) != m:
                raise ValueError(f"walls needs {m} (lower, upper) pairs")
            for k, (lo, hi) in enumerate(walls):
                lo = -np.inf if lo is None else float(lo)
                hi = np.inf if hi is None else float(hi)
                if not lo < hi:
                    raise ValueError(f"walls[{k}] needs lower < upper, got {lo}, {hi}")
                wall_lower[k], wall_upper[k] = lo, hi
        wall_kappa = _per_cv(wall_kappa, m, "wall_kappa")
        if int(max_hills) != max_hills or max_hills < 1:
            raise ValueError(f"max_hills must be a positive integer, got {max_hills}")
        if int(record_every) != record_every or record_every < 0:
            raise ValueError(f"record_every must be a non-negative integer, got {record_every}")
        if int(max_records) != max_records or max_records < 0:
            raise ValueError(f"max_records must be a non-negative integer, got {max_records}")
        self.cv = cv
        self.temperature = temperature
        self.beta = 1.0 / temperature
        self.bias_factor = bias_factor
        self.time_step = float(time_step)
        self.names = list(cv.names if names is None else names)
        if len(self.names) != m:
            raise ValueError(f"need {m} names")
        d = cv.dimension
        core = MetadynamicsCore(
            beta=self.beta, height=height, tempering=tempering,
            file_scale=file_scale, pace=pace, record_every=int(record_every),
            interpolate=bool(interpolate), grid_lower=lower, grid_spacing=spacing,
            grid_shape=shape, grid=np.zeros((4, shape[0], shape[1])),
            wall_lower=wall_lower, wall_upper=wall_upper, wall_kappa=wall_kappa, sigma=sigma,
            hill_centres=np.zeros((int(max_hills), m)), hill_sigmas=np.zeros((int(max_hills), m)),
            hill_heights=np.zeros(int(max_hills)), hill_steps=np.zeros(int(max_hills), np.int64),
            hill_ct=np.zeros(int(max_hills)), records=np.zeros((int(max_records), m + 5)),
            counts=np.array([0, 0, 0, 0, -1, 0], dtype=np.int64), state=np.zeros(N_STATE),
            cache_theta=np.zeros(d), cache_s=np.zeros(m), work_s=np.zeros(m),
            work_ds=np.zeros(m),
            # the Jacobian is only formed for CVs without a fast VJP
            work_jacobian=np.zeros((m, 0 if has_vjp(cv) else d)))
        core.state[C_T] = _compute_ct(core)
        super().__init__(MetadynamicsData(cv.kernel_data, core))

    @property
    def core(self):
        """The CV-independent kernel state (grid, hills, records)."""
        return self.kernel_data.core

    # -- basic properties
    @property
    def n_coords(self):
        return self.cv.n_coords

    @property
    def pace(self):
        return self.core.pace

    @property
    def sigma(self):
        return self.core.sigma.copy()

    @property
    def height(self):
        return self.core.height

    @property
    def well_tempered(self):
        return np.isfinite(self.bias_factor)

    @property
    def n_hills(self):
        """Number of hills stored (see ``max_hills``)."""
        return int(self.core.counts[N_HILLS])

    @property
    def n_deposited(self):
        """Number of hills in the grid (stored, dropped for lack of room, or
        inherited from a restored snapshot)."""
        return int(self.core.counts[N_DEPOSITED])

    def _grow_hills(self, capacity):
        """Grow the hill arrays to ``capacity`` rows (replaces ``kernel_data``)."""
        data = self.core
        cap = data.hill_heights.size
        if capacity <= cap:
            return

        def grow(array):
            out = np.zeros((capacity,) + array.shape[1:], dtype=array.dtype)
            out[:cap] = array
            return out
        self.kernel_data = self.kernel_data._replace(core=data._replace(
            hill_centres=grow(data.hill_centres), hill_sigmas=grow(data.hill_sigmas),
            hill_heights=grow(data.hill_heights), hill_steps=grow(data.hill_steps),
            hill_ct=grow(data.hill_ct)))

    @property
    def c_t(self):
        """Current c(t) (energy units)."""
        return float(self.core.state[C_T])

    @property
    def grid_axes(self):
        """Grid node coordinates, one 1-D array per CV component."""
        data = self.core
        return [data.grid_lower[k] + data.grid_spacing[k] * np.arange(data.grid_shape[k])
                for k in range(self.n_coords)]

    def check_beta(self, beta):
        """Raise ValueError unless ``beta`` equals this bias's 1/temperature."""
        if not np.isclose(float(beta), self.beta, rtol=1e-12, atol=0.0):
            raise ValueError(f"Metadynamics was built for beta = {self.beta} (temperature "
                             f"{self.temperature}) but the sampler uses beta = {beta}")

    def _warn_dropped(self):
        counts = self.core.counts
        dropped = counts[N_DEPOSITED] - counts[N_INHERITED] - counts[N_HILLS]
        if dropped:
            warnings.warn(f"{dropped} hills did not fit max_hills = "
                          f"{self.core.hill_heights.size}: the grid holds them but the "
                          "hill list, hills file and exact sum do not; call reserve()",
                          RuntimeWarning, stacklevel=3)

    def reserve(self, n_steps):
        """Grow the hill and colvar arrays to hold ``n_steps`` more steps.

        Replaces ``kernel_data`` (call between ``thermo.sample`` calls).

        Parameters
        ----------
        n_steps : int
            Steps the next runs will take.

        Examples
        --------
        >>> from thermo.cv import Linear
        >>> bias = Metadynamics(Linear([[1.0]]), height=0.5, sigma=0.2, pace=10,
        ...                     grid=[(-2.0, 2.0, 81)], max_hills=5)
        >>> bias.reserve(1000)
        >>> bias.core.hill_heights.size >= 1000 // 10
        True
        """
        data = self.core
        need_hills = int(data.counts[N_HILLS]) + int(n_steps) // data.pace + 1
        need_rows = int(data.counts[N_RECORDS]) + (
            int(n_steps) // data.record_every + 1 if data.record_every else 0)
        self._grow_hills(need_hills)
        data = self.core
        if need_rows > data.records.shape[0]:
            records = np.zeros((need_rows, data.records.shape[1]))
            records[:data.records.shape[0]] = data.records
            self.kernel_data = self.kernel_data._replace(core=data._replace(records=records))

    # -- evaluation
    def bias_on_cv(self, s, exact=False):
        """V(s) of the hills (no walls) and ∂V/∂s at CV points ``s``.

        Parameters
        ----------
        s : array_like, shape (n, m) or (n,) for m = 1
        exact : bool
            Exact hill sum instead of the grid interpolation.

        Returns
        -------
        V : ndarray (n,), dV : ndarray (n, m)
        """
        s = np.asarray(s, dtype=np.float64)
        if s.ndim == 1 and self.n_coords == 1:
            s = s[:, None]
        if s.ndim != 2 or s.shape[1] != self.n_coords:
            raise ValueError(f"s must have shape (n, {self.n_coords})")
        if exact:
            self._warn_dropped()
        s = np.ascontiguousarray(s)
        v = np.empty(s.shape[0])
        dv = np.empty(s.shape)
        _bias_on_points(self.core, s, bool(exact), v, dv)
        return v, dv

    def wall_on_cv(self, s):
        """W(s), the wall energy, at CV points ``s`` (shape (n, m) or (n,))."""
        s = np.asarray(s, dtype=np.float64).reshape(-1, self.n_coords)
        data = self.core
        above = np.maximum(s - data.wall_upper, 0.0)
        below = np.minimum(s - data.wall_lower, 0.0)
        z = np.where(np.isfinite(above), above, 0.0) + np.where(np.isfinite(below), below, 0.0)
        return 0.5 * (data.wall_kappa * z * z).sum(axis=1)

    def free_energy(self, exact=False):
        """F on the grid: −(γ/(γ − 1)) V (well-tempered) or −V (plain), min 0.

        Returns
        -------
        axes : ndarray (n_1,) for m = 1, or list [axis_1, axis_2] for m = 2
        F : ndarray (n_1,) or (n_1, n_2) (F[i, j] at (axis_1[i], axis_2[j]))
        """
        data = self.core
        axes = self.grid_axes
        if exact:
            mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, self.n_coords)
            v, _ = self.bias_on_cv(mesh, exact=True)
            total = v / data.file_scale
        else:
            total = data.grid[0].reshape(-1)[:np.prod([a.size for a in axes])]
        shape = tuple(a.size for a in axes)
        f = -np.asarray(total, dtype=np.float64).reshape(shape)
        f = f - f.min()
        return (axes[0], f) if self.n_coords == 1 else (axes, f)

    @property
    def hills(self):
        """Stored hills: dict of ``step``, ``time``, ``centres`` (n, m), ``sigmas``
        (n, m), ``heights`` (n,) (deposited h_i), ``file_heights`` (n,)
        (H_i as in the hills file), ``c_t`` (n,) c(t) after each hill."""
        self._warn_dropped()
        data = self.core
        n = self.n_hills
        return {"step": data.hill_steps[:n].copy(),
                "time": data.hill_steps[:n] * self.time_step,
                "centres": data.hill_centres[:n].copy(),
                "sigmas": data.hill_sigmas[:n].copy(),
                "heights": data.hill_heights[:n] * data.file_scale,
                "file_heights": data.hill_heights[:n].copy(),
                "c_t": data.hill_ct[:n].copy()}

    def colvar(self):
        """Recorded rows (see ``record_every``): dict of ``step``, ``s`` (n, m),
        ``bias`` V, ``wall`` W, ``c_t`` and ``weight_log`` β(V + W − c)."""
        data = self.core
        if data.counts[N_DROPPED_RECORDS]:
            warnings.warn(f"{data.counts[N_DROPPED_RECORDS]} colvar rows did not fit "
                          "max_records; call reserve()", RuntimeWarning, stacklevel=2)
        rows = data.records[:data.counts[N_RECORDS]]
        m = self.n_coords
        return {"step": rows[:, 0].astype(np.int64), "s": rows[:, 1:1 + m].copy(),
                "bias": rows[:, m + 1].copy(), "wall": rows[:, m + 2].copy(),
                "c_t": rows[:, m + 3].copy(), "weight_log": rows[:, m + 4].copy()}

    def weight_log(self):
        """β(V + W − c) of the configuration seen by the last update."""
        return float(self.core.state[WEIGHT_LOG])

    def update(self, theta, step):
        """Run the kernel's per-step update once from Python (tests, custom loops)."""
        theta = np.ascontiguousarray(theta)
        if theta.dtype not in (np.float32, np.float64):
            theta = theta.astype(np.float64)
        _call_update(self.kernel_data, theta, int(step))

    # -- hills files (PLUMED column layout)
    def write_hills(self, path):
        """Write all stored hills to ``path`` in PLUMED's HILLS layout.

        Header ``#! FIELDS time s1 [s2] sigma_s1 [sigma_s2] height biasf`` (with
        this bias's CV names), one line per hill, numbers with 17 significant
        digits (exact round trip).  ``height`` is H = h γ/(γ − 1) for
        well-tempered runs (PLUMED's convention), h for plain; ``biasf`` is γ
        (1 for plain, as PLUMED writes).
        """
        hills = self.hills
        names = self.names
        fields = ["time", *names, *[f"sigma_{name}" for name in names], "height", "biasf"]
        biasf = self.bias_factor if self.well_tempered else 1.0
        with open(path, "w") as handle:
            handle.write("#! FIELDS " + " ".join(fields) + "\n")
            handle.write("#! SET multivariate false\n")
            handle.write(f"#! SET kbt {self.temperature!r}\n")
            for i in range(len(hills["step"])):
                row = [hills["time"][i], *hills["centres"][i], *hills["sigmas"][i],
                       hills["file_heights"][i], biasf]
                handle.write(" ".join(f"{x:.17g}" for x in row) + "\n")

    @staticmethod
    def read_hills(path, n_coords=None):
        """Read a PLUMED HILLS file: dict with ``fields``, ``time``, ``centres``,
        ``sigmas``, ``file_heights``, ``biasf`` (columns located by the FIELDS
        header; extra columns such as ``clock`` are ignored)."""
        if not os.path.exists(path):
            raise ValueError(f"hills file {path!r} does not exist")
        fields = None
        rows = []
        with open(path) as handle:
            for line in handle:
                if line.startswith("#! FIELDS"):
                    fields = line.split()[2:]
                elif line.startswith("#") or not line.strip():
                    continue
                else:
                    rows.append([float(x) for x in line.split()])
        if fields is None:
            raise ValueError(f"{path!r} has no '#! FIELDS' header")
        sigma_fields = [f for f in fields if f.startswith("sigma_")]
        names = [f[len("sigma_"):] for f in sigma_fields]
        if n_coords is not None and len(names) != n_coords:
            raise ValueError(f"{path!r} has {len(names)} CVs, expected {n_coords}")
        table = np.array(rows, dtype=np.float64).reshape(len(rows), len(fields))
        column = {name: i for i, name in enumerate(fields)}
        for needed in ["time", *names, "height"]:
            if needed not in column:
                raise ValueError(f"{path!r} lacks column {needed!r}")
        return {"fields": fields, "names": names, "time": table[:, column["time"]],
                "centres": table[:, [column[n] for n in names]],
                "sigmas": table[:, [column[f] for f in sigma_fields]],
                "file_heights": table[:, column["height"]],
                "biasf": table[:, column["biasf"]] if "biasf" in column else None}

    def load_hills(self, path):
        """Restart: replace all hills by those of ``path`` and rebuild the grid.

        The hills are replayed in file order through the kernel's own deposit
        routine, so grid and c(t) equal those of the run that wrote the file bit
        for bit.  Step numbers are recovered as round(time / time_step).  The
        file's ``biasf`` must equal this bias's γ (1 for plain).
        """
        table = self.read_hills(path, self.n_coords)
        biasf = self.bias_factor if self.well_tempered else 1.0
        if table["biasf"] is not None and table["biasf"].size and \
                not np.allclose(table["biasf"], biasf, rtol=1e-12):
            raise ValueError(f"{path!r} was written with biasf {table['biasf'][0]}, this "
                             f"bias has {biasf}")
        self.reset()
        steps = np.rint(table["time"] / self.time_step).astype(np.int64)
        self.add_hills(table["centres"], table["sigmas"], table["file_heights"], steps)
        return self

    @classmethod
    def from_hills(cls, path, cv, **kwargs):
        """A new bias (constructor ``kwargs``) restarted from the hills file ``path``."""
        bias = cls(cv, **kwargs)
        return bias.load_hills(path)

    def add_hills(self, centres, sigmas, file_heights, steps=None):
        """Deposit hills, in the given order, exactly as the sampler kernel does.

        Each hill is appended to the hill list (its arrays grow as needed), added
        to the grid, and c(t) is recomputed after it: a bias that receives the
        hills another bias deposited, in the same order, has the same grid and
        c(t) bit for bit.  Used to restart from a hills file
        (:meth:`load_hills`) and to share hills between walkers
        (:mod:`thermo.walkers.rounds`).

        Parameters
        ----------
        centres : array_like, shape (n, m) (or (n,) for m = 1)
            Hill centres s_i in CV units.
        sigmas : float or array_like, shape (m,) or (n, m)
            Hill widths σ_i (one for all hills, one per CV component, or one
            row per hill).
        file_heights : float or array_like, shape (n,)
            Heights H_i in the hills-file convention: H = h γ/(γ − 1) for
            well-tempered biases (h the deposited height), H = h for plain
            ones; ``hills["file_heights"]`` of another bias.
        steps : array_like of int, shape (n,), optional
            Step of each hill (its ``time`` is ``step · time_step``); default 0.

        Returns
        -------
        Metadynamics
            This bias (for chaining).

        Examples
        --------
        >>> from thermo.cv import Linear
        >>> def make():
        ...     return Metadynamics(Linear([[1.0]]), height=0.5, sigma=0.2, pace=10,
        ...                         bias_factor=5.0, grid=[(-2.0, 2.0, 81)])
        >>> first = make()
        >>> for step, x in [(10, -1.0), (20, -0.9), (30, 0.4)]:
        ...     first.update(np.array([x]), step)
        >>> hills = first.hills
        >>> second = make().add_hills(hills["centres"], hills["sigmas"],
        ...                           hills["file_heights"], hills["step"])
        >>> second.n_hills, bool(np.array_equal(second.free_energy()[1],
        ...                                     first.free_energy()[1]))
        (3, True)
        >>> second.c_t == first.c_t
        True
        """
        m = self.n_coords
        centres = np.asarray(centres, dtype=np.float64)
        if centres.ndim == 1 and m == 1:
            centres = centres[:, None]
        if centres.ndim != 2 or centres.shape[1] != m:
            raise ValueError(f"centres must have shape (n, {m}), got {centres.shape}")
        n = centres.shape[0]
        sigmas = np.asarray(sigmas, dtype=np.float64)
        if sigmas.ndim < 2:
            sigmas = np.broadcast_to(_per_cv(sigmas, m, "sigmas"), (n, m))
        if sigmas.shape != (n, m):
            raise ValueError(f"sigmas must be a number, {m} numbers or shape ({n}, {m}), "
                             f"got shape {sigmas.shape}")
        file_heights = np.asarray(file_heights, dtype=np.float64)
        if file_heights.ndim == 0:
            file_heights = np.full(n, float(file_heights))
        if file_heights.shape != (n,):
            raise ValueError(f"file_heights must have shape ({n},), got {file_heights.shape}")
        if steps is None:
            steps = np.zeros(n, dtype=np.int64)
        steps_array = np.asarray(steps)
        if steps_array.shape != (n,) or (steps_array.size and not np.all(
                np.asarray(steps_array, dtype=np.float64) == np.rint(steps_array))):
            raise ValueError(f"steps must be {n} integers")
        if not (np.all(np.isfinite(centres)) and np.all(np.isfinite(file_heights))):
            raise ValueError("centres and file_heights must be finite")
        if not (np.all(np.isfinite(sigmas)) and np.all(sigmas > 0)):
            raise ValueError("sigmas must be finite and positive")
        if n == 0:
            return self
        need = int(self.core.counts[N_HILLS]) + n
        capacity = self.core.hill_heights.size
        if need > capacity:
            self._grow_hills(max(need, capacity + capacity // 2))
        _replay_hills(self.core, np.ascontiguousarray(centres), np.ascontiguousarray(sigmas),
                      np.ascontiguousarray(file_heights),
                      np.ascontiguousarray(steps_array, dtype=np.int64))
        return self

    def snapshot(self, include_hills=False):
        """The state that hills build up: grid, c(t) and hill counts (a copy).

        A snapshot is a compact stand-in for a list of hills: sending one grid
        to a walker task costs less than replaying every hill there, and
        :meth:`restore` gives exactly the bias that replaying them would (the
        grid is the same sum, added in the same order).

        Parameters
        ----------
        include_hills : bool
            Also copy the stored hill list (hills, hills file and exact sum
            then survive :meth:`restore`); without it the restored bias keeps
            the grid but lists no hills of its own yet.

        Returns
        -------
        dict
            ``grid``, ``state`` (c(t) and the last weight), ``deposited``
            (hills in the grid), ``grid_lower``, ``grid_spacing``,
            ``file_scale`` (for the compatibility check of :meth:`restore`)
            and ``hills`` (a dict of arrays, or None).  Plain NumPy arrays and
            numbers: picklable.

        Examples
        --------
        >>> from thermo.cv import Linear
        >>> def make():
        ...     return Metadynamics(Linear([[1.0]]), height=0.5, sigma=0.2, pace=10,
        ...                         grid=[(-2.0, 2.0, 81)])
        >>> bias = make()
        >>> bias.update(np.array([0.3]), 10)
        >>> saved = bias.snapshot()
        >>> copy = make().restore(saved)
        >>> bool(np.array_equal(copy.bias_on_cv([0.1, 0.5])[0], bias.bias_on_cv([0.1, 0.5])[0]))
        True
        >>> copy.n_hills, copy.n_deposited        # the grid holds one hill, none listed
        (0, 1)
        """
        core = self.core
        counts = core.counts
        hills = None
        if include_hills:
            n = int(counts[N_HILLS])
            hills = {"centres": core.hill_centres[:n].copy(),
                     "sigmas": core.hill_sigmas[:n].copy(),
                     "file_heights": core.hill_heights[:n].copy(),
                     "steps": core.hill_steps[:n].copy(), "c_t": core.hill_ct[:n].copy()}
        return {"grid": core.grid.copy(), "state": core.state.copy(),
                "deposited": int(counts[N_DEPOSITED]),
                "inherited": int(counts[N_INHERITED]),
                "grid_lower": core.grid_lower.copy(), "grid_spacing": core.grid_spacing.copy(),
                "file_scale": float(core.file_scale), "hills": hills}

    def restore(self, snapshot):
        """Replace grid, c(t) and hills by those of a :meth:`snapshot`.

        The bias must have the same grid and the same bias factor as the one
        the snapshot was taken from (ValueError otherwise); its parameters
        (height, σ, pace, walls) are its own.  Colvar records are kept.  Hills
        the snapshot's grid holds but does not list count as *inherited*:
        :attr:`n_deposited` includes them, :attr:`hills` does not (without a
        warning), and hills deposited later are listed as usual.

        Parameters
        ----------
        snapshot : dict
            As returned by :meth:`snapshot`.

        Returns
        -------
        Metadynamics
            This bias (for chaining).

        Examples
        --------
        >>> from thermo.cv import Linear
        >>> bias = Metadynamics(Linear([[1.0]]), height=0.5, sigma=0.2, pace=10,
        ...                     grid=[(-2.0, 2.0, 81)])
        >>> empty = bias.snapshot()
        >>> bias.update(np.array([0.3]), 10)
        >>> bias.restore(empty).n_deposited, float(bias.bias_on_cv([0.3])[0][0])
        (0, 0.0)
        """
        if not isinstance(snapshot, dict) or "grid" not in snapshot:
            raise TypeError("restore() needs a dict made by Metadynamics.snapshot()")
        core = self.core
        grid = np.asarray(snapshot["grid"], dtype=np.float64)
        if grid.shape != core.grid.shape or not (
                np.array_equal(snapshot["grid_lower"], core.grid_lower)
                and np.array_equal(snapshot["grid_spacing"], core.grid_spacing)):
            raise ValueError("the snapshot's grid differs from this bias's grid")
        if float(snapshot["file_scale"]) != core.file_scale:
            raise ValueError("the snapshot was taken from a bias with another bias factor")
        hills = snapshot.get("hills")
        n = 0 if hills is None else int(np.asarray(hills["file_heights"]).shape[0])
        deposited = int(snapshot["deposited"])
        if n > core.hill_heights.size:
            self._grow_hills(n)
            core = self.core
        core.grid[...] = grid
        core.state[...] = np.asarray(snapshot["state"], dtype=np.float64)
        if n:
            core.hill_centres[:n] = hills["centres"]
            core.hill_sigmas[:n] = hills["sigmas"]
            core.hill_heights[:n] = hills["file_heights"]
            core.hill_steps[:n] = hills["steps"]
            core.hill_ct[:n] = hills["c_t"]
        core.counts[N_HILLS] = n
        core.counts[N_DEPOSITED] = deposited
        core.counts[N_INHERITED] = (int(snapshot.get("inherited", 0)) if n
                                    else deposited)
        core.counts[CACHE_VERSION] = -1
        return self

    def reset(self):
        """Remove all hills and records (keeps the parameters)."""
        data = self.core
        data.grid[:] = 0.0
        data.counts[:] = (0, 0, 0, 0, -1, 0)
        data.state[:] = 0.0
        data.state[C_T] = _compute_ct(data)

    # -- reweighting
    def reweighted_free_energy(self, values, weight_log, bins=50, range=None):
        """Free energy of another variable from biased samples; see
        :func:`reweighted_free_energy` (uses this bias's temperature)."""
        return reweighted_free_energy(values, weight_log, bins=bins, range=range,
                                      temperature=self.temperature)


def reweighted_free_energy(values, weight_log, bins=50, range=None, temperature=1.0):
    """F(x) = −kT log Σ_n w_n δ(x − x_n) with w_n = exp(weight_log_n), min 0.

    Histogram estimate of the free energy of any variable x from samples of a
    biased run, each weighted by its reweighting factor (for metadynamics
    w_n = exp(β(V(s_n, t_n) + W(s_n) − c(t_n))), the ``weight_log`` column of
    :meth:`Metadynamics.colvar`).

    Parameters
    ----------
    values : array_like, shape (n,) or (n, 2)
    weight_log : array_like, shape (n,)
    bins, range : as numpy.histogram / numpy.histogram2d
    temperature : float
        kT.

    Returns
    -------
    centres : ndarray (bins,) (or list of two for 2-D), F : ndarray, inf where empty

    Examples
    --------
    Samples spread uniformly over [−2.5, 2.5] (as if a bias had flattened
    U(x) = x²/2), each with log weight −βU(x), recover F(x) ≈ x²/2 at kT = 1:

    >>> rng = np.random.default_rng(0)
    >>> x = rng.uniform(-2.5, 2.5, size=100_000)
    >>> centres, F = reweighted_free_energy(x, -0.5 * x**2, bins=5, range=(-2.5, 2.5))
    >>> centres.tolist()
    [-2.0, -1.0, 0.0, 1.0, 2.0]
    >>> np.round(F, 1).tolist()
    [1.9, 0.5, 0.0, 0.5, 1.9]
    """
    values = np.asarray(values, dtype=np.float64)
    weight_log = np.asarray(weight_log, dtype=np.float64)
    if weight_log.shape != (values.shape[0],):
        raise ValueError("weight_log must have one entry per sample")
    w = np.exp(weight_log - weight_log.max())
    if values.ndim == 1:
        hist, edges = np.histogram(values, bins=bins, range=range, weights=w)
        centres = 0.5 * (edges[1:] + edges[:-1])
    elif values.ndim == 2 and values.shape[1] == 2:
        hist, ex, ey = np.histogram2d(values[:, 0], values[:, 1], bins=bins, range=range,
                                      weights=w)
        centres = [0.5 * (ex[1:] + ex[:-1]), 0.5 * (ey[1:] + ey[:-1])]
    else:
        raise ValueError("values must have shape (n,) or (n, 2)")
    with np.errstate(divide="ignore"):
        f = -temperature * np.log(hist)
    f = f - f[np.isfinite(f)].min()
    return centres, f
