"""Minibatch index draws inside Numba kernels.

All draws use the sampler's ``numpy.random.Generator`` (passed into the
kernel), so a run is reproducible from its seed and the generator state plus
the ``order``/``cursor`` arrays below are the whole minibatch state.  No Python
work happens per step.

Without replacement (``draw_without_replacement``)
    The data are visited epoch by epoch: ``order`` is a permutation of
    ``0..N-1`` reshuffled (in-kernel Fisher–Yates) whenever it is used up,
    and ``cursor[0]`` is the number of its entries already handed out.  The
    batches are consecutive pieces of the stream of permutations, so each
    epoch (every consecutive N draws from the start) covers each index
    exactly once.  When B does not divide N, a batch straddling two epochs
    takes the tail of one permutation and the head of the next and may then
    hold an index twice.  Start with ``cursor[0] = N`` (see
    :func:`new_order`) so that the first draw shuffles with the generator.
With replacement (``draw_with_replacement``)
    Each index uniform on ``0..N-1``, independently.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from thermo import _numba_cache  # noqa: F401  (threading layer, cache stamps)

__all__ = ["new_order", "shuffle", "draw_without_replacement", "draw_with_replacement",
           "draw"]


def new_order(n):
    """Fresh minibatch state for ``n`` examples: ``(order, cursor)``.

    ``order`` is ``arange(n)`` (int64) and ``cursor`` the 1-element int64
    array ``[n]``, meaning "epoch used up": the first draw shuffles.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"need at least one example, got n={n}")
    return np.arange(n, dtype=np.int64), np.array([n], dtype=np.int64)


@njit(cache=True)
def shuffle(order, rng):
    """Fisher–Yates shuffle of ``order`` in place with ``rng``."""
    for i in range(order.size - 1, 0, -1):
        j = rng.integers(0, i + 1)
        tmp = order[i]
        order[i] = order[j]
        order[j] = tmp


@njit(cache=True)
def draw_without_replacement(order, cursor, batch, rng):
    """Fill ``batch`` with the next ``batch.size`` indices of the epoch stream.

    ``order`` (int64, N) and ``cursor`` (int64, 1) are updated in place;
    ``order`` is reshuffled with ``rng`` each time it is used up.
    """
    n = order.size
    filled = 0
    while filled < batch.size:
        if cursor[0] >= n:
            shuffle(order, rng)
            cursor[0] = 0
        take = min(batch.size - filled, n - cursor[0])
        start = cursor[0]
        for k in range(take):
            batch[filled + k] = order[start + k]
        cursor[0] = start + take
        filled += take


@njit(cache=True)
def draw_with_replacement(n, batch, rng):
    """Fill ``batch`` with independent uniform indices in ``0..n-1``."""
    for k in range(batch.size):
        batch[k] = rng.integers(0, n)


@njit(cache=True)
def draw(replace, order, cursor, batch, rng):
    """``draw_with_replacement`` if ``replace`` else
    ``draw_without_replacement`` (``order.size`` is N)."""
    if replace:
        draw_with_replacement(order.size, batch, rng)
    else:
        draw_without_replacement(order, cursor, batch, rng)
