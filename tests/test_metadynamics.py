"""Metadynamics: grid vs exact hills, forces, convergence, restart, reweighting."""
import warnings
from typing import NamedTuple

import numpy as np
import pytest

import thermo
from thermo.bias import Metadynamics, reweighted_free_energy
from thermo.bias.base import _call_bias_energy_gradient
from thermo.cv import DiffusionMapCV, Linear, cv_value_gradient, register_cv
from thermo.potentials import DoubleWell, MuellerBrown

DW_GRID = [(-2.5, 2.5, 251)]


def dw_free_energy(s):
    f = 5.0 * (s ** 2 - 1.0) ** 2 + 0.5 * s
    return f - f.min()


def dw_bias(**options):
    settings = dict(height=0.5, sigma=0.1, pace=100, temperature=1.0, bias_factor=10.0,
                    grid=DW_GRID, walls=[(-1.8, 1.8)], wall_kappa=100.0)
    settings.update(options)
    return Metadynamics(Linear([[1.0]]), **settings)


def run_dw(bias, n_steps, seed, **options):
    return thermo.sample(DoubleWell(a=5.0, b=0.5), "baoab", theta0=np.array([-1.0]),
                         n_steps=n_steps, step_size=0.01, beta=1.0, friction=1.0, seed=seed,
                         bias=bias, **options)


def rms_error_below(s, f, cut=4.0):
    """RMS of F − F_exact where F_exact < cut, after the best constant shift."""
    exact = dw_free_energy(s)
    mask = exact < cut
    diff = f[mask] - exact[mask]
    return np.sqrt(np.mean((diff - diff.mean()) ** 2))


# --- grid, exact sum, forces ------------------------------------------------

def test_grid_bias_matches_exact_hill_sum_1d():
    bias = dw_bias()
    run_dw(bias, 20_000, seed=1, record_every=1000)
    assert bias.n_hills == 200
    s = np.linspace(-2.45, 2.45, 2001)
    v_grid, dv_grid = bias.bias_on_cv(s)
    v_exact, dv_exact = bias.bias_on_cv(s, exact=True)
    scale = np.abs(v_exact).max()
    assert scale > 1.0
    # cubic Hermite on a spacing of σ/5: error O((Δ/σ)^4) of the hill heights
    assert np.abs(v_grid - v_exact).max() < 1e-4 * scale
    assert np.abs(dv_grid - dv_exact).max() < 1e-3 * np.abs(dv_exact).max()
    # the force is the derivative of the interpolated bias (consistency)
    h = 1e-5
    v_plus, _ = bias.bias_on_cv(s + h)
    v_minus, _ = bias.bias_on_cv(s - h)
    np.testing.assert_allclose(dv_grid[:, 0], (v_plus - v_minus) / (2 * h),
                               atol=1e-6 * np.abs(dv_grid).max())


def test_grid_bias_matches_exact_hill_sum_2d():
    bias = Metadynamics(Linear(np.eye(2)), height=2.0, sigma=[0.1, 0.12], pace=50,
                        temperature=10.0, bias_factor=8.0,
                        grid=[(-1.7, 1.3, 151), (-0.6, 2.2, 141)])
    thermo.sample(MuellerBrown(), "baoab", theta0=MuellerBrown.MINIMA[0].copy(),
                  n_steps=10_000, step_size=0.003, beta=0.1, friction=5.0, seed=2,
                  record_every=1000, bias=bias)
    assert bias.n_hills == 200
    rng = np.random.default_rng(0)
    centres = bias.hills["centres"]
    s = centres[rng.integers(0, len(centres), 500)] + rng.normal(0, 0.1, (500, 2))
    v_grid, dv_grid = bias.bias_on_cv(s)
    v_exact, dv_exact = bias.bias_on_cv(s, exact=True)
    assert np.abs(v_grid - v_exact).max() < 1e-3 * np.abs(v_exact).max()
    assert np.abs(dv_grid - dv_exact).max() < 1e-2 * np.abs(dv_exact).max()
    h = 1e-5
    for k in range(2):
        e = np.zeros(2)
        e[k] = h
        fd = (bias.bias_on_cv(s + e)[0] - bias.bias_on_cv(s - e)[0]) / (2 * h)
        np.testing.assert_allclose(dv_grid[:, k], fd, atol=1e-6 * np.abs(dv_grid).max())


@pytest.mark.parametrize("n_coords", [1, 2])
def test_bias_force_is_chain_rule_through_diffusion_map_cv(n_coords):
    rng = np.random.default_rng(3)
    t = np.concatenate([rng.normal(-1, 0.25, 100), rng.uniform(-1, 1, 50),
                        rng.normal(1, 0.25, 100)])
    samples = np.stack([t, 0.5 * t ** 2 + rng.normal(0, 0.1, t.size)], axis=1)
    cv = DiffusionMapCV.fit(samples, n_coords=n_coords, epsilon=0.03, n_landmarks=None)
    values = cv(samples)
    grid = [(v.min() - 0.5 * np.ptp(v), v.max() + 0.5 * np.ptp(v), 301) for v in values.T]
    sigma = 0.05 * np.ptp(values, axis=0)
    bias = Metadynamics(cv, height=1.0, sigma=sigma, pace=1, temperature=1.0,
                        bias_factor=5.0, grid=grid)
    for step, theta in enumerate(samples[::10], start=1):
        bias.update(theta, step)
    assert bias.n_hills == len(samples[::10])
    for theta in samples[3::40] + 0.02:
        energy, gradient = bias.energy_and_gradient(theta)
        s, jacobian = cv.value_and_jacobian(theta)
        v, dv = bias.bias_on_cv(s[None, :])
        assert energy == pytest.approx(v[0], rel=1e-12)
        np.testing.assert_allclose(gradient, dv[0] @ jacobian, rtol=1e-12, atol=1e-14)
        # and it is the derivative of the bias energy along θ
        h = 1e-5
        fd = np.array([(bias.energy_and_gradient(theta + h * e)[0]
                        - bias.energy_and_gradient(theta - h * e)[0]) / (2 * h)
                       for e in np.eye(2)])
        np.testing.assert_allclose(gradient, fd, atol=1e-5 * max(1.0, np.abs(gradient).max()))


def test_exact_hill_sum_mode_in_the_kernel():
    grid_bias = dw_bias(pace=1)
    exact_bias = dw_bias(pace=1, interpolate=False)
    for step, x in enumerate([-1.0, -0.93, -1.07, -0.5, 0.2], start=1):
        grid_bias.update(np.array([x]), step)
        exact_bias.update(np.array([x]), step)
    # well-tempered heights see V from the exact sum instead of the grid
    np.testing.assert_allclose(exact_bias.hills["heights"], grid_bias.hills["heights"],
                               rtol=1e-6)
    for x in [-1.2, -0.97, -0.4, 0.11, 1.3]:
        energy, gradient = exact_bias.energy_and_gradient(np.array([x]))
        v, dv = exact_bias.bias_on_cv(np.array([x]), exact=True)
        assert energy == pytest.approx(v[0], rel=1e-12, abs=1e-14)
        assert gradient[0] == pytest.approx(dv[0, 0], rel=1e-12, abs=1e-14)


def test_bias_adds_to_float32_gradient():
    bias = dw_bias()
    bias.update(np.array([-1.0]), 100)
    gradient = np.full(1, 2.0, dtype=np.float32)
    theta = np.array([-0.95], dtype=np.float32)
    energy = _call_bias_energy_gradient(bias.kernel_data, theta, gradient)
    v, dv = bias.bias_on_cv(np.array([float(theta[0])]))
    assert energy == pytest.approx(v[0], rel=1e-12)
    assert gradient[0] == pytest.approx(2.0 + dv[0, 0], rel=1e-6)


def test_walls_are_harmonic_beyond_bounds():
    directions = np.array([[0.6, 0.8]])
    bias = Metadynamics(Linear(directions), height=1.0, sigma=0.1, pace=10,
                        grid=[(-3.0, 3.0, 121)], walls=[(-1.0, 2.0)], wall_kappa=7.0)
    for theta, excess in [(np.array([3.0, 0.0]), 1.8 - 2.0),
                          (np.array([-3.0, 1.0]), -1.0 + 1.0),
                          (np.array([-3.0, -1.0]), -2.6 + 1.0)]:
        excess = min(excess, 0.0) if excess < 0 else max(excess, 0.0)
        s = directions @ theta
        bound = 2.0 if s[0] > 2.0 else -1.0
        z = s[0] - bound if (s[0] > 2.0 or s[0] < -1.0) else 0.0
        energy, gradient = bias.energy_and_gradient(theta)
        assert energy == pytest.approx(0.5 * 7.0 * z * z, abs=1e-14)
        np.testing.assert_allclose(gradient, 7.0 * z * directions[0], atol=1e-14)
    np.testing.assert_allclose(bias.wall_on_cv([[2.5], [0.0], [-1.5]]),
                               [0.5 * 7 * 0.25, 0.0, 0.5 * 7 * 0.25])


# --- free energy, c(t), hills files -----------------------------------------

@pytest.mark.parametrize("bias_factor", [6.0, None])
def test_free_energy_from_bias_well_tempered_and_plain(bias_factor):
    bias = dw_bias(bias_factor=bias_factor, pace=1)
    points = [-1.0, -0.9, -1.0, 0.3, 1.0, 1.05, -1.0]
    for step, x in enumerate(points, start=1):
        bias.update(np.array([x]), step)
    s, f = bias.free_energy()
    v, _ = bias.bias_on_cv(s)
    factor = 1.0 if bias_factor is None else bias_factor / (bias_factor - 1.0)
    np.testing.assert_allclose(f, -factor * v - (-factor * v).min(), atol=1e-12)
    hills = bias.hills
    # well-tempered heights: h_i = w exp(−β V(s_i)/(γ − 1)), plain: w
    assert hills["heights"][0] == pytest.approx(0.5)
    if bias_factor is None:
        np.testing.assert_allclose(hills["heights"], 0.5)
    else:
        v_before = 0.5 * np.exp(-0.5 * ((-1.0 - (-1.0)) / 0.1) ** 2)
        v_before += hills["heights"][1] * np.exp(-0.5 * ((-1.0 + 0.9) / 0.1) ** 2)
        # third hill at −1.0 sees the first two
        assert hills["heights"][2] == pytest.approx(
            0.5 * np.exp(-v_before / (bias_factor - 1.0)), rel=1e-4)
    # c(t) against its definition on the grid
    vg = v / (1.0 if bias_factor is None else 1.0)
    if bias_factor is None:
        expected = np.log(np.mean(np.exp(vg)))
    else:
        expected = (np.log(np.sum(np.exp(vg * bias_factor / (bias_factor - 1))))
                    - np.log(np.sum(np.exp(vg / (bias_factor - 1)))))
    assert bias.c_t == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("bias_factor", [10.0, None])
def test_incremental_ct_equals_grid_sum(bias_factor):
    """c(t) is updated from running sums over each hill's window; it equals the
    definition on the whole grid after every hill (past the periodic resum at
    1024 hills, through the growth of max V, and for hills outside the grid)."""
    bias = Metadynamics(Linear(np.eye(2)), height=3.0, sigma=[0.1, 0.15], pace=1,
                        temperature=0.5, bias_factor=bias_factor,
                        grid=[(-1.0, 1.0, 81), (-1.5, 1.5, 101)], max_hills=2000)
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0.0, 0.2, (1100, 2)), [[5.0, 5.0], [0.9, -1.4]]])
    gamma = np.inf if bias_factor is None else bias_factor
    for step, theta in enumerate(points, start=1):
        bias.update(theta, step)
        if step % 97 == 0 or step > 1095:
            a = bias.core.grid[0].ravel() / bias.temperature
            b = a / gamma
            expected = (np.logaddexp.reduce(a) - np.logaddexp.reduce(b)) * bias.temperature
            assert bias.c_t == pytest.approx(expected, rel=1e-11, abs=1e-11), step


def test_hills_file_layout_round_trip_and_mismatch(tmp_path):
    bias = dw_bias(bias_factor=10.0, time_step=0.01)
    run_dw(bias, 2_000, seed=4, record_every=1000)
    path = tmp_path / "HILLS"
    bias.write_hills(path)
    lines = path.read_text().splitlines()
    assert lines[0] == "#! FIELDS time s1 sigma_s1 height biasf"
    first = np.array(lines[next(i for i, l in enumerate(lines) if not l.startswith("#"))].split(),
                     dtype=float)
    hills = bias.hills
    assert first[0] == pytest.approx(100 * 0.01)
    assert first[1] == hills["centres"][0, 0]
    assert first[2] == 0.1
    # PLUMED convention: file height = h γ/(γ − 1)
    assert first[3] == pytest.approx(0.5 * 10.0 / 9.0, rel=1e-15)
    assert first[4] == 10.0
    restored = dw_bias(bias_factor=10.0, time_step=0.01).load_hills(path)
    for key in ("step", "centres", "sigmas", "file_heights", "c_t"):
        np.testing.assert_array_equal(restored.hills[key], hills[key])
    np.testing.assert_array_equal(restored.core.grid, bias.core.grid)
    with pytest.raises(ValueError, match="biasf"):
        dw_bias(bias_factor=5.0).load_hills(path)
    with pytest.raises(ValueError, match="CVs"):
        Metadynamics(Linear(np.eye(2)), height=1.0, sigma=0.1, pace=10,
                     grid=[(-2, 2, 81), (-2, 2, 81)]).load_hills(path)


def test_restart_from_hills_file_and_state_is_bit_identical(tmp_path):
    n = 6_000
    whole = dw_bias(pace=50)
    run_whole = run_dw(whole, n, seed=5, record_every=10, record_trajectory=True)
    first = dw_bias(pace=50)
    run_first = run_dw(first, n // 2, seed=5, record_every=10, record_trajectory=True)
    path = tmp_path / "HILLS"
    first.write_hills(path)
    second = dw_bias(pace=50).load_hills(path)
    run_second = thermo.sample(DoubleWell(a=5.0, b=0.5), "baoab", n_steps=n // 2,
                               step_size=0.01, beta=1.0, friction=1.0, bias=second,
                               record_every=10, record_trajectory=True, state=run_first.state)
    np.testing.assert_array_equal(
        np.concatenate([run_first.trajectory, run_second.trajectory]), run_whole.trajectory)
    for key in ("step", "centres", "file_heights", "c_t"):
        np.testing.assert_array_equal(second.hills[key], whole.hills[key])
    np.testing.assert_array_equal(second.core.grid, whole.core.grid)
    assert second.c_t == whole.c_t


def test_add_hills_snapshot_restore_public_api():
    """Hills replayed with add_hills, or a snapshot restored, give the bias of
    the run that deposited them bit for bit, and the run continues identically."""
    n = 4_000
    whole = dw_bias(pace=50)
    run_whole = run_dw(whole, n, seed=6, record_every=10, record_trajectory=True)
    first = dw_bias(pace=50)
    run_first = run_dw(first, n // 2, seed=6, record_every=10, record_trajectory=True)
    hills = first.hills
    # (a) replay the hills into a small bias: its hill arrays grow
    replayed = dw_bias(pace=50, max_hills=3)
    assert replayed.add_hills(hills["centres"], hills["sigmas"], hills["file_heights"],
                              hills["step"]) is replayed
    assert replayed.n_hills == len(hills["step"]) == 40
    np.testing.assert_array_equal(replayed.core.grid, first.core.grid)
    np.testing.assert_array_equal(replayed.hills["c_t"], hills["c_t"])
    # (b) snapshot without hills: grid and c(t) only; hills deposited later are listed
    light = dw_bias(pace=50, max_hills=100).restore(first.snapshot())
    assert light.n_hills == 0 and light.n_deposited == 40 and light.c_t == first.c_t
    # (c) snapshot with hills: a full copy
    full = dw_bias(pace=50).restore(first.snapshot(include_hills=True))
    for bias in (replayed, light, full):
        bias.reserve(n // 2)
        run = thermo.sample(DoubleWell(a=5.0, b=0.5), "baoab", n_steps=n // 2,
                            step_size=0.01, beta=1.0, friction=1.0, bias=bias,
                            record_every=10, record_trajectory=True, state=run_first.state)
        np.testing.assert_array_equal(run.trajectory, run_whole.trajectory[n // 20:])
        np.testing.assert_array_equal(bias.core.grid, whole.core.grid)
        assert bias.c_t == whole.c_t
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # inherited hills are no "dropped" hills
        assert len(light.hills["step"]) == 40
        np.testing.assert_array_equal(light.hills["centres"], whole.hills["centres"][40:])
    for bias in (replayed, full):
        for key in ("step", "centres", "file_heights", "c_t"):
            np.testing.assert_array_equal(bias.hills[key], whole.hills[key])
    # the snapshot is a copy, and restore checks compatibility
    snap = whole.snapshot()
    snap["grid"][0, 0, 0] += 1.0
    assert whole.core.grid[0, 0, 0] != snap["grid"][0, 0, 0]
    with pytest.raises(ValueError, match="grid"):
        dw_bias(grid=[(-2.5, 2.5, 201)]).restore(snap)
    with pytest.raises(ValueError, match="bias factor"):
        dw_bias(bias_factor=5.0).restore(snap)
    with pytest.raises(TypeError, match="snapshot"):
        dw_bias().restore(None)
    with pytest.raises(ValueError, match="centres"):
        dw_bias().add_hills(np.zeros((2, 2)), 0.1, [1.0, 1.0])
    with pytest.raises(ValueError, match="sigmas"):
        dw_bias().add_hills([0.0, 0.1], -0.1, [1.0, 1.0])
    with pytest.raises(ValueError, match="file_heights"):
        dw_bias().add_hills([0.0, 0.1], 0.1, [1.0])
    with pytest.raises(ValueError, match="steps"):
        dw_bias().add_hills([0.0, 0.1], 0.1, [1.0, 1.0], steps=[0.5, 1])


# --- convergence --------------------------------------------------------------

def test_well_tempered_double_well_free_energy_300k_steps():
    errors = []
    for seed in range(3):
        bias = dw_bias()
        run_dw(bias, 300_000, seed=seed, record_every=10_000)
        s, f = bias.free_energy()
        errors.append(rms_error_below(s, f))
    assert max(errors) <= 0.6, errors


@pytest.mark.slow
def test_well_tempered_double_well_free_energy_1m_steps():
    errors = []
    for seed in range(5):
        bias = dw_bias()
        run_dw(bias, 1_000_000, seed=100 + seed, record_every=10_000)
        s, f = bias.free_energy()
        errors.append(rms_error_below(s, f))
    assert max(errors) <= 0.35, errors


def mueller_brown_energy(x, y):
    A = np.array([-200.0, -100.0, -170.0, 15.0])
    a = np.array([-1.0, -1.0, -6.5, 0.7])
    b = np.array([0.0, 0.0, 11.0, 0.6])
    c = np.array([-10.0, -10.0, -6.5, 0.7])
    x0 = np.array([1.0, 0.0, -0.5, -1.0])
    y0 = np.array([0.0, 0.5, 1.5, 1.0])
    return sum(A[k] * np.exp(a[k] * (x - x0[k]) ** 2 + b[k] * (x - x0[k]) * (y - y0[k])
                             + c[k] * (y - y0[k]) ** 2) for k in range(4))


def basin_free_energy_difference(axes, f, kt, box):
    """F(basin A) − F(basin B) of the two deep Müller–Brown minima (Voronoi cells)."""
    x, y = np.meshgrid(*axes, indexing="ij")
    minima = MuellerBrown.MINIMA
    label = np.argmin([(x - m[0]) ** 2 + (y - m[1]) ** 2 for m in minima], axis=0)
    inside = (x >= box[0]) & (x <= box[1]) & (y >= box[2]) & (y <= box[3])
    weight = np.exp(-(f - f.min()) / kt) * inside
    return -kt * np.log(weight[label == 0].sum() / weight[label == 1].sum())


@pytest.mark.slow
def test_mueller_brown_basin_free_energy_difference():
    kt = 10.0
    box = (-1.5, 1.1, -0.4, 2.0)
    errors = []
    for seed in range(3):
        bias = Metadynamics(Linear(np.eye(2)), height=2.0, sigma=0.05, pace=100,
                            temperature=kt, bias_factor=10.0,
                            grid=[(-1.7, 1.3, 151), (-0.6, 2.2, 141)],
                            walls=[(box[0], box[1]), (box[2], box[3])], wall_kappa=5000.0)
        thermo.sample(MuellerBrown(), "baoab", theta0=MuellerBrown.MINIMA[0].copy(),
                      n_steps=1_000_000, step_size=0.003, beta=1.0 / kt, friction=5.0,
                      seed=seed, record_every=10_000, bias=bias)
        axes, f = bias.free_energy()
        x, y = np.meshgrid(*axes, indexing="ij")
        exact = basin_free_energy_difference(axes, mueller_brown_energy(x, y), kt, box)
        errors.append(abs(basin_free_energy_difference(axes, f, kt, box) - exact) / kt)
    assert max(errors) <= 0.6, errors


def test_reweighting_recovers_unbiased_distributions():
    """Bias on x of a 2-D double well; reweight F(x) and the transverse ⟨y²⟩."""
    kappa = 4.0
    potential = DoubleWell(a=5.0, b=0.5, transverse_stiffness=kappa)
    bias = Metadynamics(Linear([[1.0, 0.0]]), height=0.5, sigma=0.1, pace=100,
                        temperature=1.0, bias_factor=10.0, grid=DW_GRID,
                        walls=[(-1.8, 1.8)], record_every=10, max_records=40_000)
    run = thermo.sample(potential, "baoab", theta0=np.array([-1.0, 0.0]), n_steps=400_000,
                        step_size=0.01, beta=1.0, friction=1.0, seed=8, bias=bias,
                        record_every=10, record_trajectory=True)
    colvar = bias.colvar()
    np.testing.assert_array_equal(colvar["step"], run.observables["step"])
    np.testing.assert_allclose(colvar["s"][:, 0], run.trajectory[:, 0], rtol=0, atol=0)
    np.testing.assert_allclose(colvar["bias"] + colvar["wall"], run.observables["bias_energy"],
                               rtol=1e-12, atol=1e-12)
    # the sampler's bias_weight_log observable is the kernel's β(V + W − c)
    np.testing.assert_array_equal(run.observables["bias_weight_log"], colvar["weight_log"])
    half = len(colvar["step"]) // 2
    log_w = colvar["weight_log"][half:]
    x = run.trajectory[half:, 0]
    y = run.trajectory[half:, 1]
    centres, f = reweighted_free_energy(x, log_w, bins=40, range=(-1.6, 1.6))
    exact = dw_free_energy(centres)
    mask = exact < 4.0
    diff = f[mask] - exact[mask]
    assert np.sqrt(np.mean((diff - diff.mean()) ** 2)) < 0.3
    w = np.exp(log_w - log_w.max())
    assert np.sum(w * y ** 2) / np.sum(w) == pytest.approx(1.0 / kappa, rel=0.1)
    # unweighted, the biased run is far from the Boltzmann x-distribution
    centres, f_biased = reweighted_free_energy(x, np.zeros_like(x), bins=40, range=(-1.6, 1.6))
    biased = f_biased[mask] - exact[mask]
    assert np.sqrt(np.mean((biased - biased.mean()) ** 2)) > 1.0


# --- bookkeeping and validation ----------------------------------------------

def test_update_recomputes_cv_when_theta_is_not_cached():
    bias = dw_bias(record_every=1, pace=1000)
    bias.update(np.array([0.37]), 1)        # no force evaluation at θ before
    colvar = bias.colvar()
    assert colvar["s"][0, 0] == pytest.approx(0.37)
    bias.energy_and_gradient(np.array([1.5]))
    bias.update(np.array([-0.2]), 2)        # cached θ differs: recomputed
    assert bias.colvar()["s"][1, 0] == pytest.approx(-0.2)


def test_hill_overflow_keeps_grid_and_warns():
    bias = dw_bias(max_hills=5, pace=10)
    run_dw(bias, 100, seed=0, record_every=100)
    assert bias.n_hills == 5
    assert bias.core.counts[1] == 10
    with pytest.warns(RuntimeWarning, match="max_hills"):
        bias.hills
    bias.reserve(1000)
    assert bias.core.hill_heights.size >= 5 + 1000 // 10
    run_dw(bias, 100, seed=1, record_every=100)
    assert bias.n_hills == 15


def test_validation():
    cv = Linear([[1.0]])
    good = dict(height=1.0, sigma=0.1, pace=10, grid=[(-1, 1, 41)])
    with pytest.raises(ValueError, match="bias_factor"):
        Metadynamics(cv, bias_factor=1.0, **good)
    with pytest.raises(ValueError, match="temperature"):
        Metadynamics(cv, temperature=0.0, **good)
    with pytest.raises(ValueError, match="spacing"):
        Metadynamics(cv, height=1.0, sigma=0.1, pace=10, grid=[(-1, 1, 5)])
    with pytest.raises(ValueError, match="grid"):
        Metadynamics(cv, height=1.0, sigma=0.1, pace=10)
    with pytest.raises(ValueError, match="pace"):
        Metadynamics(cv, height=1.0, sigma=0.1, pace=0, grid=[(-1, 1, 41)])
    with pytest.raises(ValueError, match="1 or 2"):
        Metadynamics(Linear(np.eye(3)), height=1.0, sigma=0.1, pace=1,
                     grid=[(-1, 1, 41)] * 3)
    with pytest.raises(TypeError, match="CV"):
        Metadynamics("x", **good)
    bias = Metadynamics(cv, temperature=2.0, **good)
    bias.check_beta(0.5)
    with pytest.raises(ValueError, match="beta"):
        bias.check_beta(1.0)


# --- workflow and experiments --------------------------------------------------

def _experiment(name):
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[1] / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_iterative_workflow_refits_aligns_and_reweights():
    from thermo.bias.workflow import iterative_metadynamics
    potential = DoubleWell(a=5.0, b=0.5, transverse_stiffness=4.0)
    result = iterative_metadynamics(potential, "baoab", np.array([-1.0, 0.0]), n_rounds=2,
                                    steps_per_round=150_000, exploration_steps=20_000,
                                    step_size=0.01, beta=1.0, friction=1.0, seed=0,
                                    record_every=20, n_landmarks=200, epsilon="sweep")
    assert len(result.runs) == 3 and len(result.cvs) == 2 and len(result.biases) == 2
    assert result.cvs[1] is not result.cvs[0]
    n = [len(run.trajectory) for run in result.runs]
    assert result.samples.shape == (sum(n), 2)
    np.testing.assert_array_equal(result.weight_log[:n[0]], 0.0)
    assert np.all(np.isfinite(result.weight_log))
    # the refitted CV is aligned with the first on the samples it was fitted on
    # (rounds 0 and 1): same mean and spread
    fitted = result.round_index < 2
    w = np.full(np.count_nonzero(fitted), 1.0 / np.count_nonzero(fitted))
    old = result.cvs[0](result.samples[fitted])[:, 0]
    new = result.cvs[1](result.samples[fitted])[:, 0]
    assert w @ new == pytest.approx(w @ old, rel=1e-8, abs=1e-10)
    spread_old = np.sqrt(w @ (old - w @ old) ** 2)
    spread_new = np.sqrt(w @ (new - w @ new) ** 2)
    assert spread_new == pytest.approx(spread_old, rel=1e-8)
    # the refit, fitted on both basins, separates them (the first CV, fitted on
    # basin A only, follows the soft transverse y there and saturates outside:
    # measured |corr(ψ, sign x)| 0.23 (first) and 0.95 (refit))
    x_all = result.samples[:, 0]
    assert abs(np.corrcoef(result.cvs[1](result.samples)[:, 0], np.sign(x_all))[0, 1]) > 0.9
    # both basins visited under the bias, and reweighting recovers F(x)
    x = result.samples[result.round_index > 0, 0]
    assert np.mean(x > 0) > 0.2 and np.mean(x < 0) > 0.2
    centres, f = result.reweighted_free_energy(result.samples[:, 0], bins=30,
                                               range=(-1.5, 1.5))
    exact = dw_free_energy(centres)
    mask = exact < 4.0
    diff = f[mask] - exact[mask]
    assert np.sqrt(np.mean((diff - diff.mean()) ** 2)) < 0.5


def _workflow_correlations(result):
    """|corr(ψ_r, sign x)| of every CV on all samples, and corr(ψ_{r−1}, ψ_r) on
    the samples ψ_r was fitted on (positive when the alignment fixed the sign)."""
    samples = result.samples
    sign = np.sign(samples[:, 0])
    separation = [abs(np.corrcoef(cv(samples)[:, 0], sign)[0, 1]) for cv in result.cvs]
    successive = []
    for r in range(1, len(result.cvs)):
        fitted = samples[result.round_index <= r]
        successive.append(np.corrcoef(result.cvs[r - 1](fitted)[:, 0],
                                      result.cvs[r](fitted)[:, 0])[0, 1])
    return separation, successive


@pytest.mark.slow
def test_workflow_refit_over_rounds():
    """Three biased rounds with two refits, three seeds: every biased round
    visits both basins (each holds > 10 % of its samples), and every refit CV
    separates the basins.

    The refit fits ``n_coords + 3`` candidate coordinates and keeps the one
    matching the old CV (|corr| ≥ 0.8), else the slowest along the last biased
    round.  |corr(ψ, sign x)| on all samples of the refit CVs (rounds 2, 3),
    measured for seeds 0/1/2: before (leading coordinate only) 0.958/0.858,
    0.930/0.882, 0.321/0.914; with candidates 0.956/0.857, 0.930/0.901,
    0.947/0.784 (seed 2's first refit keeps the second of 4 candidates, the
    slowest, as the old CV has no counterpart).  Threshold 0.7: the smallest value, 0.784,
    less a margin (seeds 3-5, not run here: before 0.08/0.15, 0.90/0.66,
    0.85/0.38; with candidates 0.96/0.43, 0.89/0.70, 0.85/0.77; see the
    workflow's ``refit_candidates``).  The first CV, fitted on basin A only, is not
    asserted (0.13-0.91)."""
    from thermo.bias.workflow import iterative_metadynamics
    potential = DoubleWell(a=5.0, b=0.5, transverse_stiffness=4.0)
    for seed in range(3):
        result = iterative_metadynamics(potential, "baoab", np.array([-1.0, 0.0]), n_rounds=3,
                                        steps_per_round=100_000, exploration_steps=20_000,
                                        step_size=0.01, beta=1.0, friction=1.0, seed=seed,
                                        record_every=20, n_landmarks=200, epsilon="sweep")
        for r in (1, 2, 3):
            x = result.samples[result.round_index == r, 0]
            assert np.mean(x > 0) > 0.1 and np.mean(x < 0) > 0.1, (seed, r, np.mean(x > 0))
        assert [refit["round"] for refit in result.refits] == [2, 3]
        for refit in result.refits:
            assert len(refit["candidates"]) == 1 and 0 <= refit["candidates"][0] < 4
            assert refit["matched"] == (abs(refit["correlations"][0]) >= 0.8)
        separation, _ = _workflow_correlations(result)
        assert min(separation[1:]) > 0.7, (seed, separation)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gla2", "overdamped", "ccadl", "sgld"])
def test_workflow_with_other_langevin_samplers(method):
    """Exploration, fit, bias, refit, bias again with each Langevin sampler."""
    from thermo.bias.workflow import iterative_metadynamics
    potential = DoubleWell(a=5.0, b=0.5, transverse_stiffness=4.0)
    result = iterative_metadynamics(potential, method, np.array([-1.0, 0.0]), n_rounds=2,
                                    steps_per_round=100_000, exploration_steps=20_000,
                                    step_size=0.01, beta=1.0, friction=1.0, seed=0,
                                    record_every=20, n_landmarks=200, epsilon="sweep")
    for r in (1, 2):
        x = result.samples[result.round_index == r, 0]
        assert np.mean(x > 0) > 0.1 and np.mean(x < 0) > 0.1, (r, np.mean(x > 0))
    assert result.bias.n_hills == 100_000 // 100
    separation, _ = _workflow_correlations(result)
    # the refit CV separates the basins; its quality is a property of the
    # refit (see test_workflow_refit_over_rounds), not of the sampler:
    # measured |corr(ψ_2, sign x)| for CCAdL, seeds 0/1/2: 0.727/0.900/0.854
    assert separation[1] > 0.6, separation


@pytest.mark.slow
def test_symmetric_network_experiment_small():
    results = _experiment("metad_symmetric_network").run("small", seed=0, out=None)
    assert results["symmetry_check"] < 1e-12
    assert results["cv_correlation_with_basin"] > 0.9
    assert results["crossings_metadynamics"] >= 10 * max(results["crossings_unbiased"], 1)
    # basins defined in parameter space (sign of w₂), reweighted: exact ΔF = 0
    assert abs(results["reweighted_basin_difference_kT"]) <= 0.3
    # the profile-based estimate (split at the barrier top of F(ψ₁)) is noisier
    assert abs(results["basin_free_energy_difference_kT"]) <= 0.6


@pytest.mark.slow
def test_mnist_experiment_small(tmp_path):
    results = _experiment("metad_mnist").run("small", seed=0, out=str(tmp_path))
    assert results["n_params"] == 7850
    assert results["n_hills"] > 0
    assert (tmp_path / "free_energy.png").exists() and (tmp_path / "HILLS").exists()
    assert np.isfinite(results["free_energy_span_kT"])


# --- vector-Jacobian force path -------------------------------------------------

class _JacobianOnlyData(NamedTuple):
    """Another CV's data, registered with value_gradient only: its bias force
    goes through the full Jacobian (the former path, and that of user CVs)."""
    inner: tuple


def _jacobian_only_value_gradient(data, theta, values_out, jacobian_out):
    cv_value_gradient(data.inner, theta, values_out, jacobian_out)


register_cv(_JacobianOnlyData, _jacobian_only_value_gradient)


def _gaussian_dmap_setup(features):
    """A 6-D Gaussian with a 2-D diffusion-map CV (on 5 PCA features or on θ)."""
    from thermo.potentials import Gaussian
    d = 6
    potential = Gaussian(np.zeros(d), covariance=np.diag([1.0, 0.6, 0.4, 0.3, 0.2, 0.1]))
    explore = thermo.sample(potential, "baoab", theta0=np.zeros(d), n_steps=6000,
                            step_size=0.05, beta=1.0, friction=1.0, seed=1, record_every=20,
                            record_trajectory=True)
    options = dict(features="pca", n_features=5) if features else {}
    cv = DiffusionMapCV.fit(explore.trajectory, n_coords=2, epsilon=1.0, n_landmarks=150,
                            **options)
    values = cv(explore.trajectory)
    lo, hi = values.min(axis=0), values.max(axis=0)
    width = hi - lo
    sigma = 0.1 * width
    grid = [(lo[k] - width[k], hi[k] + width[k], int(round(3 * width[k] / (sigma[k] / 4))) + 1)
            for k in range(2)]
    walls = [(lo[k] - 0.1 * width[k], hi[k] + 0.1 * width[k]) for k in range(2)]

    def bias_for(any_cv):
        return Metadynamics(any_cv, height=0.5, sigma=sigma, pace=10, temperature=1.0,
                            bias_factor=8.0, grid=grid, walls=walls, wall_kappa=50.0,
                            record_every=10, max_records=1000)
    return potential, cv, bias_for, explore.state.theta


@pytest.mark.parametrize("features", [True, False])
def test_vjp_force_path_matches_jacobian_path(features):
    """The bias force through the CV's vector-Jacobian product equals
    −∂V/∂s · ∂s/∂θ from the Jacobian, and metadynamics trajectories (hills,
    records, θ) agree with those of the same CV forced through the Jacobian."""
    from thermo.cv import CV, has_vjp
    potential, cv, bias_for, theta0 = _gaussian_dmap_setup(features)
    slow_cv = CV(_JacobianOnlyData(cv.kernel_data), cv.dimension, cv.n_coords)
    assert has_vjp(cv) and not has_vjp(slow_cv)
    fast, slow = bias_for(cv), bias_for(slow_cv)
    assert fast.core.work_jacobian.shape == (2, 0)
    assert slow.core.work_jacobian.shape == (2, cv.dimension)
    # rounding differences (≈1e-16) grow along a trajectory (≈1e-13 after 1000
    # steps, up to 1e-8 after 3000 over seeds 2-4): compare 1000 steps
    runs = [thermo.sample(potential, "baoab", theta0=theta0, n_steps=1000, step_size=0.05,
                          beta=1.0, friction=1.0, seed=2, record_every=10,
                          record_trajectory=True, bias=bias)
            for bias in (fast, slow)]
    assert fast.n_hills == 100
    scale = np.abs(runs[1].trajectory).max()
    np.testing.assert_allclose(runs[0].trajectory, runs[1].trajectory, rtol=0,
                               atol=1e-10 * scale)
    np.testing.assert_allclose(fast.hills["centres"], slow.hills["centres"], rtol=0,
                               atol=1e-10 * np.abs(slow.hills["centres"]).max())
    np.testing.assert_allclose(fast.colvar()["weight_log"], slow.colvar()["weight_log"],
                               rtol=1e-10, atol=1e-10)
    # force at points where V and the walls act: −∂(V + W)/∂s · ∂s/∂θ
    forced = 0
    for theta in runs[0].trajectory[::2]:
        energy, gradient = fast.energy_and_gradient(theta)
        s, jacobian = cv.value_and_jacobian(theta)
        v, dv = fast.bias_on_cv(s[None, :])
        wall = fast.wall_on_cv(s[None, :])[0]
        assert energy == pytest.approx(v[0] + wall, rel=1e-12, abs=1e-12)
        # the same CV through its Jacobian (grid of the other run: its hills
        # differ by the rounding differences above)
        slow_gradient = dv[0] @ slow_cv.value_and_jacobian(theta)[1]
        scale = np.abs(slow_gradient).max()
        if scale > 0:
            forced += 1
        if wall == 0.0:
            np.testing.assert_allclose(gradient, slow_gradient, rtol=0,
                                       atol=1e-12 * max(scale, 1e-300))
            np.testing.assert_allclose(gradient, dv[0] @ jacobian, rtol=0,
                                       atol=1e-12 * max(scale, 1e-300))
    assert forced > 25
