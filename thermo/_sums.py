"""Deterministic sums shared by the potentials and the samplers.

A plain serial sum ``s += x[i]`` in Numba is one chain of dependent float
additions (no ``fastmath``, so LLVM may not reorder it): ~4 cycles per
entry, 13 µs for the 7,850 parameters of the MNIST perceptron on the 2-core
development machine, 10 % of a batch-100 sampler step.  The sums here keep
four independent partial sums and combine them in a fixed order, so their
result does not depend on the machine or the thread count.
"""
from __future__ import annotations

from numba import njit

from thermo import _numba_cache  # noqa: F401  (threading layer, tolerant cache index)

__all__ = ["sum_of_squares"]


@njit(cache=True)
def sum_of_squares(x, scale):
    """``Σ (scale x_i)²`` in four interleaved partial sums, combined in a fixed order.

    Used for the recorded kinetic energy and noise norm, and for the
    Gaussian prior's ``|θ|²`` in every energy evaluation.

    Parameters
    ----------
    x : numpy.ndarray
        1-D float array.
    scale : float
        Factor applied to each entry before squaring.

    Returns
    -------
    float
        The sum, in float64.

    Examples
    --------
    >>> import numpy as np
    >>> sum_of_squares(np.arange(5.0), 2.0)
    120.0
    """
    n = x.size
    n4 = n - n % 4
    s0 = s1 = s2 = s3 = 0.0
    for i in range(0, n4, 4):
        a0 = scale * x[i]
        a1 = scale * x[i + 1]
        a2 = scale * x[i + 2]
        a3 = scale * x[i + 3]
        s0 += a0 * a0
        s1 += a1 * a1
        s2 += a2 * a2
        s3 += a3 * a3
    for i in range(n4, n):
        a0 = scale * x[i]
        s0 += a0 * a0
    return (s0 + s1) + (s2 + s3)
