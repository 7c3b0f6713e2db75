"""Tests of thermo.networks.MLP: gradients against finite differences for every
activation x loss x output activation at depths 1-3, float32 vs float64,
layout, forward/predict/accuracy against a NumPy reference, bad input, and
MNIST full-batch gradient descent."""
import time

import numpy as np
import pytest

from thermo.networks import MLP

HIDDEN = ["linear", "relu", "tanh", "sigmoid", "softplus"]
OUTPUT = ["linear", "tanh", "sigmoid"]
N_IN, N_OUT, N_ROWS = 3, 3, 7


def _labels(loss, n_out, rng, kind):
    """Labels of the kind under test for ``loss``."""
    if loss == "cross_entropy":
        return rng.integers(0, n_out, N_ROWS)
    if loss == "logistic":
        return rng.integers(0, 2, N_ROWS)
    if kind == "class":
        return rng.integers(0, n_out, N_ROWS)
    if kind == "sign":
        return rng.choice([-1, 1], N_ROWS)
    return rng.normal(size=(N_ROWS, n_out))


# (loss, n_out, label kind, output activations)
CASES = [("cross_entropy", N_OUT, "class", OUTPUT),
         ("mse", N_OUT, "class", OUTPUT),
         ("mse", N_OUT, "target", OUTPUT),
         ("mse", 1, "sign", OUTPUT),
         ("logistic", 1, "class", ["linear", "sigmoid"])]


def _fd_gradient(f, theta, h=1e-5):
    grad = np.empty_like(theta)
    for i in range(theta.size):
        step = np.zeros_like(theta)
        step[i] = h
        grad[i] = (f(theta + step) - f(theta - step)) / (2 * h)
    return grad


def _reference_forward(net, theta, X):
    """Plain NumPy forward pass (outputs after output activation)."""
    acts = {"linear": lambda z: z, "relu": lambda z: np.maximum(z, 0), "tanh": np.tanh,
            "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
            "softplus": lambda z: np.logaddexp(0, z)}
    a = X
    names = list(net.activations) + [net.output_activation]
    for (W, b), name in zip(net.unflatten(theta), names):
        a = acts[name](a @ W + b)
    return a


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("hidden", HIDDEN)
def test_gradient_matches_finite_differences(depth, hidden):
    if depth == 1 and hidden != "linear":
        pytest.skip("no hidden layer: one case suffices")
    rng = np.random.default_rng(depth * 10 + HIDDEN.index(hidden))
    worst = 0.0
    for loss, n_out, kind, outputs in CASES:
        for out in outputs:
            sizes = [N_IN] + [4] * (depth - 1) + [n_out]
            net = MLP(sizes, activation=hidden, output_activation=out, loss=loss)
            X = rng.normal(size=(N_ROWS, N_IN))
            y = _labels(loss, n_out, rng, kind)
            theta = rng.normal(scale=0.8, size=net.n_params)
            value, grad = net.loss_and_grad(theta, X, y)
            assert value == pytest.approx(net.loss(theta, X, y), rel=1e-14)
            fd = _fd_gradient(lambda t: net.loss(t, X, y), theta)
            err = np.linalg.norm(grad - fd) / np.linalg.norm(fd)
            assert err < 1e-6, (loss, kind, out, hidden, depth, err)
            worst = max(worst, err)
    print(f"depth {depth} {hidden}: worst FD relative error {worst:.2e}")


def test_loss_values_match_numpy_reference():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(N_ROWS, N_IN))
    for loss, n_out, kind, outputs in CASES:
        net = MLP([N_IN, 5, 4, n_out], activation=["softplus", "relu"],
                  output_activation=outputs[-1], loss=loss)
        theta = rng.normal(size=net.n_params)
        y = _labels(loss, n_out, rng, kind)
        o = _reference_forward(net, theta, X)
        np.testing.assert_allclose(net.forward(theta, X), o, rtol=1e-12, atol=1e-14)
        if loss == "cross_entropy":
            ref = np.mean(np.logaddexp.reduce(o, axis=1) - o[np.arange(N_ROWS), y])
        elif loss == "logistic":
            ref = np.mean(np.logaddexp(0, o[:, 0]) - y * o[:, 0])
        else:
            t = np.eye(n_out)[y] if kind == "class" else np.asarray(y, float).reshape(N_ROWS, -1)
            ref = np.mean((o - t) ** 2)
        assert net.loss(theta, X, y) == pytest.approx(ref, rel=1e-12)


def test_logistic_loss_is_stable_for_large_logits():
    net = MLP([1, 1], loss="logistic")
    theta = np.array([1.0, 0.0])
    X = np.array([[800.0], [-800.0]])
    value, grad = net.loss_and_grad(theta, X, np.array([0, 1]))
    assert value == pytest.approx(800.0)
    assert np.all(np.isfinite(grad))


def test_float32_agrees_with_float64():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 6))
    y = rng.integers(0, 4, 300)
    net64 = MLP([6, 8, 4], activation="tanh", loss="cross_entropy")
    net32 = MLP([6, 8, 4], activation="tanh", loss="cross_entropy", dtype=np.float32)
    theta = net64.init(3)
    l64, g64 = net64.loss_and_grad(theta, X, y)
    l32, g32 = net32.loss_and_grad(theta.astype(np.float32), X, y)
    assert g32.dtype == np.float32
    assert l32 == pytest.approx(l64, rel=1e-5)
    assert np.linalg.norm(g32 - g64) / np.linalg.norm(g64) < 1e-5
    with pytest.raises(TypeError, match="float32"):
        net32.loss(theta, X, y)  # float64 θ for a float32 net


def test_layout_unflatten_and_init():
    net = MLP([784, 10])
    assert net.n_params == 7850
    deep = MLP([4, 5, 3, 2], activation=["relu", "tanh"])
    assert deep.n_params == 4 * 5 + 5 + 5 * 3 + 3 + 3 * 2 + 2
    theta = np.arange(deep.n_params, dtype=float)
    (W0, b0), (W1, b1), (W2, b2) = deep.unflatten(theta)
    assert W0.shape == (4, 5) and b0.shape == (5,) and W2.shape == (3, 2)
    # row-major W then b, layer by layer
    assert W0[1, 0] == 5 and b0[0] == 20 and W1[0, 0] == 25 and b2[-1] == deep.n_params - 1
    W1[0, 0] = -1.0  # views: writes go to theta
    assert theta[25] == -1.0
    assert deep.layout[1].weight_offset == 25 and deep.layout[1].bias_offset == 40
    tati = deep.init(seed=1, scheme="tati")
    for W, b in deep.unflatten(tati):
        assert np.all(np.abs(W) <= 0.5) and np.all(b == 0.1)
    glorot = deep.init(seed=1)
    for W, b in deep.unflatten(glorot):
        assert np.all(np.abs(W) <= np.sqrt(6 / sum(W.shape))) and np.all(b == 0)
    assert np.array_equal(glorot, deep.init(seed=1))
    assert not np.array_equal(glorot, deep.init(seed=2))


def test_predict_and_accuracy():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 3))
    net = MLP([3, 6, 4], activation="relu")
    theta = net.init(0)
    y = rng.integers(0, 4, 200)
    pred = net.predict(theta, X)
    np.testing.assert_array_equal(pred, np.argmax(_reference_forward(net, theta, X), axis=1))
    assert net.accuracy(theta, X, y) == pytest.approx(np.mean(pred == y))
    # one output: 0/1 for logistic, sign for +-1 labels with mse
    logit = MLP([3, 1], loss="logistic")
    th = logit.init(1)
    o = logit.forward(th, X)[:, 0]
    np.testing.assert_array_equal(logit.predict(th, X), (o > 0).astype(int))
    sign = MLP([3, 1], output_activation="tanh", loss="mse")
    ys = np.where(X[:, 0] > 0, 1, -1)
    assert sign.accuracy(th, X, ys) == pytest.approx(np.mean(np.where(o >= 0, 1, -1) == ys))


def test_tati_default_network_tanh_output_mse_one_hot():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(50, 4))
    y = rng.integers(0, 3, 50)
    net = MLP([4, 3], output_activation="tanh", loss="mse")
    theta = net.init(0, scheme="tati")
    o = np.tanh(X @ theta[:12].reshape(4, 3) + theta[12:])
    assert net.loss(theta, X, y) == pytest.approx(np.mean((o - np.eye(3)[y]) ** 2), rel=1e-12)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="at least"):
        MLP([3])
    with pytest.raises(ValueError, match=">= 1"):
        MLP([3, 0, 2])
    with pytest.raises(ValueError, match="unknown hidden activation"):
        MLP([3, 4, 2], activation="gelu")
    with pytest.raises(ValueError, match="hidden layers"):
        MLP([3, 4, 2], activation=["tanh", "relu"])
    with pytest.raises(ValueError, match="output activation"):
        MLP([3, 2], output_activation="relu")
    with pytest.raises(ValueError, match="unknown loss"):
        MLP([3, 2], loss="hinge")
    with pytest.raises(ValueError, match="one output"):
        MLP([3, 2], loss="logistic")
    with pytest.raises(ValueError, match="at least 2 outputs"):
        MLP([3, 1], loss="cross_entropy")
    with pytest.raises(TypeError, match="float64 or float32"):
        MLP([3, 2], dtype=np.int32)
    with pytest.raises(ValueError, match="unknown init"):
        MLP([3, 2]).init(scheme="he")

    net = MLP([3, 4, 2])
    theta = net.init()
    X = np.zeros((5, 3))
    y = np.array([0, 1, 0, 1, 1])
    with pytest.raises(ValueError, match="shape"):
        net.loss(theta[:-1], X, y)
    with pytest.raises(TypeError, match="dtype"):
        net.loss(theta.astype(np.float32), X, y)
    with pytest.raises(ValueError, match="NaN"):
        net.loss(np.full_like(theta, np.nan), X, y)
    with pytest.raises(ValueError, match="4 features|features"):
        net.loss(theta, np.zeros((5, 4)), y)
    with pytest.raises(ValueError, match="empty"):
        net.loss(theta, np.zeros((0, 3)), y[:0])
    Xbad = X.copy()
    Xbad[2, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        net.loss(theta, Xbad, y)
    with pytest.raises(ValueError, match="class labels"):
        net.loss(theta, X, np.array([0, 1, 2, 0, 1]))
    with pytest.raises(ValueError, match="class labels"):
        net.loss(theta, X, np.array([0, -1, 0, 0, 1]))
    with pytest.raises(TypeError, match="integer"):
        net.loss(theta, X, y.astype(float))
    with pytest.raises(ValueError, match="rows"):
        net.loss(theta, X, y[:4])
    logit = MLP([3, 1], loss="logistic")
    with pytest.raises(ValueError, match="0 or 1"):
        logit.loss(logit.init(), X, np.array([0, 1, 2, 0, 1]))
    mse = MLP([3, 1], loss="mse")
    with pytest.raises(ValueError, match=r"-1 or\s*\+1"):
        mse.loss(mse.init(), X, np.array([0, 1, 2, 0, 1]))
    mse2 = MLP([3, 2], loss="mse")
    with pytest.raises(ValueError, match="target columns"):
        mse2.loss(mse2.init(), X, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="regression targets"):
        mse2.accuracy(mse2.init(), X, np.zeros((5, 2)))


@pytest.mark.slow  # 100 full-batch gradients of 60000 rows: minutes on a loaded 2-core box
def test_mnist_perceptron_gradient_descent_reaches_90_percent():
    load_mnist = pytest.importorskip("thermo.data.mnist").load_mnist
    X, y = load_mnist("train")
    X_test, y_test = load_mnist("test")
    net = MLP([784, 10], loss="cross_entropy")
    theta = np.zeros(net.n_params)
    start = time.perf_counter()
    steps = 0
    accuracy = 0.0
    # plain full-batch gradient descent on the mean loss
    while steps < 200:
        for _ in range(10):
            _, grad = net.loss_and_grad(theta, X, y)
            theta -= 0.5 * grad
            steps += 1
        accuracy = net.accuracy(theta, X_test, y_test)
        if accuracy >= 0.90:
            break
    elapsed = time.perf_counter() - start
    print(f"MNIST perceptron GD: {steps} steps, test accuracy {accuracy:.4f}, {elapsed:.1f} s")
    assert accuracy >= 0.90


# -- the blocked kernel (thermo.networks.kernels): blocks of BLOCK_ROWS rows,
# 8-wide micro-kernels, lists of active (non-zero) inputs, parallel chunks

_ACT = {"linear": (lambda z: z, lambda a: np.ones_like(a)),
        "relu": (lambda z: np.maximum(z, 0), lambda a: (a > 0).astype(float)),
        "tanh": (np.tanh, lambda a: 1 - a * a),
        "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda a: a * (1 - a)),
        "softplus": (lambda z: np.logaddexp(0, z), lambda a: -np.expm1(-a))}


def _reference_per_example(net, theta, X, y):
    """Per-example losses and gradients (n, n_params) of a linear-output
    cross-entropy network, by plain NumPy backpropagation."""
    layers = net.unflatten(theta)
    names = list(net.activations) + ["linear"]
    outs = [X]
    for (W, b), name in zip(layers, names):
        outs.append(_ACT[name][0](outs[-1] @ W + b))
    o = outs[-1]
    lse = np.logaddexp.reduce(o, axis=1)
    losses = lse - o[np.arange(len(y)), y]
    d = np.exp(o - lse[:, None])
    d[np.arange(len(y)), y] -= 1
    grads = np.empty((len(y), net.n_params))
    for l in range(net.depth - 1, -1, -1):
        lay = net.layout[l]
        gw = outs[l][:, :, None] * d[:, None, :]
        grads[:, lay.weight_offset:lay.bias_offset] = gw.reshape(len(y), -1)
        grads[:, lay.bias_offset:lay.bias_offset + lay.bias_size] = d
        if l > 0:
            d = (d @ layers[l][0].T) * _ACT[names[l - 1]][1](outs[l])
    return losses, grads


def _sparse_inputs(rng, n, n_in):
    """Inputs with ~70 % zeros and some all-zero columns, like MNIST pixels."""
    X = rng.normal(size=(n, n_in)) * (rng.random((n, n_in)) < 0.3)
    X[:, ::5] = 0.0
    return X


@pytest.mark.parametrize("sizes", [[3, 1, 2], [1, 2], [20, 17, 9, 3], [37, 8, 16, 2],
                                   [50, 33, 1, 2]])
@pytest.mark.parametrize("n_rows", [1, 7, 16, 17, 50, 101])
def test_blocked_kernel_matches_numpy_backprop(sizes, n_rows):
    """Row counts that are not multiples of the block (1, 7, 17, 50, 101
    rows), widths that are not multiples of the 8-wide micro-kernels (1, 3,
    9, 17, 33), width-1 layers, sparse inputs."""
    rng = np.random.default_rng(n_rows + 100 * len(sizes) + sizes[0])
    for hidden in HIDDEN:
        net = MLP(sizes, activation=hidden)
        X = _sparse_inputs(rng, n_rows, sizes[0])
        y = rng.integers(0, sizes[-1], n_rows)
        theta = rng.normal(scale=0.5, size=net.n_params)
        losses, grads = _reference_per_example(net, theta, X, y)
        value, grad = net.loss_and_grad(theta, X, y)
        assert value == pytest.approx(losses.mean(), rel=1e-12), hidden
        np.testing.assert_allclose(grad, grads.mean(axis=0), rtol=1e-10, atol=1e-13,
                                   err_msg=hidden)


@pytest.mark.parametrize("n_rows", [1, 2, 16, 37, 200])
def test_blocked_kernel_per_example_variance(n_rows):
    """CCAdL mode: sample variance of the per-example gradients (NaN for one
    row), against the NumPy per-example gradients."""
    from thermo.networks import kernels as k
    from thermo.networks.mlp import prepare_data
    rng = np.random.default_rng(n_rows)
    net = MLP([30, 12, 9, 4], activation=["relu", "tanh"])
    X = _sparse_inputs(rng, n_rows, 30)
    y = rng.integers(0, 4, n_rows)
    theta = rng.normal(scale=0.5, size=net.n_params)
    X, y_int, y_float, label_code = prepare_data(net, X, y)
    grad = np.empty(net.n_params)
    var = np.empty(net.n_params)
    total = k.evaluate(k.MODE_LOSS, theta, X, np.arange(n_rows), y_int, y_float, *net._codes,
                       label_code, 2.0, 0.5, np.int64(1), grad, np.int64(1), 3.0, var,
                       *net._work)
    losses, grads = _reference_per_example(net, theta, X, y)
    assert total == pytest.approx(losses.sum(), rel=1e-12)
    np.testing.assert_allclose(grad, 2.0 * grads.sum(axis=0) + 0.5 * theta, rtol=1e-10,
                               atol=1e-12)
    if n_rows == 1:
        assert np.isnan(var).all()
    else:
        ref = 3.0 * grads.var(axis=0, ddof=1)
        np.testing.assert_allclose(var, ref, rtol=1e-7, atol=1e-10 * ref.max())


def test_blocked_kernel_is_deterministic_and_thread_count_independent():
    """Bit-identical results on repeated calls, and for 1 or all threads
    (chunks are fixed by the work buffers, not by the current thread count)."""
    import numba
    rng = np.random.default_rng(9)
    net = MLP([60, 25, 10], activation="tanh")
    X = _sparse_inputs(rng, 300, 60)
    y = rng.integers(0, 10, 300)
    theta = net.init(1)
    first = net.loss_and_grad(theta, X, y)
    again = net.loss_and_grad(theta, X, y)
    assert first[0] == again[0] and np.array_equal(first[1], again[1])
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        serial = net.loss_and_grad(theta, X, y)
    finally:
        numba.set_num_threads(threads)
    assert first[0] == serial[0] and np.array_equal(first[1], serial[1])


def test_blocked_kernel_accuracy_forward_and_nan():
    rng = np.random.default_rng(4)
    net = MLP([23, 17, 5], activation="relu")
    X = _sparse_inputs(rng, 45, 23)
    y = rng.integers(0, 5, 45)
    theta = net.init(2)
    o = _reference_forward(net, theta, X)
    np.testing.assert_allclose(net.forward(theta, X), o, rtol=1e-12, atol=1e-14)
    assert net.accuracy(theta, X, y) == pytest.approx(np.mean(o.argmax(axis=1) == y))
    # NaN in theta is refused up front; a NaN reaching the kernel propagates
    from thermo.networks import kernels as k
    from thermo.networks.mlp import prepare_data
    bad = theta.copy()
    bad[net.layout[1].bias_offset] = np.nan
    Xc, y_int, y_float, code = prepare_data(net, X, y)
    grad = np.empty_like(theta)
    total = k.evaluate(k.MODE_LOSS, bad, Xc, np.arange(45), y_int, y_float, *net._codes, code,
                       1.0, 0.0, np.int64(1), grad, np.int64(0), 0.0, grad, *net._work)
    assert np.isnan(total) and np.isnan(grad).any()


def test_kernel_refuses_small_work_buffers():
    from thermo.networks import kernels as k
    from thermo.networks.mlp import prepare_data
    net = MLP([6, 5, 3])
    other = MLP([6, 2, 3])
    X = np.ones((4, 6))
    Xc, y_int, y_float, code = prepare_data(net, X, np.zeros(4, int))
    theta = net.init()
    grad = np.empty_like(theta)
    with pytest.raises(ValueError, match="work buffers"):
        k.evaluate(k.MODE_LOSS, theta, Xc, np.arange(4), y_int, y_float, *net._codes, code,
                   1.0, 0.0, np.int64(1), grad, np.int64(0), 0.0, grad, *other._work)


def test_float32_network_refuses_layers_beyond_exact_integer_range():
    # the blocked kernel stores input indices in the float work buffer
    with pytest.raises(ValueError, match="2\\^24"):
        MLP([2 ** 24 + 1, 2], dtype=np.float32)
    assert MLP([2 ** 24 + 1, 2], dtype=np.float64).sizes[0] == 2 ** 24 + 1
