"""Weak order of the schemes: bias of ⟨U⟩ on a double well against quadrature.

U(x) = (x² - 1)² at β = 1 (non-Gaussian, so that BAOAB is not exact); the
potential is a sum of many independent copies, so one run gives many
independent chains.  The bias b(h) = ⟨U⟩_h - ⟨U⟩ is fitted as c h^p on a
log-log scale: p ≈ 1 for SGLD and GLA1, p ≈ 2 for BAOAB and GLA2 (± 0.3).
Step-size ranges are where the leading term dominates for each scheme and
the bias is large against the Monte-Carlo error (checked in the test).  For
GLA1 the O(h) term grows with γ (for a harmonic well its θ-variance error is
-γh/2 relative), so it runs at γ = 2.
"""
import numpy as np
import pytest
from scipy.integrate import quad

import thermo
from thermo.potentials.analytic import DoubleWell

BETA = 1.0


def exact_mean_energy():
    weight = lambda x: np.exp(-BETA * (x * x - 1.0) ** 2)
    normalisation = quad(weight, -np.inf, np.inf)[0]
    return quad(lambda x: (x * x - 1.0) ** 2 * weight(x), -np.inf, np.inf)[0] / normalisation


def energy_bias(method, step_size, friction, copies, total_time, seed):
    """⟨U⟩ per copy (over time after 10% burn-in), mean over copies minus exact, and its error."""
    potential = DoubleWell(a=1.0, copies=copies)
    record_every = max(1, int(round(0.5 / step_size)))
    run = thermo.sample(potential, method, theta0=np.ones(copies),
                        n_steps=int(round(total_time / step_size)), step_size=step_size,
                        beta=BETA, friction=friction, seed=seed, record_every=record_every,
                        record_trajectory=True)
    x = run.trajectory[run.trajectory.shape[0] // 10:]
    per_chain = np.mean((x * x - 1.0) ** 2, axis=0)
    return per_chain.mean() - exact_mean_energy(), per_chain.std() / np.sqrt(copies)


def fitted_order(method, step_sizes, friction, copies, total_time, seed=0):
    biases, errors = zip(*(energy_bias(method, h, friction, copies, total_time, seed)
                           for h in step_sizes))
    biases, errors = np.array(biases), np.array(errors)
    for h, b, e in zip(step_sizes, biases, errors):
        print(f"{method} h={h}: bias {b:+.5f} ± {e:.5f}")
    # the fit is only meaningful if each bias is resolved and of one sign
    assert np.all(np.abs(biases) > 3 * errors), (biases, errors)
    assert np.all(np.sign(biases) == np.sign(biases[0]))
    slope = np.polyfit(np.log(step_sizes), np.log(np.abs(biases)), 1)[0]
    print(f"{method}: fitted order {slope:.3f}")
    return slope


def test_sgld_is_first_order():
    assert fitted_order("sgld", [0.005, 0.01, 0.02], 1.0, copies=2000,
                        total_time=100) == pytest.approx(1.0, abs=0.3)


def test_gla2_is_second_order_coarse():
    assert fitted_order("gla2", [0.1, 0.14, 0.2], 1.0, copies=2000,
                        total_time=100) == pytest.approx(2.0, abs=0.3)


@pytest.mark.slow
@pytest.mark.parametrize("method,step_sizes,friction,order,copies", [
    ("sgld", [0.005, 0.01, 0.02], 1.0, 1.0, 16_000),
    ("gla1", [0.0125, 0.025, 0.05], 2.0, 1.0, 16_000),
    ("gla2", [0.05, 0.075, 0.1, 0.15], 1.0, 2.0, 16_000),
    # BAOAB's bias at h = 0.1 is ~0.0009: with 16,000 copies (standard error
    # 0.00026, 3.5 errors) one seed in five fails the resolution check above
    # by chance; 160,000 copies (error 0.00008) resolve it by ~11 errors and
    # fit slopes 2.09 and 2.18 for seeds 0 and 1 (under 10 s)
    ("baoab", [0.1, 0.15, 0.2, 0.25], 1.0, 2.0, 160_000),
])
def test_weak_order(method, step_sizes, friction, order, copies):
    slope = fitted_order(method, step_sizes, friction, copies=copies, total_time=200)
    assert slope == pytest.approx(order, abs=0.3)
