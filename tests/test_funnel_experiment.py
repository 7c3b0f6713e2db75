"""End-to-end run of experiments/mnist_funnel.py at reduced size."""
import importlib.util
import json
import os

import h5py
import numpy as np
import pytest

import thermo

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, os.pardir, "experiments", "mnist_funnel.py")


def load_experiment():
    spec = importlib.util.spec_from_file_location("mnist_funnel", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flat_directions_leave_the_loss_unchanged():
    funnel = load_experiment()
    rng = np.random.default_rng(0)
    X = rng.random((40, 6))
    X[:, 4] = 0.0  # dead input
    y = rng.integers(0, 3, 40)
    net = thermo.MLP([6, 3])
    project, n_flat = funnel.flat_projection(net, X, "cross_entropy")
    assert n_flat == 1 * 3 + 5 + 1
    theta = rng.standard_normal(net.n_params)
    u = rng.standard_normal(net.n_params)
    flat_part = u - project(u)
    assert net.loss(theta + flat_part, X, y) == pytest.approx(net.loss(theta, X, y), abs=1e-12)
    np.testing.assert_allclose(project(project(u)), project(u), atol=1e-14)  # a projector
    np.testing.assert_allclose(project(u) @ flat_part, 0.0, atol=1e-12)  # orthogonal
    _, n_mse = funnel.flat_projection(thermo.MLP([6, 3], output_activation="tanh",
                                                 loss="mse"), X, "mse")
    assert n_mse == 3  # only the dead pixel for tanh + mse


def test_experiment_end_to_end(tmp_path):
    funnel = load_experiment()
    out = tmp_path / "out"
    summary = funnel.main(["--size", "small", "--n-data", "300", "--n-steps", "800",
                           "--record-every", "4", "--n-grid", "9", "--ranks", "1", "16",
                           "--output-dir", str(out), "--no-progress",
                           "--figure-copy", str(tmp_path / "copy.png")])
    opt = summary["optimisation"]
    assert opt["converged"] and opt["gradient_norm"] <= 1e-3
    assert opt["train_accuracy"] > 0.9
    s = summary["sampling"]
    assert s["kinetic_temperature"] == pytest.approx(1.0, abs=0.05)
    c = summary["covariance"]
    assert c["eigenvalue_rank1"] >= c["eigenvalue_rank2"] > 0
    land = summary["landscape"]
    assert land["loss_at_centre"] == pytest.approx(opt["mean_loss"], rel=1e-10)
    assert land["wide_loss_range"][1] > land["zoom_loss_range"][1]
    for name in ("mnist_funnel_landscape", "mnist_funnel_accuracy", "mnist_funnel_sampling"):
        for ext in ("png", "pdf"):
            assert (out / f"{name}.{ext}").stat().st_size > 5_000
    assert (tmp_path / "copy.png").stat().st_size > 5_000
    with h5py.File(out / "mnist_funnel.h5", "r") as f:
        for group in ("wide", "zoom"):
            for key in ("xcoordinates", "ycoordinates", "train_loss", "train_acc",
                        "direction_indices", "eigenvalues", "centre"):
                assert key in f[group]
            assert f[group]["train_loss"].shape == (9, 9)
            assert list(f[group]["direction_indices"][()]) == [1, 16]
        assert "trajectory" in f["optimisation"]
    assert json.loads((out / "summary.json").read_text())["settings"]["size"] == "small"
    text = funnel.format_summary(summary)
    assert "kinetic temp" in text and "|∇U(θ*)|" in text
