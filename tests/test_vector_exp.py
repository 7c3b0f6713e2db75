"""The softmax's vector exp (thermo.networks.vector_exp) against NumPy's exp."""
import numpy as np
import pytest
from numba import njit

from thermo.networks.vector_exp import UNDERFLOW, exp_below_max


@njit(cache=True)
def _apply(z, m):
    exp_below_max(z, m)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_within_one_ulp(dtype):
    rng = np.random.default_rng(3)
    # arguments across the whole range down to the cut, dense near 0 and
    # at the reduction's boundaries ±ln2/2
    x = np.concatenate([-np.abs(rng.normal(0, 30, 40000)), -rng.random(40000),
                        -np.log(2) / 2 + rng.normal(0, 1e-6, 4000),
                        -np.arange(1, 700) * np.log(2)])
    x = x[x >= UNDERFLOW[dtype.__name__]].astype(dtype)
    z = x.copy()
    _apply(z, dtype(0))
    # against exp in float64 (glibc's, itself within 1 ulp), in ulps of dtype:
    # float32's result is then measured against a near-exact value (NumPy's
    # own float32 exp is up to 2.3 ulp off it)
    expected = np.exp(x.astype(np.float64))
    ulps = np.abs(z - expected) / np.spacing(expected.astype(dtype)).astype(np.float64)
    assert ulps.max() <= 1.0
    assert ulps.mean() < 0.3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_shift_specials_and_cut(dtype):
    cut = UNDERFLOW[dtype.__name__]
    m = dtype(2.5)
    x = np.array([0.0, -0.0, -1e-30, cut + 0.5, cut - 0.5, -1e4, -np.inf, np.nan], dtype)
    z = (x + m).astype(dtype)
    _apply(z, m)
    assert z[0] == 1.0 and z[1] == 1.0 and z[2] == 1.0          # exp(0) exactly
    assert 0.0 < z[3] == pytest.approx(np.exp(np.float64(x[3])), rel=1e-6)
    assert z[4] == 0.0 and z[5] == 0.0 and z[6] == 0.0          # below the cut: 0
    assert np.isnan(z[7])                                        # NaN stays NaN
    assert not np.signbit(z[4:7]).any()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nan_is_not_lost_in_any_lane(dtype):
    lanes = 32 // np.dtype(dtype).itemsize
    for lane in range(2 * lanes):
        z = np.full(2 * lanes, -1.0, dtype)
        z[lane] = np.nan
        _apply(z, dtype(0))
        assert np.isnan(z[lane]) and np.isfinite(np.delete(z, lane)).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_padding_lanes_above_the_max_are_defined(dtype):
    # padding lanes can hold anything the forward read past the last class;
    # they must not turn into NaN or touch the real lanes
    z = np.array([-1.0, 0.0, 1e30, np.inf] * 2, dtype)
    _apply(z, dtype(0))
    assert np.isfinite(z).all()
    assert z[0] == pytest.approx(np.exp(-1.0), rel=1e-6) and z[1] == 1.0


def test_mnist_softmax_unchanged_beyond_rounding():
    # the sparse kernel's loss and gradient on an MNIST-like problem with
    # large logits (many terms underflow) agree with the reference to 1e-12
    from thermo.networks import fast_perceptron as fp
    from thermo.networks import sparse_perceptron as sp

    rng = np.random.default_rng(0)
    X = (rng.random((300, 50)) < 0.2) * rng.integers(0, 256, (300, 50)).astype(float)
    y = rng.integers(0, 10, 300)
    theta = rng.normal(0, 0.3, 50 * 10 + 10)
    l0, g0 = fp.reference_loss_grad(theta, X, y)
    l1, g1 = sp.sparse_loss_grad(theta, sp.to_sparse_rows(X), y)
    assert abs(l1 - l0) <= 1e-12 * abs(l0)
    assert np.abs(g1 - g0).max() <= 1e-12 * np.abs(g0).max()
