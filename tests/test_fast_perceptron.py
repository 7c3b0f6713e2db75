"""The fused perceptron kernels against NumPy references."""
import numpy as np
import pytest

from thermo.data.minibatch import new_order
from thermo.networks import fast_perceptron as fp


def _data(n=60, d=12, c=4, seed=0):
    rng = np.random.default_rng(seed)
    X8 = ((rng.random((n, d)) < 0.4) * rng.integers(0, 256, (n, d))).astype(np.uint8)
    return X8, rng.integers(0, c, n), rng.normal(0, 0.3, d * c + c)


@pytest.mark.parametrize("kind", ["float64", "float32", "uint8"])
@pytest.mark.parametrize("theta_dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows", [None, "subset", "one"])
def test_loss_grad_matches_reference(kind, theta_dtype, rows):
    X8, y, theta = _data()
    if kind == "uint8":
        X, scale = X8, 1 / 255
    else:
        X, scale = (X8 / 255.0).astype(kind), 1.0
    rng = np.random.default_rng(1)
    rows = {None: None, "subset": rng.integers(0, len(X), 23), "one": np.array([5])}[rows]
    l0, g0 = fp.reference_loss_grad(theta, X, y, rows, 3.0, 0.7, scale)
    l1, g1 = fp.perceptron_loss_grad(theta.astype(theta_dtype), X, y, rows, 3.0, 0.7, scale)
    tol = 1e-13 if theta_dtype == np.float64 else 2e-6
    assert abs(l1 - l0) <= tol * abs(l0)
    assert g1.dtype == theta_dtype
    assert np.abs(g1 - g0).max() <= tol * np.abs(g0).max()


def test_parallel_chunks_give_same_result_as_one():
    X8, y, theta = _data(n=400)
    one = fp.make_work(X8.shape[1], 4, np.float64, n_threads=1)
    many = fp.make_work(X8.shape[1], 4, np.float64, n_threads=4)
    l1, g1 = fp.perceptron_loss_grad(theta, X8, y, None, 1.0, 0.0, 1 / 255, work=one)
    l4, g4 = fp.perceptron_loss_grad(theta, X8, y, None, 1.0, 0.0, 1 / 255, work=many)
    assert abs(l1 - l4) < 1e-12 * abs(l1)
    assert np.allclose(g1, g4, rtol=0, atol=1e-12 * np.abs(g1).max())


def test_bad_input():
    X8, y, theta = _data()
    with pytest.raises(ValueError, match="multiple"):
        fp.perceptron_loss_grad(theta[:-1], X8, y)
    with pytest.raises(ValueError, match="labels"):
        fp.perceptron_loss_grad(theta, X8, y + 10)
    with pytest.raises(TypeError):
        fp.perceptron_loss_grad(theta.astype(int), X8, y)


def _reference_draw(rng, order, cursor, batch):
    """NumPy re-implementation of thermo.data.minibatch.draw_without_replacement."""
    n = order.size
    out = []
    while len(out) < batch:
        if cursor >= n:
            for i in range(n - 1, 0, -1):
                j = rng.integers(0, i + 1)
                order[i], order[j] = order[j], order[i]
            cursor = 0
        take = min(batch - len(out), n - cursor)
        out.extend(order[cursor:cursor + take])
        cursor += take
    return np.array(out), cursor


def test_sgld_steps_match_numpy_reference():
    X8, y, theta0 = _data(n=50)
    X = X8 / 255.0
    n_steps, batch, h, beta, prior = 9, 8, 1e-3, 2.0, 0.5    # 50 = 6 x 8 + 2: straddles
    work = fp.make_work(X.shape[1], 4, np.float64)
    theta = theta0.copy()
    grad = np.empty_like(theta)
    order, cursor = new_order(50)
    rows_buffer = np.empty(batch, np.int64)
    energy = np.empty(n_steps)
    gnorm = np.empty(n_steps)
    fp.sgld_steps(X, 1.0, y, theta, grad, order, cursor, rows_buffer, n_steps, h, beta, prior,
                  np.random.default_rng(4), *work, energy, gnorm)
    rng = np.random.default_rng(4)
    ref_order = np.arange(50)
    ref_cursor = 50
    t = theta0.copy()
    scale = 50 / batch
    for step in range(n_steps):
        rows, ref_cursor = _reference_draw(rng, ref_order, ref_cursor, batch)
        loss, g = fp.reference_loss_grad(t, X, y, rows, scale, prior)
        assert abs(energy[step] - (scale * loss + 0.5 * prior * t @ t)) < 1e-11 * abs(energy[step])
        assert abs(gnorm[step] - np.linalg.norm(g)) < 1e-11 * gnorm[step]
        t = t - h * g + np.sqrt(2 * h / beta) * rng.standard_normal(t.size)
    assert cursor[0] == ref_cursor
    assert np.array_equal(order, ref_order)
    assert np.abs(theta - t).max() < 1e-12


def test_baoab_steps_match_numpy_reference():
    X8, y, theta0 = _data(n=40)
    n_steps, batch, h, beta, gamma, prior = 6, 7, 1e-2, 3.0, 2.0, 0.2     # 40 = 5 x 7 + 5
    work = fp.make_work(X8.shape[1], 4, np.float64)
    theta = theta0.copy()
    p = np.random.default_rng(9).normal(size=theta.size)
    p0 = p.copy()
    grad = np.empty_like(theta)
    order, cursor = new_order(40)
    energy = np.empty(n_steps)
    kinetic = np.empty(n_steps)
    fp.baoab_steps(X8, 1 / 255, y, theta, p, grad, order, cursor, np.empty(batch, np.int64),
                   n_steps, h, beta, gamma, prior, np.random.default_rng(2), *work, energy,
                   kinetic)
    rng = np.random.default_rng(2)
    ref_order, ref_cursor = np.arange(40), 40
    scale = 40 / batch
    c1 = np.exp(-gamma * h)
    c2 = np.sqrt((1 - c1 * c1) / beta)
    t, q = theta0.copy(), p0.copy()
    rows, ref_cursor = _reference_draw(rng, ref_order, ref_cursor, batch)
    loss, g = fp.reference_loss_grad(t, X8, y, rows, scale, prior, 1 / 255)
    for step in range(n_steps):
        assert abs(energy[step] - (scale * loss + 0.5 * prior * t @ t)) < 1e-11 * abs(energy[step])
        q = q - 0.5 * h * g
        t = t + 0.5 * h * q
        q = c1 * q + c2 * rng.standard_normal(t.size)
        assert abs(kinetic[step] - 0.5 * q @ q) < 1e-11 * kinetic[step]
        t = t + 0.5 * h * q
        rows, ref_cursor = _reference_draw(rng, ref_order, ref_cursor, batch)
        loss, g = fp.reference_loss_grad(t, X8, y, rows, scale, prior, 1 / 255)
        q = q - 0.5 * h * g
    assert np.abs(theta - t).max() < 1e-12
    assert np.abs(p - q).max() < 1e-12
    assert np.abs(grad - g).max() < 1e-10 * np.abs(g).max()


# Shapes around the kernel's blocking: rows in register blocks of fp.BLOCK and
# row blocks of fp.ROWS, classes in pairs (odd C leaves one), gradient columns
# in register tiles of 16 (float64) or 32 (float32) with a remainder.
@pytest.mark.parametrize("n_rows", [1, 3, 5, fp.ROWS - 1, fp.ROWS + 1, 2 * fp.ROWS + 7])
@pytest.mark.parametrize("d, c", [(1, 1), (3, 2), (17, 3), (33, 5), (64, 10), (70, 7)])
def test_blocking_edge_cases_match_reference(n_rows, d, c):
    X8, y, theta = _data(n=80, d=d, c=c, seed=d + c)
    X = X8 / 255.0
    rows = np.random.default_rng(n_rows).integers(0, 80, n_rows)
    l0, g0 = fp.reference_loss_grad(theta, X, y, rows, 1.5, 0.2)
    for n_threads in (1, 3):
        work = fp.make_work(d, c, np.float64, n_threads=n_threads)
        l1, g1 = fp.perceptron_loss_grad(theta, X, y, rows, 1.5, 0.2, work=work)
        assert abs(l1 - l0) <= 1e-12 * abs(l0)
        assert np.abs(g1 - g0).max() <= 1e-12 * np.abs(g0).max()
    # uint8 rows expanded into the buffer, and the float32 kernels
    l2, g2 = fp.perceptron_loss_grad(theta, X8, y, rows, 1.5, 0.2, 1 / 255)
    assert abs(l2 - l0) <= 1e-12 * abs(l0)
    assert np.abs(g2 - g0).max() <= 1e-12 * np.abs(g0).max()
    l3, g3 = fp.perceptron_loss_grad(theta.astype(np.float32), X.astype(np.float32), y, rows,
                                     1.5, 0.2)
    assert abs(l3 - l0) <= 2e-6 * abs(l0)
    assert np.abs(g3 - g0).max() <= 2e-6 * np.abs(g0).max()


def test_scaled_float64_rows_use_the_buffer():
    """float64 rows with input_scale != 1 are scaled into the row buffer;
    input_scale == 1 reads X in place: same numbers either way."""
    X8, y, theta = _data(n=90, d=40, c=6)
    X = X8 / 255.0
    l0, g0 = fp.reference_loss_grad(theta, X, y, None, 1.0, 0.0, 0.5)
    l1, g1 = fp.perceptron_loss_grad(theta, X, y, None, 1.0, 0.0, 0.5)
    assert abs(l1 - l0) <= 1e-12 * abs(l0)
    assert np.abs(g1 - g0).max() <= 1e-12 * np.abs(g0).max()
    l2, g2 = fp.perceptron_loss_grad(theta, X * 0.5, y)
    assert abs(l2 - l1) <= 1e-12 * abs(l1)
    assert np.abs(g2 - g1).max() <= 1e-12 * np.abs(g1).max()


def test_results_are_bitwise_reproducible():
    X8, y, theta = _data(n=300, d=50, c=7)
    X = X8 / 255.0
    rows = np.random.default_rng(3).integers(0, 300, 257)
    work = fp.make_work(50, 7, np.float64, n_threads=2)
    l1, g1 = fp.perceptron_loss_grad(theta, X, y, rows, work=work)
    g1 = g1.copy()
    for _ in range(3):
        l2, g2 = fp.perceptron_loss_grad(theta, X, y, rows, work=work)
        assert l2 == l1
        assert np.array_equal(g2, g1)


def test_non_contiguous_rows_and_empty_rows():
    X8, y, theta = _data(n=60, d=20, c=3)
    X = X8 / 255.0
    rows = np.arange(60)[::3]
    l0, g0 = fp.reference_loss_grad(theta, X, y, rows, 2.0, 0.1)
    l1, g1 = fp.perceptron_loss_grad(theta, X, y, rows, 2.0, 0.1)
    assert abs(l1 - l0) <= 1e-12 * abs(l0)
    assert np.abs(g1 - g0).max() <= 1e-12 * np.abs(g0).max()
    l2, g2 = fp.perceptron_loss_grad(theta, X, y, np.array([], np.int64), 2.0, 0.1)
    assert l2 == 0.0
    assert np.array_equal(g2, 0.1 * theta)


def test_nan_weights_stay_visible():
    X8, y, theta = _data(n=40, d=20, c=4)
    theta[3] = np.nan
    loss, grad = fp.perceptron_loss_grad(theta, X8 / 255.0, y)
    assert np.isnan(loss)
    assert np.isnan(grad).any()


@pytest.mark.parametrize("dtype, width", [(np.float64, 16), (np.float32, 32)])
def test_grad_tile_register_kernel(dtype, width):
    """The LLVM-IR backward tile: G[j, k:k+width] += Σ_r c[r, j] A[ri[r], k:k+width]."""
    from numba import njit

    @njit
    def tile(G, ja, jb, A, ri, n, c, k):
        fp._grad_tile(G, ja, jb, A, ri, n, c, k)

    rng = np.random.default_rng(5)
    A = rng.normal(size=(20, 3 * width)).astype(dtype)
    ri = rng.integers(0, 20, 7)
    c = rng.normal(size=(7, 5)).astype(dtype)
    G = rng.normal(size=(5, 3 * width + 1)).astype(dtype)
    expected = G.astype(np.float64)
    for j in (1, 4):
        expected[j, width:2 * width] += c[:, j].astype(np.float64) @ A[ri, width:2 * width]
    tile(G, 1, 4, A, ri, 7, c, width)
    tol = 1e-13 if dtype == np.float64 else 1e-5
    assert np.abs(G - expected).max() <= tol * np.abs(expected).max()
    before = G.copy()
    tile(G, 1, 4, A, ri, 0, c, width)          # no rows: adds nothing
    assert np.array_equal(G, before)
