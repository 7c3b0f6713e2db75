"""Streaming and stored covariance, eigenpairs, projections."""
import numpy as np
import pytest
import scipy.sparse.linalg as spla

from thermo.analysis import (
    CovarianceAccumulator,
    covariance,
    eigendecomposition,
    principal_components,
    project,
)


@pytest.fixture
def samples():
    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((12, 12))
    return rng.standard_normal((3000, 12)) @ mixing + 5.0


def test_streaming_equals_np_cov(samples):
    acc = CovarianceAccumulator(12)
    for x in samples[:10]:  # one at a time
        acc.update(x)
    for chunk in np.array_split(samples[10:], 13):  # then in uneven batches
        acc.update(chunk)
    assert acc.count == samples.shape[0]
    np.testing.assert_allclose(acc.covariance(), np.cov(samples, rowvar=False),
                               rtol=0, atol=1e-10)
    np.testing.assert_allclose(acc.mean, samples.mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(covariance(samples), np.cov(samples, rowvar=False), atol=1e-10)
    np.testing.assert_allclose(covariance(samples, ddof=0),
                               np.cov(samples, rowvar=False, ddof=0), atol=1e-10)


def test_merged_accumulators_equal_one(samples):
    whole = CovarianceAccumulator(12).update(samples)
    parts = [covariance(chunk, accumulator=True) for chunk in np.array_split(samples, 5)]
    merged = parts[0].copy()
    for part in parts[1:]:
        merged.merge(part)
    np.testing.assert_allclose(merged.covariance(), whole.covariance(), atol=1e-10)
    total = parts[3] + parts[1] + parts[0] + parts[4] + parts[2]  # any order
    np.testing.assert_allclose(total.covariance(), whole.covariance(), atol=1e-10)
    assert merged.merge(CovarianceAccumulator(12)).count == whole.count
    with pytest.raises(ValueError, match="dimensions"):
        merged.merge(CovarianceAccumulator(3))
    with pytest.raises(ValueError, match="no samples"):
        CovarianceAccumulator(3).mean


def test_top_k_equals_eigh():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((400, 200))
    cov = covariance(a)
    full = eigendecomposition(cov)
    assert np.all(np.diff(full.values) <= 0)
    top = eigendecomposition(cov, k=10, method="lanczos")
    np.testing.assert_allclose(top.values, full.values[:10], rtol=1e-9)
    # Same vectors up to sign (fixed by convention, so equal).
    np.testing.assert_allclose(np.abs(top.vectors.T @ full.vectors[:, :10]), np.eye(10),
                               atol=1e-6)
    sub = eigendecomposition(cov, k=10, method="eigh")
    np.testing.assert_allclose(sub.values, full.values[:10], rtol=1e-10)
    operator = spla.aslinearoperator(cov)
    np.testing.assert_allclose(eigendecomposition(operator, k=5).values, full.values[:5],
                               rtol=1e-9)


@pytest.mark.parametrize("method", ["svd", "eigh", "lanczos"])
def test_principal_components_methods_agree(method):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((150, 60)) * np.linspace(3, 0.1, 60)
    ref = np.linalg.eigh(np.cov(x, rowvar=False))
    k = 6
    pc = principal_components(x, k=k, method=method)
    np.testing.assert_allclose(pc.values, ref[0][::-1][:k], rtol=1e-8)
    np.testing.assert_allclose(np.abs(pc.vectors.T @ ref[1][:, ::-1][:, :k]), np.eye(k),
                               atol=1e-6)


def test_principal_components_fewer_samples_than_dimensions():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 500))
    pc = principal_components(x)  # svd path, rank <= 29
    assert pc.values.shape == (30,)
    assert pc.values[-1] < 1e-20 * pc.values[0] + 1e-12
    with pytest.raises(ValueError, match="only 30"):
        principal_components(x, k=40, method="svd")


def test_project_and_distance_from_plane():
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.standard_normal((20, 2)))
    centre = rng.standard_normal(20)
    coords = rng.standard_normal((7, 2))
    offset = rng.standard_normal(20)
    offset -= q @ (q.T @ offset)  # orthogonal to the plane
    points = centre + coords @ q.T + offset
    c, dist = project(points, q * [2.0, 0.5], centre, residual=True)
    np.testing.assert_allclose(c, coords / [2.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(dist, np.linalg.norm(offset), rtol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        covariance(np.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        covariance(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="square"):
        eigendecomposition(np.ones((3, 4)))
    with pytest.raises(ValueError, match="k must be"):
        eigendecomposition(np.eye(4), k=9)
    with pytest.raises(ValueError, match="dimension 3"):
        CovarianceAccumulator(4).update(np.ones((2, 3)))
