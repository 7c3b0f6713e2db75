"""Sparse-input perceptron kernels against the NumPy reference and the dense kernel."""
import numpy as np
import pytest

from thermo.networks import MLP
from thermo.networks import fast_perceptron as fp
from thermo.networks import sparse_perceptron as sp
from thermo.potentials import Posterior


def _data(n=70, d=13, c=4, density=0.3, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.random((n, d)) < density) * rng.normal(size=(n, d))
    X[3] = 0.0                      # a row without nonzeros
    X[:, 5] = 0.0                   # a column without nonzeros
    return X, rng.integers(0, c, n), rng.normal(0, 0.5, d * c + c)


@pytest.mark.parametrize("n_out", [1, 2, 3, 4, 5, 8, 10, 17, 33])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_reference_for_every_class_count(n_out, dtype):
    # 1..33 classes cover 1-4 vectors per column group, several groups, and
    # padding of 0-3 (float64) or 0-7 (float32) lanes
    X, y, theta = _data(c=n_out, seed=n_out)
    rows = np.random.default_rng(1).integers(0, len(X), 41)      # with repeats
    l0, g0 = fp.reference_loss_grad(theta, X, y, rows, 3.0, 0.7)
    compress = n_out % 2 == 0          # both storages across the class counts
    l1, g1 = sp.sparse_loss_grad(theta.astype(dtype), sp.to_sparse_rows(X, dtype,
                                 compress=compress), y, rows, 3.0, 0.7)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    assert g1.dtype == dtype
    assert abs(l1 - l0) <= tol * max(1.0, abs(l0))
    assert np.abs(g1 - g0).max() <= tol * max(1.0, np.abs(g0).max())


@pytest.mark.parametrize("rows", [None, "one", "empty_row", "none"])
def test_agrees_with_dense_kernel(rows):
    X, y, theta = _data(n=300, d=40, c=10, density=0.5)
    rows = {None: None, "one": np.array([7]), "empty_row": np.array([3, 3]),
            "none": np.array([], np.int64)}[rows]
    l_dense, g_dense = fp.perceptron_loss_grad(theta, X, y, rows, 2.0, 0.3)
    l_sparse, g_sparse = sp.sparse_loss_grad(theta, sp.to_sparse_rows(X), y, rows, 2.0, 0.3)
    assert abs(l_sparse - l_dense) <= 1e-12 * max(1.0, abs(l_dense))
    assert np.abs(g_sparse - g_dense).max() <= 1e-12 * np.abs(g_dense).max()


def test_mnist_like_sizes_agree_with_dense_kernel():
    # 784 inputs, 10 classes, uint8 pixels scaled on conversion, as for MNIST
    rng = np.random.default_rng(3)
    X8 = ((rng.random((500, 784)) < 0.19) * rng.integers(1, 256, (500, 784))).astype(np.uint8)
    y = rng.integers(0, 10, 500)
    theta = rng.normal(0, 0.05, 7850)
    rows = rng.permutation(500)[:100]
    l0, g0 = fp.perceptron_loss_grad(theta, X8, y, rows, 600.0, 1.0, input_scale=1 / 255)
    l1, g1 = sp.sparse_loss_grad(theta, sp.to_sparse_rows(X8, np.float64, 1 / 255), y, rows,
                                 600.0, 1.0)
    assert abs(l1 - l0) <= 1e-12 * abs(l0)
    assert np.abs(g1 - g0).max() <= 1e-12 * np.abs(g0).max()


@pytest.mark.parametrize("n_out", [3, 10])
def test_in_place_and_copied_weights_give_the_same_bits(n_out):
    # minibatches under COPY_WEIGHTS_FROM rows read θ in place (overreading
    # rows into the padding lanes), larger ones an aligned padded copy
    X, y, theta = _data(n=400, d=50, c=n_out, density=0.4, seed=4)
    S = sp.to_sparse_rows(X)
    rows = np.random.default_rng(5).integers(0, len(X), sp.COPY_WEIGHTS_FROM + 7)
    Wp, Gs, zs, losses = sp.make_sparse_work(50, n_out, n_threads=1)
    view = sp._weights(theta, Wp, n_out, 100)
    copy = sp._weights(theta, Wp, n_out, rows.size).copy()
    assert view.shape == (51, n_out) and np.shares_memory(view, theta)
    assert copy.shape == (51, sp.padded_classes(n_out, np.float64))
    gradients, totals = [], []
    for W in (view, copy):
        sp._accumulate(S.indptr, S.indices, S.values, S.palette, y, rows, W, Gs, zs, losses,
                       1, n_out)
        g = np.empty_like(theta)
        sp._reduce(Gs, 1, 2.0, 0.1, theta, g, n_out)
        gradients.append(g)
        totals.append(losses[0])
    assert np.array_equal(gradients[0], gradients[1]) and totals[0] == totals[1]
    for n in (100, rows.size):                 # each path through _loss_grad
        g = np.empty_like(theta)
        loss = sp._loss_grad(S.indptr, S.indices, S.values, S.palette, y, rows[:n], theta, 2.0,
                             0.1, g, Wp, Gs, zs, losses)
        l_ref, g_ref = fp.reference_loss_grad(theta, X, y, rows[:n], 2.0, 0.1)
        assert abs(loss - l_ref) <= 1e-12 * abs(l_ref)
        assert np.abs(g - g_ref).max() <= 1e-12 * np.abs(g_ref).max()


def test_chunks_and_repeats():
    X, y, theta = _data(n=400, d=20, c=10)
    S = sp.to_sparse_rows(X)
    one = sp.make_sparse_work(20, 10, n_threads=1)
    many = sp.make_sparse_work(20, 10, n_threads=4)
    l1, g1 = sp.sparse_loss_grad(theta, S, y, work=one)
    l4, g4 = sp.sparse_loss_grad(theta, S, y, work=many)
    assert abs(l1 - l4) <= 1e-12 * abs(l1)
    np.testing.assert_allclose(g1, g4, rtol=0, atol=1e-12 * np.abs(g1).max())
    # a fixed chunk count gives the same bits every time (fixed summation order)
    l4b, g4b = sp.sparse_loss_grad(theta, S, y, work=many)
    assert l4b == l4 and np.array_equal(g4b, g4)


def _dense(S):
    dense = np.zeros(S.shape, S.dtype)
    values = S.palette[S.values] if S.values.dtype == np.uint8 else S.values
    for i in range(S.shape[0]):
        lo, hi = S.indptr[i], S.indptr[i + 1]
        assert np.all(np.diff(S.indices[lo:hi].astype(np.int64)) > 0)
        dense[i, S.indices[lo:hi]] = values[lo:hi]
    return dense


@pytest.mark.parametrize("compress", [False, True])
def test_to_sparse_rows_round_trip(compress):
    X, _, _ = _data(n=400)          # ~1500 distinct values: too many for a palette
    S = sp.to_sparse_rows(X, np.float32, scale=0.5, compress=compress)
    assert S.indices.dtype == (np.uint16 if compress else np.int32)
    assert S.values.dtype == np.float32 and S.palette.size == 0   # continuous values
    np.testing.assert_array_equal(_dense(S), (0.5 * X).astype(np.float32))
    assert S.density == pytest.approx(np.count_nonzero(X) / X.size)


def test_palette_codes_are_exact_and_give_the_same_bits():
    rng = np.random.default_rng(4)
    X8 = ((rng.random((400, 50)) < 0.3) * rng.integers(1, 256, (400, 50))).astype(np.uint8)
    X = X8 / 255.0
    y = rng.integers(0, 10, 400)
    theta = rng.normal(0, 0.3, 510)
    plain = sp.to_sparse_rows(X, compress=False)
    small = sp.to_sparse_rows(X)
    assert small.values.dtype == np.uint8 and small.palette.size == 256
    assert small.nbytes < plain.nbytes / 3
    np.testing.assert_array_equal(_dense(small), X)                # lossless
    rows = rng.integers(0, 400, 150)
    work = sp.make_sparse_work(50, 10, n_threads=2)
    l0, g0 = sp.sparse_loss_grad(theta, plain, y, rows, 2.0, 0.5, work=work)
    l1, g1 = sp.sparse_loss_grad(theta, small, y, rows, 2.0, 0.5, work=work)
    assert l0 == l1 and np.array_equal(g0, g1)
    # a value that is not in the first 100,000 (the sample) is still coded
    big = np.zeros((2001, 60))
    big[:2000, :] = (np.arange(60) % 7 + 1)[None, :]
    big[2000, 3] = 0.25
    coded = sp.to_sparse_rows(big)
    assert coded.values.dtype == np.uint8
    np.testing.assert_array_equal(_dense(coded), big)


def test_wide_inputs_keep_32_bit_indices():
    rng = np.random.default_rng(2)
    X = np.zeros((3, 70_000))
    X[:, [5, 65_535, 65_536, 69_999]] = rng.normal(size=(3, 4))
    y = np.array([0, 1, 0])
    S = sp.to_sparse_rows(X)
    assert S.indices.dtype == np.int32
    theta = rng.normal(size=2 * 70_001)
    l0, g0 = fp.reference_loss_grad(theta, X, y)
    l1, g1 = sp.sparse_loss_grad(theta, S, y)
    assert abs(l1 - l0) <= 1e-12 * abs(l0)
    assert np.abs(g1 - g0).max() <= 1e-12 * np.abs(g0).max()


def test_nan_and_large_logits():
    X, y, theta = _data(c=3)
    S = sp.to_sparse_rows(X)
    big = 400.0 * theta                       # logit gaps far beyond exp's range
    l0, g0 = fp.reference_loss_grad(big, X, y)
    l1, g1 = sp.sparse_loss_grad(big, S, y)
    assert np.isfinite(l1) and l1 == pytest.approx(l0, rel=1e-12)
    bad = theta.copy()
    bad[0] = np.nan                           # input 0, class 0: nonzero in some rows
    assert np.count_nonzero(X[:, 0])
    loss, grad = sp.sparse_loss_grad(bad, S, y)
    assert np.isnan(loss) and np.isnan(grad).any()


def test_bad_input():
    X, y, theta = _data()
    S = sp.to_sparse_rows(X)
    with pytest.raises(TypeError, match="SparseRows"):
        sp.sparse_loss_grad(theta, X, y)
    with pytest.raises(ValueError, match="multiple"):
        sp.sparse_loss_grad(theta[:-1], S, y)
    with pytest.raises(TypeError, match="to_sparse_rows"):
        sp.sparse_loss_grad(theta.astype(np.float32), S, y)
    with pytest.raises(ValueError, match="labels"):
        sp.sparse_loss_grad(theta, S, y + 10)
    with pytest.raises(ValueError, match="rows out of range"):
        sp.sparse_loss_grad(theta, S, y, rows=np.array([len(X)]))
    with pytest.raises(ValueError, match="another network"):
        sp.sparse_loss_grad(theta, S, y, work=sp.make_sparse_work(13, 5))
    with pytest.raises(ValueError, match="2-D"):
        sp.to_sparse_rows(np.zeros(3))


@pytest.mark.parametrize("batch_size", [None, 60])
def test_posterior_chooses_and_agrees(batch_size):
    X, y, theta = _data(n=301, d=13, c=4, density=0.2, seed=5)
    net = MLP([13, 4], loss="cross_entropy")
    auto = Posterior(net, X, y, prior_precision=0.8, batch_size=batch_size)
    dense = Posterior(net, X, y, prior_precision=0.8, batch_size=batch_size,
                      sparse_inputs=False)
    assert auto.input_format == "sparse" and auto.kernel_data.fast == 2
    assert dense.input_format == "dense" and dense.kernel_data.fast == 1
    for full in (True, False):
        for seed in range(3):
            U_s, g_s = auto.energy_and_gradient(theta, full=full, rng=np.random.default_rng(seed))
            U_d, g_d = dense.energy_and_gradient(theta, full=full, rng=np.random.default_rng(seed))
            assert U_s == pytest.approx(U_d, rel=1e-12, abs=0)
            np.testing.assert_allclose(g_s, g_d, rtol=0, atol=1e-12 * np.abs(g_d).max())
    # dense data stays dense; sparse storage can be forced
    Xd = np.random.default_rng(0).normal(size=(50, 13))
    assert Posterior(net, Xd, y[:50]).input_format == "dense"
    forced = Posterior(net, Xd, y[:50], sparse_inputs=True)
    assert forced.input_format == "sparse"
    U_f, g_f = forced.energy_and_gradient(theta)
    U_d, g_d = Posterior(net, Xd, y[:50]).energy_and_gradient(theta)
    assert U_f == pytest.approx(U_d, rel=1e-12)


def test_posterior_sparse_inputs_errors():
    X, y, _ = _data()
    with pytest.raises(ValueError, match="fast path"):
        Posterior(MLP([13, 5, 4]), X, y, sparse_inputs=True)
    with pytest.raises(TypeError, match="sparse_inputs"):
        Posterior(MLP([13, 4]), X, y, sparse_inputs="yes")
    # off the fast path the general kernel reads the dense inputs
    assert Posterior(MLP([13, 5, 4]), X, y).input_format == "dense"
