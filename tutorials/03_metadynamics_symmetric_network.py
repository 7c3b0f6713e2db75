# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # A diffusion-map CV and metadynamics on a symmetric network
#
# Hidden units of a network can be relabelled, and for odd activations such as
# tanh their signs flipped, without changing the function the network computes.
# Every minimum of the loss therefore has symmetric copies, separated by barriers.
# A sampler started in one copy stays there at low temperature, and averages over
# the run describe only one of several equivalent basins.
#
# This tutorial takes the smallest network with such a symmetry,
# $f(x) = w_2\tanh(w_1 x + b_1) + b_2$ with θ = (w₁, b₁, w₂, b₂), fitted by least
# squares to $y = \tanh(1.5x)$ + noise with a Gaussian prior.  The flip
# $S: (w_1, b_1, w_2, b_2) \mapsto (-w_1, -b_1, -w_2, b_2)$ leaves U unchanged, so
# U has two equivalent minima (w₂ > 0 and w₂ < 0).  Any path between them goes
# through a network whose output is constant.  We
#
# 1. show that plain BAOAB does not cross at β = 1,
# 2. learn a collective variable from a higher-temperature run with a diffusion
#    map ({doc}`/guide/diffusion_maps`),
# 3. run well-tempered metadynamics along it ({doc}`/guide/metadynamics`) and
#    check the free-energy difference of the two basins, which symmetry fixes at
#    exactly 0.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import thermo
from thermo.bias import Metadynamics
from thermo.cv import DiffusionMapCV

SMALL = os.environ.get("THERMO_TUTORIAL_SMALL", "") not in ("", "0")
OUTPUT = Path(os.environ.get("THERMO_TUTORIAL_OUTPUT", "tutorial_output"))
OUTPUT.mkdir(parents=True, exist_ok=True)
n_steps = 100_000 if SMALL else 2_000_000
explore_steps = 100_000 if SMALL else 500_000
n_landmarks = 200 if SMALL else 500

# %% [markdown]
# ## The network and its two minima
#
# `loss="mse"` is $\ell_i = \frac12 (f(x_i) - y_i)^2$; U is their sum over the 20
# points plus $(\lambda/2)|\theta|^2$ with λ = 2.

# %%
rng = np.random.default_rng(0)
X = np.linspace(-2.0, 2.0, 20)[:, None]
y = np.tanh(1.5 * X) + 0.05 * rng.normal(size=(20, 1))
net = thermo.MLP([1, 1, 1], activation="tanh", loss="mse")
potential = thermo.Posterior(net, X, y, prior_precision=2.0)

theta_star = thermo.optimize(potential, "gd", theta0=np.array([1.5, 0.0, 1.0, 0.0]),
                             n_steps=5000, learning_rate=0.01).theta
flip = np.array([-1.0, -1.0, -1.0, 1.0])
print("θ* =", np.round(theta_star, 3))
print(f"U(θ*) = {potential.energy(theta_star):.4f}, U(Sθ*) = {potential.energy(flip * theta_star):.4f}")
barrier = potential.energy(np.zeros(4)) - potential.energy(theta_star)
print(f"U(0) - U(θ*) = {barrier:.2f} (the zero network outputs a constant: barrier scale)")


def crossings(w2, threshold=0.3):
    """Changes of basin (sign of w₂), with hysteresis ±threshold."""
    side = np.where(w2 > threshold, 1, np.where(w2 < -threshold, -1, 0))
    side = side[side != 0]
    return int(np.count_nonzero(np.diff(side))) if side.size else 0


# %% [markdown]
# ## Plain sampling stays in its basin

# %%
beta, step_size, friction = 1.0, 0.02, 1.0
plain = thermo.sample(potential, "baoab", theta0=theta_star, n_steps=n_steps,
                      step_size=step_size, beta=beta, friction=friction, seed=0,
                      record_every=10, record_trajectory=True)
print("basin crossings without bias:", crossings(plain.trajectory[:, 2]))

# %% [markdown]
# ## A diffusion-map CV from a hotter run
#
# At β = 0.5 the barrier is half as high in thermal units and the walker crosses.
# A one-coordinate diffusion map of these samples finds the slowest motion, the
# hopping between the basins.  `DiffusionMapCV.fit` fits it on `n_landmarks`
# samples and extends it smoothly to any θ, with an exact gradient, so that the
# sampler can be biased along it.

# %%
explore = thermo.sample(potential, "baoab", theta0=theta_star, n_steps=explore_steps,
                        step_size=step_size, beta=0.5, friction=friction, seed=1,
                        record_every=20, record_trajectory=True)
samples = explore.trajectory
print("basin crossings at β = 0.5:", crossings(samples[:, 2]))
cv = DiffusionMapCV.fit(samples, n_coords=1, epsilon=1.0, alpha=0.5,
                        n_landmarks=n_landmarks, seed=0)
values = cv(samples)[:, 0]
print(f"|correlation of ψ₁ with sign(w₂)| = {abs(np.corrcoef(values, np.sign(samples[:, 2]))[0, 1]):.3f}")

# %% [markdown]
# ## Well-tempered metadynamics along ψ₁
#
# Hills of height 0.5 kT every 100 steps, bias factor γ = 10, width 4 % of the
# CV's range; harmonic walls keep ψ₁ inside the bias grid.  `temperature` must
# be the sampler's kT.

# %%
temperature = 1.0 / beta
lower, upper = values.min(), values.max()
width = upper - lower
sigma = 0.04 * width
bias = Metadynamics(cv, height=0.5 * temperature, sigma=sigma, pace=100,
                    temperature=temperature, bias_factor=10.0,
                    grid=[(lower - 0.3 * width, upper + 0.3 * width,
                           int(np.ceil(1.6 * width / (sigma / 5))) + 1)],
                    walls=[(lower - 0.05 * width, upper + 0.05 * width)],
                    wall_kappa=1000.0 * temperature / width ** 2,
                    record_every=10, max_records=n_steps // 10 + 1,
                    max_hills=n_steps // 100 + 1)
biased = thermo.sample(potential, "baoab", theta0=theta_star, n_steps=n_steps,
                       step_size=step_size, beta=beta, friction=friction, seed=2,
                       record_every=10, record_trajectory=True, bias=bias)
print("basin crossings with metadynamics:", crossings(biased.trajectory[:, 2]))

# %% [markdown]
# ## Free energies two ways
#
# From the bias, $F(s) = -\frac{\gamma}{\gamma-1}V(s)$.  By reweighting, each
# sample carries $w = \exp(\beta(V + W - c(t)))$ (`colvar()["weight_log"]`), and
# the basin free-energy difference is $-k_BT\log(\sum_{w_2>0} w / \sum_{w_2<0} w)$,
# with the basins defined in parameter space.  Symmetry says 0; the size of the
# deviation says how converged the run is.

# %%
axis, free_energy = bias.free_energy()
colvar = bias.colvar()
half = len(colvar["step"]) // 2                   # discard the first half (bias still growing)
log_w = colvar["weight_log"][half:]
weights = np.exp(log_w - log_w.max())
w2 = biased.trajectory[half:, 2]
delta_f = -temperature * np.log(weights[w2 > 0].sum() / weights[w2 < 0].sum())
print(f"reweighted F(w₂>0) - F(w₂<0) = {delta_f / temperature:.2f} kT (exact 0)")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
axes[0].plot(axis, free_energy / temperature)
axes[0].set_xlabel("diffusion coordinate ψ₁")
axes[0].set_ylabel("F / kT")
axes[0].set_ylim(0, 15)
steps = plain.observables["step"]
axes[1].plot(steps, plain.trajectory[:, 2], lw=0.5, label="unbiased")
axes[1].plot(biased.observables["step"], biased.trajectory[:, 2], lw=0.5,
             label="metadynamics")
axes[1].set_xlabel("step")
axes[1].set_ylabel("w₂")
axes[1].legend()
fig.tight_layout()
fig.savefig(OUTPUT / "metad_free_energy.png", dpi=100)
bias.write_hills(OUTPUT / "HILLS")
print("figures written to", OUTPUT)
