"""Loss landscapes: affine fast path, network and potential paths, directions, HDF5, plots."""
import h5py
import numpy as np
import pytest

from thermo.analysis import (
    Directions,
    covariance_directions,
    hessian_directions,
    landscape,
    load_landscape,
    principal_components,
    random_directions,
    user_directions,
    zoom_levels,
)
from thermo.networks import MLP
from thermo.plotting import plot_landscape, plot_landscape_panels, save_figure
from thermo.potentials.analytic import Gaussian


def data(n=300, n_in=12, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in))
    X[:, 2] = 0.0  # a dead input, like MNIST's border pixels
    return X, rng.integers(0, classes, n)


NETS = [
    ({}, "class"),
    ({"output_activation": "tanh", "loss": "mse"}, "class"),  # TATi's default network
    ({"output_activation": "sigmoid", "loss": "mse"}, "class"),
    ({"loss": "logistic"}, "binary"),
    ({"output_activation": "tanh", "loss": "mse"}, "sign"),
]


@pytest.mark.parametrize("kwargs, labels", NETS)
def test_affine_fast_path_equals_direct_loss(kwargs, labels):
    X, y = data()
    n_out = 1 if labels in ("binary", "sign") else 4
    if labels == "binary":
        y = y % 2
    elif labels == "sign":
        y = np.where(y % 2 == 0, -1, 1)
    net = MLP([X.shape[1], n_out], **kwargs)
    theta = net.init(seed=3)
    dirs = random_directions(net, theta, seed=1, ignore_bias=False)
    land = landscape(net, theta, dirs, extent=2.0, n_grid=9, X=X, y=y)
    assert land.method == "affine"
    assert land.train_loss.shape == (9, 9)
    assert land.train_loss[4, 4] == pytest.approx(net.loss(theta, X, y), abs=1e-12)
    rng = np.random.default_rng(5)
    for i, j in rng.integers(0, 9, size=(5, 2)):
        point = land.point(land.xcoordinates[i], land.ycoordinates[j])
        assert abs(land.train_loss[i, j] - net.loss(point, X, y)) < 1e-10
        assert land.train_acc[i, j] == pytest.approx(net.accuracy(point, X, y), abs=1e-12)


def test_network_path_for_deeper_net_and_method_checks():
    X, y = data(n=120)
    net = MLP([X.shape[1], 5, 4], activation="relu")
    theta = net.init(seed=1)
    dirs = random_directions(net, theta, seed=2)
    land = landscape(net, theta, dirs, extent=(-1.0, 0.5, -0.2, 1.0), n_grid=(5, 4), X=X, y=y)
    assert land.method == "network"
    assert land.train_loss.shape == (5, 4)
    i, j = 3, 2
    point = land.point(land.xcoordinates[i], land.ycoordinates[j])
    assert land.train_loss[i, j] == pytest.approx(net.loss(point, X, y), abs=1e-12)
    with pytest.raises(ValueError, match="single-layer"):
        landscape(net, theta, dirs, n_grid=3, X=X, y=y, method="affine")
    with pytest.raises(ValueError, match="X and y"):
        landscape(net, theta, dirs, n_grid=3)


def test_random_directions_are_filter_normalised():
    X, y = data()
    net = MLP([X.shape[1], 6, 4])
    theta = net.init(seed=0)
    dirs = random_directions(net, theta, seed=0)
    step = dirs.steps[:, 0]
    for (w, b), (w_star, _) in zip(net.unflatten(step.copy()), net.unflatten(theta.copy())):
        np.testing.assert_allclose(np.linalg.norm(w, axis=0), np.linalg.norm(w_star, axis=0),
                                   rtol=1e-12)
        assert np.all(b == 0)


def test_potential_path_and_hessian_directions():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    eigenvalues = np.array([50.0, 20.0, 5.0, 2.0, 1.0, 0.5])
    precision = q @ np.diag(eigenvalues) @ q.T
    mean = rng.standard_normal(6)
    pot = Gaussian(mean, precision=precision)
    dirs = hessian_directions(pot, mean, ranks=(1, 3))
    np.testing.assert_allclose(dirs.eigenvalues, [50.0, 5.0], rtol=1e-6)
    np.testing.assert_allclose(np.abs(dirs.vectors.T @ q[:, [0, 2]]), np.eye(2), atol=1e-6)
    np.testing.assert_allclose(dirs.scales, 1 / np.sqrt([50.0, 5.0]))
    flat = hessian_directions(pot, mean, ranks=(1, 2), which="smallest")
    np.testing.assert_allclose(flat.eigenvalues, [0.5, 1.0], rtol=1e-6)
    land, close = zoom_levels(pot, mean, dirs, extents=(2.0, 0.5), n_grid=5)
    assert land.method == "potential"
    assert close.xcoordinates[-1] == 0.5 and close.energy.max() < land.energy.max()
    # U = ½ (a² + b²) in units of 1/sqrt(λ): a paraboloid with curvature 1.
    a, b = np.meshgrid(land.xcoordinates, land.ycoordinates, indexing="ij")
    u0 = pot.energy(mean)
    np.testing.assert_allclose(land.energy - u0, 0.5 * (a ** 2 + b ** 2), atol=1e-9)
    assert np.all(np.isnan(land.train_acc))


def test_covariance_directions_units_and_trajectory_overlay(tmp_path):
    X, y = data()
    net = MLP([X.shape[1], 4])
    theta = net.init(seed=0)
    rng = np.random.default_rng(1)
    samples = theta + rng.standard_normal((200, net.n_params)) * np.linspace(2, 0.1,
                                                                              net.n_params)
    pcs = principal_components(samples, k=10)
    dirs = covariance_directions(pcs, ranks=(1, 10))
    np.testing.assert_allclose(dirs.scales, np.sqrt(pcs.values[[0, 9]]))
    assert dirs.ranks.tolist() == [1, 10]
    thetas = covariance_directions(pcs, ranks=(1, 10), units="theta_norm", centre=theta)
    assert thetas.scales[0] == pytest.approx(np.linalg.norm(theta))
    path = theta + np.outer(np.linspace(-1, 1, 11), dirs.steps[:, 0]) + 1e-3
    land = landscape(net, theta, dirs, extent=3.0, n_grid=7, X=X, y=y,
                     trajectories={"optimisation": path})
    coords, distance = land.trajectories["optimisation"]
    np.testing.assert_allclose(coords[:, 0], np.linspace(-1, 1, 11), atol=1e-2)
    assert distance.shape == (11,) and np.all(distance < 0.05)

    path_h5 = tmp_path / "surface.h5"
    land.save(path_h5)
    land.save(path_h5, group="zoom")
    with h5py.File(path_h5, "r") as f:
        for key in ("xcoordinates", "ycoordinates", "train_loss", "train_acc",
                    "direction_indices", "eigenvalues", "centre"):
            assert key in f and key in f["zoom"]
        assert f["train_loss"].shape == (7, 7)
        assert list(f["direction_indices"][()]) == [1, 10]
    back = load_landscape(path_h5, group="zoom")
    np.testing.assert_array_equal(back.train_loss, land.train_loss)
    np.testing.assert_array_equal(back.trajectories["optimisation"][0], coords)

    fig = plot_landscape_panels([land, land], kinds=("contourf", "contour", "surface"),
                                log=[False, True], titles=["wide", "zoom"])
    written = save_figure(fig, tmp_path / "land.png")
    assert [p[-3:] for p in written] == ["png", "pdf"]
    assert all((tmp_path / f"land.{e}").stat().st_size > 10_000 for e in ("png", "pdf"))
    fig2 = plot_landscape(land, quantity="train_acc", kind="contour")
    assert len(fig2.axes) == 2  # plot and colour bar


def test_user_directions_and_bad_input():
    X, y = data()
    net = MLP([X.shape[1], 4])
    theta = net.init(seed=0)
    v1 = np.zeros(net.n_params)
    v1[0] = 2.0
    v2 = np.zeros(net.n_params)
    v2[1] = 1.0
    dirs = user_directions(v1, v2)
    np.testing.assert_allclose(dirs.scales, [2.0, 1.0])
    land = landscape(net, theta, np.stack([v1, v2], axis=1), extent=1.0, n_grid=3, X=X, y=y)
    assert isinstance(land.directions, Directions)
    with pytest.raises(ValueError, match="parallel"):
        user_directions(v1, 3 * v1)
    with pytest.raises(ValueError, match="dimension"):
        landscape(net, theta, user_directions(v1[:5], v2[:5]), X=X, y=y)
    with pytest.raises(ValueError, match="extent"):
        landscape(net, theta, dirs, extent=-1.0, X=X, y=y)
    with pytest.raises(ValueError, match="ranks"):
        covariance_directions((np.ones(3), np.eye(3)), ranks=(1, 4))
    with pytest.raises(TypeError, match="MLP or a Potential"):
        landscape("net", theta, dirs)
    with pytest.raises(ValueError, match="centre"):
        landscape(net, theta[:-1], dirs, X=X, y=y)
