"""Distance from a reference point — written the way a user writes a CV.

.. math:: s(θ) = \\Big(\\sum_{l ∈ I} (θ_l - r_l)^2\\Big)^{1/2}, \\qquad
          \\frac{\\partial s}{\\partial θ_l} = \\frac{θ_l - r_l}{s}\\ (l ∈ I),\\ 0 \\text{ otherwise},

with ∂s/∂θ := 0 at s = 0 (where s is not differentiable).  The recipe: a
``NamedTuple`` of arrays and scalars, a function in the Numba subset writing
the value and the Jacobian, :func:`thermo.cv.register_cv`, and a
:class:`thermo.cv.CV` wrapper.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from thermo.cv.base import CV, register_cv

__all__ = ["Distance"]


class DistanceData(NamedTuple):
    """``reference`` r (d,) and ``mask`` (d,) with 1.0 on the indices I, 0.0 elsewhere."""
    reference: np.ndarray
    mask: np.ndarray


def distance_value_gradient(data, theta, values_out, jacobian_out):
    """s = |θ_I − r_I| and its gradient (kernel-side)."""
    total = 0.0
    for l in range(theta.size):
        diff = (theta[l] - data.reference[l]) * data.mask[l]
        total += diff * diff
    s = math.sqrt(total)
    values_out[0] = s
    inverse = 1.0 / s if s > 0.0 else 0.0
    for l in range(theta.size):
        jacobian_out[0, l] = (theta[l] - data.reference[l]) * data.mask[l] * inverse


register_cv(DistanceData, distance_value_gradient)


class Distance(CV):
    """Euclidean distance of (some coordinates of) θ from a reference point.

    Parameters
    ----------
    reference : array_like, shape (d,)
        r.
    indices : sequence of int, optional
        I, the coordinates that count (all by default).
    names : sequence of str, optional
        Component name (default ``s1``).

    Examples
    --------
    >>> cv = Distance(np.zeros(3), indices=[0, 1])     # ignores θ_2
    >>> cv(np.array([3.0, 4.0, 7.0])).tolist()
    [5.0]
    >>> values, jacobian = cv.value_and_jacobian(np.array([3.0, 4.0, 7.0]))
    >>> np.round(jacobian, 12).tolist()
    [[0.6, 0.8, 0.0]]
    """

    def __init__(self, reference, indices=None, names=None):
        reference = np.ascontiguousarray(reference, dtype=np.float64)
        if reference.ndim != 1 or reference.size < 1 or not np.all(np.isfinite(reference)):
            raise ValueError("reference must be a finite 1-D array")
        mask = np.zeros(reference.size)
        if indices is None:
            mask[:] = 1.0
        else:
            indices = np.asarray(indices, dtype=np.int64)
            if indices.size == 0 or indices.min() < 0 or indices.max() >= reference.size:
                raise ValueError(f"indices must lie in [0, {reference.size})")
            mask[indices] = 1.0
        super().__init__(DistanceData(reference, mask), reference.size, 1, names=names)
