"""Collective variables: values, exact Jacobians, pydiffmap consistency."""
from typing import NamedTuple

import numpy as np
import pytest

from thermo.cv import (CV, DiffusionMapCV, Distance, Linear, LinearFeatureMap,
                       cv_value_gradient, register_cv)


def central_difference(f, theta, h):
    """Fourth-order central differences of a vector function f: R^d -> R^m."""
    columns = []
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        columns.append((-f(theta + 2 * e) + 8 * f(theta + e) - 8 * f(theta - e)
                        + f(theta - 2 * e)) / (12 * h))
    return np.array(columns).T


def relative_error(jacobian, reference):
    return np.abs(jacobian - reference).max() / np.abs(reference).max()


@pytest.fixture(scope="module")
def path_samples():
    """Noisy samples along a curved 2-D path between two clusters (connected data)."""
    rng = np.random.default_rng(7)
    t = np.concatenate([rng.normal(-1.0, 0.25, 160), rng.uniform(-1.0, 1.0, 80),
                        rng.normal(1.0, 0.25, 160)])
    x = np.stack([t, 0.4 * t ** 2], axis=1) + rng.normal(0.0, 0.08, (t.size, 2))
    return x


@pytest.fixture(scope="module")
def dmap_cv(path_samples):
    return DiffusionMapCV.fit(path_samples, n_coords=2, epsilon=0.02, n_landmarks=300, seed=3)


def test_linear_value_and_jacobian():
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(2, 5))
    centre = rng.normal(size=5)
    cv = Linear(directions, centre=centre)
    theta = rng.normal(size=5)
    values, jacobian = cv.value_and_jacobian(theta)
    np.testing.assert_allclose(values, directions @ (theta - centre), rtol=1e-13)
    np.testing.assert_array_equal(jacobian, directions)
    batch = rng.normal(size=(4, 5))
    np.testing.assert_allclose(cv(batch), (batch - centre) @ directions.T, rtol=1e-13)
    # float32 θ is accepted and evaluated in float64
    v32 = cv(theta.astype(np.float32))
    np.testing.assert_allclose(v32, directions @ (theta.astype(np.float32) - centre), rtol=1e-12)


def test_linear_validation():
    with pytest.raises(ValueError, match="centre"):
        Linear([[1.0, 2.0]], centre=[0.0])
    with pytest.raises(ValueError, match="NaN"):
        Linear([[np.nan, 1.0]])
    cv = Linear([[1.0, 2.0]])
    with pytest.raises(ValueError, match="shape"):
        cv(np.zeros(3))
    with pytest.raises(TypeError, match="float"):
        cv(np.zeros(2, dtype=np.int64))


def test_user_cv_registration_and_distance():
    with pytest.raises(TypeError, match="NamedTuple"):
        register_cv(dict, lambda *args: None)
    with pytest.raises(TypeError, match="not registered"):
        from collections import namedtuple
        CV(namedtuple("Unregistered", "x")(1), 3, 1)
    cv = Distance(np.array([1.0, -1.0, 0.5]), indices=[0, 2])
    theta = np.array([0.2, 3.0, -0.4])
    value, jacobian = cv.value_and_jacobian(theta)
    expected = np.hypot(0.2 - 1.0, -0.4 - 0.5)
    np.testing.assert_allclose(value, [expected], rtol=1e-14)
    fd = central_difference(cv, theta, 1e-3)
    assert relative_error(jacobian, fd) < 1e-9
    assert jacobian[0, 1] == 0.0


def test_dmap_reproduces_landmark_coordinates_and_pydiffmap(dmap_cv):
    cv = dmap_cv
    # dense Nyström on the landmarks gives back pydiffmap's coordinates
    np.testing.assert_allclose(cv(cv.landmarks), cv.landmark_coords, atol=1e-10 *
                               np.abs(cv.landmark_coords).max())
    np.testing.assert_allclose(cv.landmark_coords, cv.dmap.dmap * cv.signs, rtol=1e-12)
    # off the landmarks: μ ψ equals pydiffmap's Nyström transform (k = n, dense)
    rng = np.random.default_rng(1)
    points = cv.landmarks[rng.choice(len(cv.landmarks), 6)] + rng.normal(0, 0.05, (6, 2))
    mu = 1.0 + cv.epsilon * cv.eigenvalues
    np.testing.assert_allclose(cv(points) * mu, cv.dmap.transform(points) * cv.signs,
                               rtol=1e-9, atol=1e-12)
    # the leading coordinate separates the two ends of the path
    left = cv(np.array([-1.0, 0.4]))[0]
    right = cv(np.array([1.0, 0.4]))[0]
    assert abs(left - right) > 0.5 * np.ptp(cv.landmark_coords[:, 0])


@pytest.mark.parametrize("where", ["inside", "between", "edge", "outside"])
def test_dmap_gradient_matches_finite_differences(dmap_cv, where):
    cv = dmap_cv
    landmarks = cv.landmarks
    rng = np.random.default_rng({"inside": 0, "between": 1, "edge": 2, "outside": 3}[where])
    if where == "inside":
        points = landmarks[rng.choice(len(landmarks), 4)] + rng.normal(0, 0.03, (4, 2))
    elif where == "between":
        points = np.array([[0.0, 0.0], [0.3, 0.05], [-0.5, 0.1]])
    else:
        # extreme landmarks along x, pushed outwards by 0 or 2 kernel widths
        shift = 0.0 if where == "edge" else 2.0 * np.sqrt(cv.epsilon)
        extreme = [landmarks[np.argmin(landmarks[:, 0])], landmarks[np.argmax(landmarks[:, 0])],
                   landmarks[np.argmax(landmarks[:, 1])]]
        directions = [np.array([-1.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0])]
        points = np.array([p + shift * u for p, u in zip(extreme, directions)])
    h = 0.02 * np.sqrt(cv.epsilon)
    for theta in points:
        _, jacobian = cv.value_and_jacobian(theta)
        fd = central_difference(cv, theta, h)
        assert np.all(np.isfinite(jacobian))
        assert relative_error(jacobian, fd) < 1e-6, (where, theta)


def test_dmap_far_from_data_is_finite_and_saturates(dmap_cv):
    cv = dmap_cv
    far = np.array([400.0, -300.0])
    values, jacobian = cv.value_and_jacobian(far)
    assert np.all(np.isfinite(values)) and np.all(np.isfinite(jacobian))
    # far away the log-sum-exp weights select the landmark with the largest
    # log weight, so the CV equals that landmark's Φ/μ and is flat
    data = cv.kernel_data
    logits = data.log_weight - ((far - cv.landmarks) ** 2).sum(axis=1) / (4 * cv.epsilon)
    best = np.argmax(logits)
    assert np.sort(logits)[-2] < logits[best] - 50.0
    mu = 1.0 + cv.epsilon * cv.eigenvalues
    np.testing.assert_allclose(values, cv.landmark_coords[best] / mu, rtol=1e-12)
    assert np.abs(jacobian).max() < 1e-12


def test_dmap_with_pca_feature_map_chain_rule():
    rng = np.random.default_rng(4)
    d = 12
    # three informative directions, the rest small noise
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    t = np.concatenate([rng.normal(-1, 0.2, 150), rng.uniform(-1, 1, 60), rng.normal(1, 0.2, 150)])
    latent = np.stack([t, 0.3 * t ** 2 + rng.normal(0, 0.05, t.size),
                       rng.normal(0, 0.1, t.size)], axis=1)
    samples = latent @ basis[:3] + rng.normal(0, 0.01, (t.size, d)) + 0.5
    cv = DiffusionMapCV.fit(samples, n_coords=1, epsilon=0.02, n_landmarks=250,
                            features="pca", n_features=3, seed=0)
    assert cv.feature_map.n_features == 3
    np.testing.assert_allclose(cv.feature_map.projection @ cv.feature_map.projection.T,
                               np.eye(3), atol=1e-12)
    for theta in samples[[5, 170, 300]] + rng.normal(0, 0.02, (3, d)):
        _, jacobian = cv.value_and_jacobian(theta)
        fd = central_difference(cv, theta, 0.02 * np.sqrt(cv.epsilon))
        assert relative_error(jacobian, fd) < 1e-6
        # the gradient lies in the span of the feature directions
        projected = jacobian @ cv.feature_map.projection.T @ cv.feature_map.projection
        np.testing.assert_allclose(projected, jacobian, atol=1e-12 * np.abs(jacobian).max())
    # same CV evaluated through an explicit feature map
    fmap = LinearFeatureMap(cv.feature_map.projection, cv.feature_map.centre)
    np.testing.assert_allclose(fmap(samples[:3]), cv.feature_map(samples[:3]))


def test_dmap_sample_weights_follow_pydiffmap_weight_fxn(path_samples):
    rng = np.random.default_rng(5)
    weights = np.exp(rng.normal(0, 0.5, len(path_samples)))
    cv = DiffusionMapCV.fit(path_samples, n_coords=1, epsilon=0.02, n_landmarks=None,
                            sample_weights=weights)
    mu = 1.0 + cv.epsilon * cv.eigenvalues
    points = path_samples[:4] + 0.03
    np.testing.assert_allclose(cv(points) * mu, cv.dmap.transform(points) * cv.signs,
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cv(cv.landmarks), cv.landmark_coords, atol=1e-9)
    # constant weights change nothing
    plain = DiffusionMapCV.fit(path_samples, n_coords=1, epsilon=0.02, n_landmarks=None)
    uniform = DiffusionMapCV.fit(path_samples, n_coords=1, epsilon=0.02, n_landmarks=None,
                                 sample_weights=np.full(len(path_samples), 3.0))
    np.testing.assert_allclose(uniform(points), plain(points), rtol=1e-8)


def test_dmap_alignment_to_reference(path_samples, dmap_cv):
    other = DiffusionMapCV.fit(path_samples, n_coords=2, epsilon=0.02, n_landmarks=300, seed=11)
    flipped = other.transformed(scale=[-2.0, 1.0], shift=[0.3, 0.0])
    aligned = flipped.aligned_to(dmap_cv, path_samples)
    new = aligned(path_samples)[:, 0]
    old = dmap_cv(path_samples)[:, 0]
    assert np.corrcoef(new, old)[0, 1] > 0.95
    np.testing.assert_allclose(new.mean(), old.mean(), atol=1e-10)
    np.testing.assert_allclose(new.std(), old.std(), rtol=1e-10)
    # gradients of the aligned CV stay exact
    theta = np.array([0.1, 0.05])
    _, jacobian = aligned.value_and_jacobian(theta)
    fd = central_difference(aligned, theta, 0.02 * np.sqrt(aligned.epsilon))
    assert relative_error(jacobian, fd) < 1e-6


def test_dmap_validation(path_samples):
    with pytest.raises(ValueError, match="epsilon"):
        DiffusionMapCV.fit(path_samples, epsilon=-1.0)
    with pytest.raises(ValueError, match="shape"):
        DiffusionMapCV.fit(path_samples[:, 0])
    with pytest.raises(ValueError, match="n_features"):
        DiffusionMapCV.fit(path_samples, features="pca")
    with pytest.raises(ValueError, match="sample_weights"):
        DiffusionMapCV.fit(path_samples, sample_weights=np.zeros(len(path_samples)))


# --- vector-Jacobian products -------------------------------------------------

class JacobianOnlyData(NamedTuple):
    """Wraps another CV's data; registered with ``value_gradient`` only, so its
    VJP goes through the full Jacobian (the path of a plain user CV)."""
    inner: tuple


def jacobian_only_value_gradient(data, theta, values_out, jacobian_out):
    cv_value_gradient(data.inner, theta, values_out, jacobian_out)


register_cv(JacobianOnlyData, jacobian_only_value_gradient)


def jacobian_only(cv):
    return CV(JacobianOnlyData(cv.kernel_data), cv.dimension, cv.n_coords)


def _pca_dmap(n_features, n_coords, d=12, seed=4):
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    t = np.concatenate([rng.normal(-1, 0.2, 150), rng.uniform(-1, 1, 60),
                        rng.normal(1, 0.2, 150)])
    latent = np.stack([t, 0.3 * t ** 2 + rng.normal(0, 0.05, t.size),
                       rng.normal(0, 0.1, t.size)], axis=1)
    samples = latent @ basis[:3] + rng.normal(0, 0.03, (t.size, d)) + 0.5
    cv = DiffusionMapCV.fit(samples, n_coords=n_coords, epsilon=0.02, n_landmarks=250,
                            features="pca", n_features=n_features, seed=0)
    return cv, samples


def _vjp_cases(path_samples, dmap_cv):
    rng = np.random.default_rng(12)
    cases = {
        "linear": (Linear(rng.normal(size=(2, 9)), centre=rng.normal(size=9)),
                   rng.normal(size=(3, 9))),
        "distance": (Distance(rng.normal(size=5), indices=[0, 2, 3]), rng.normal(size=(3, 5))),
        "dmap": (dmap_cv, path_samples[[3, 150, 390]] + 0.02),
        "dmap_aligned": (dmap_cv.transformed(scale=[-2.5, 0.7], shift=[0.3, -1.0]),
                         path_samples[[10, 200]] - 0.01),
    }
    for k in (1, 3, 5, 10):     # rows of the feature map: blocks of 4, 2 and 1
        cv, samples = _pca_dmap(k, n_coords=2 if k != 1 else 1)
        cases[f"dmap_pca{k}"] = (cv, samples[[5, 170, 300]] + rng.normal(0, 0.02, (3, 12)))
    return cases


def test_vjp_matches_jacobian_transpose_cotangent(path_samples, dmap_cv):
    """Σ_k c_k ∂s_k/∂θ of the fast kernel path equals cᵀJ of the full Jacobian
    for every CV class (random cotangents), also through the Jacobian-only
    fallback that a CV registered with value_gradient alone gets."""
    from thermo.cv import has_vjp
    rng = np.random.default_rng(13)
    for name, (cv, points) in _vjp_cases(path_samples, dmap_cv).items():
        assert has_vjp(cv) == (name != "distance"), name
        fallback = jacobian_only(cv)
        assert not has_vjp(fallback)
        for theta in points:
            values, jacobian = cv.value_and_jacobian(theta)
            for _ in range(3):
                c = rng.normal(size=cv.n_coords) * 10.0 ** rng.uniform(-3, 3)
                expected = c @ jacobian
                scale = (np.abs(c) @ np.abs(jacobian)).max()
                assert scale > 0, name
                vjp = cv.vjp(theta, c)
                assert np.abs(vjp - expected).max() <= 1e-12 * scale, (name, theta)
                # the fallback is the former Jacobian path, bit for bit
                np.testing.assert_array_equal(fallback.vjp(theta, c), expected)
                # it adds to the gradient passed in, float32 included
                start = rng.normal(size=cv.dimension)
                total = cv.vjp(theta, c, gradient=start.copy())
                np.testing.assert_allclose(total, start + expected, rtol=0,
                                           atol=1e-12 * (scale + np.abs(start).max()))
                low = start.astype(np.float32)
                cv.vjp(theta, c, gradient=low)
                np.testing.assert_allclose(low, start + expected, rtol=1e-6,
                                           atol=1e-6 * scale)
            # the value of the fast path is the value of the Jacobian path
            np.testing.assert_array_equal(cv(theta), values)
            np.testing.assert_array_equal(fallback(theta), values)
        # a zero cotangent adds nothing
        np.testing.assert_array_equal(cv.vjp(points[0], np.zeros(cv.n_coords)), 0.0)


def test_vjp_validation_and_registration():
    cv = Linear([[1.0, 2.0]])
    with pytest.raises(ValueError, match="cotangent"):
        cv.vjp(np.zeros(2), [1.0, 2.0])
    with pytest.raises(ValueError, match="gradient"):
        cv.vjp(np.zeros(2), [1.0], gradient=np.zeros(3))
    with pytest.raises(ValueError, match="one point"):
        cv.vjp(np.zeros((2, 2)), [1.0])

    class HalfData(NamedTuple):
        unused: int
    with pytest.raises(TypeError, match="together"):
        register_cv(HalfData, jacobian_only_value_gradient,
                    value=lambda data, theta, values_out: None)


def _select(cv, coordinates, scale, shift):
    """A DiffusionMapCV keeping only ``coordinates`` of ``cv``, as a ψ + b."""
    data = cv.kernel_data
    m = len(coordinates)
    data = data._replace(coords=np.ascontiguousarray(data.coords[:, coordinates]),
                         inv_mu=data.inv_mu[coordinates].copy(),
                         scale=np.asarray(scale, float), shift=np.asarray(shift, float),
                         work_c=np.empty(m))
    return DiffusionMapCV(data, cv.dimension, epsilon=cv.epsilon, alpha=cv.alpha,
                          eigenvalues=cv.eigenvalues[coordinates])


def test_aligned_to_picks_the_matching_candidate(path_samples):
    """The reference follows the 3rd (m = 1) or the 4th and 2nd (m = 2) new
    coordinates: aligned_to finds them among all candidates, not the leading ones."""
    candidates = DiffusionMapCV.fit(path_samples, n_coords=5, epsilon=0.02, n_landmarks=300,
                                    seed=3)
    assert candidates.n_coords == 5
    for coordinates, scale, shift in [([2], [-1.7], [0.4]), ([3, 1], [2.0, -0.5], [0.0, 1.0])]:
        reference = _select(candidates, coordinates, scale, shift)
        aligned = candidates.aligned_to(reference, path_samples)
        assert aligned.n_coords == len(coordinates)
        assert aligned.alignment["candidates"] == tuple(coordinates)
        np.testing.assert_allclose(aligned.alignment["correlations"], np.sign(scale), atol=1e-12)
        assert aligned.alignment["candidate_correlations"].shape == (5, len(coordinates))
        np.testing.assert_allclose(aligned(path_samples), reference(path_samples),
                                   atol=1e-10 * np.abs(reference(path_samples)).max())
        np.testing.assert_array_equal(aligned.eigenvalues, candidates.eigenvalues[coordinates])
        # its force still is exact: VJP and Jacobian of the aligned CV agree
        theta = path_samples[17] + 0.01
        values, jacobian = aligned.value_and_jacobian(theta)
        c = np.arange(1.0, aligned.n_coords + 1.0)
        np.testing.assert_allclose(aligned.vjp(theta, c), c @ jacobian, rtol=0,
                                   atol=1e-12 * np.abs(jacobian).max())
    # restricted to the leading coordinate, the match is poor (what the
    # workflow's refit did before it fitted candidates)
    leading = DiffusionMapCV.fit(path_samples, n_coords=1, epsilon=0.02, n_landmarks=300, seed=3)
    poor = leading.aligned_to(_select(candidates, [2], [1.0], [0.0]), path_samples)
    assert poor.alignment["candidates"] == (0,)
    assert abs(poor.alignment["correlations"][0]) < 0.5
    with pytest.raises(ValueError, match="candidates"):
        leading.aligned_to(candidates, path_samples)
