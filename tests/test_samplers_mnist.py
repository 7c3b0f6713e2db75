"""BAOAB on the full MNIST perceptron posterior (issue 3's end-to-end check).

Minibatch gradients (batch 100 of N = 60,000) heat the momenta.  The cached
force's noise ε enters p'' twice (the last B of one step and the first B of the
next), so p'' gains c²h²Var(ε) per step against a damping 1 - c² ≈ 2γh: the
kinetic temperature after the O step exceeds 1/β by about h·Var/(2γ) (β = 1),
with Var the per-coordinate variance of the ∇U estimate along the run.  At
γ = 100 that is ~2 % (measured 1.2-2.1 % over seeds 0-2, predicted 2.1-2.2 %);
at γ = 10 the same step gives 12 % too hot (measured), which is what CCAdL
corrects.
"""
import numpy as np
import pytest

import thermo
from thermo.data import load_mnist


@pytest.mark.slow
def test_baoab_on_the_mnist_perceptron_from_the_minimum():
    X, y = load_mnist("train")
    X_test, y_test = load_mnist("test")
    net = thermo.MLP([784, 10], loss="cross_entropy")
    posterior = thermo.Posterior(net, X, y, prior_precision=1.0, batch_size=100)
    minimum = thermo.optimize(posterior, "bb", theta0=np.zeros(net.n_params), n_steps=300)
    run = thermo.sample(posterior, "baoab", theta0=minimum.theta, n_steps=4000,
                        step_size=1e-4, beta=1.0, friction=100.0, seed=0, record_every=10,
                        record_trajectory=True)
    assert np.all(np.isfinite(run.trajectory))
    assert all(np.all(np.isfinite(values)) for values in run.observables.values())
    kinetic = run.observables["kinetic_temperature"][100:]
    rng = np.random.default_rng(1)
    variance = np.mean([posterior.energy_gradient_variance(theta, rng=rng)[2].mean()
                        for theta in run.trajectory[100::15]])
    heating = 1e-4 * variance / (2 * 100.0)           # h Var / (2 γ), see the docstring
    excess = kinetic.mean() - 1.0
    # the excess of one run scatters by ~0.005 between seeds (slow modes):
    # not hotter than the minibatch heating allows, and not cold
    assert -0.005 < excess < heating + 0.005, (excess, heating)
    posterior_mean = run.trajectory[100:].mean(axis=0)
    assert net.accuracy(posterior_mean, X_test, y_test) >= 0.90
