"""Tests of the in-kernel minibatch draws (thermo.data.minibatch)."""
import numpy as np
import pytest

from thermo.data.minibatch import (draw, draw_with_replacement, draw_without_replacement,
                                   new_order, shuffle)


def _stream(n, batch_size, n_batches, seed):
    order, cursor = new_order(n)
    batch = np.empty(batch_size, np.int64)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        draw_without_replacement(order, cursor, batch, rng)
        out.append(batch.copy())
    return np.concatenate(out)


@pytest.mark.parametrize("batch_size", [1, 7, 10, 50])
def test_without_replacement_covers_each_index_once_per_epoch(batch_size):
    n = 50
    stream = _stream(n, batch_size, 40 * n // batch_size, seed=1)
    epochs = stream[: (stream.size // n) * n].reshape(-1, n)
    assert epochs.shape[0] >= 4
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(n))
    # reshuffled: successive epochs differ
    assert not np.array_equal(epochs[0], epochs[1])


def test_without_replacement_is_reproducible_and_seed_dependent():
    a = _stream(30, 4, 50, seed=3)
    assert np.array_equal(a, _stream(30, 4, 50, seed=3))
    assert not np.array_equal(a, _stream(30, 4, 50, seed=4))


def test_with_replacement_marginals_chi_square():
    n, draws = 20, 200_000
    batch = np.empty(draws, np.int64)
    draw_with_replacement(n, batch, np.random.default_rng(5))
    counts = np.bincount(batch, minlength=n)
    expected = draws / n
    chi2 = np.sum((counts - expected) ** 2 / expected)
    # 19 degrees of freedom: P(chi2 > 43.8) = 0.001
    assert chi2 < 43.8
    again = np.empty(draws, np.int64)
    draw_with_replacement(n, again, np.random.default_rng(5))
    assert np.array_equal(batch, again)


def test_with_replacement_repeats_indices_within_a_batch():
    # with replacement a batch of N draws almost surely repeats an index
    order, cursor = new_order(100)
    batch = np.empty(100, np.int64)
    draw(True, order, cursor, batch, np.random.default_rng(0))
    assert np.unique(batch).size < 100
    draw(False, order, cursor, batch, np.random.default_rng(0))
    np.testing.assert_array_equal(np.sort(batch), np.arange(100))


def test_shuffle_is_a_uniform_permutation():
    # position of element 0 after shuffling 5 elements: uniform over 5 slots
    order = np.arange(5, dtype=np.int64)
    rng = np.random.default_rng(8)
    counts = np.zeros(5)
    for _ in range(20_000):
        order[:] = np.arange(5)
        shuffle(order, rng)
        counts[np.flatnonzero(order == 0)[0]] += 1
    chi2 = np.sum((counts - 4000) ** 2 / 4000)
    assert chi2 < 18.5  # 4 dof, p = 0.001


def test_new_order_validates():
    with pytest.raises(ValueError):
        new_order(0)
    order, cursor = new_order(3)
    assert order.dtype == np.int64 and cursor.tolist() == [3]
