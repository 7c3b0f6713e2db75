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
# # The MNIST funnel at small size
#
# Softmax regression on MNIST (a "perceptron": one weight layer, no hidden
# units) is the smallest network whose loss landscape shows the two features
# discussed in {doc}`/guide/landscape`: an exactly flat subspace that only a
# prior confines, and a funnel-shaped basin whose width the sampled covariance
# measures.  To run in seconds, this tutorial averages the 28×28 images down to
# 4×4 pixels (7×7 in the full-size run) and uses a few hundred training points.
#
# Steps: optimise to a minimum θ*, sample the posterior $\exp(-\beta U)$ around it
# with BAOAB, separate the exactly flat directions from those the data
# determine, and draw the landscape along the flattest data directions.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import thermo
from thermo.analysis import covariance_directions, landscape, principal_components, summarize
from thermo.data import load_mnist

SMALL = os.environ.get("THERMO_TUTORIAL_SMALL", "") not in ("", "0")
OUTPUT = Path(os.environ.get("THERMO_TUTORIAL_OUTPUT", "tutorial_output"))
OUTPUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Data and posterior
#
# `load_mnist` reads the MNIST files shipped in `data/mnist/` (checksummed);
# `subset` draws a seeded random subset.  Pixel values are in [0, 1].  We pool
# blocks of `factor × factor` pixels.  The potential is the total cross-entropy
# plus a Gaussian prior of precision λ,
# $U(\theta) = \sum_i \ell_i(\theta) + \frac\lambda2|\theta|^2$, sampled at β = 1 (the
# Bayesian posterior).

# %%
n_points, factor = (200, 7) if SMALL else (2000, 4)
X, y = load_mnist("train", subset=n_points, seed=0)
side = 28 // factor
X = X.reshape(len(X), side, factor, side, factor).mean(axis=(2, 4)).reshape(len(X), -1)
n_pixels = X.shape[1]

lam, beta = 1.0, 1.0
net = thermo.MLP([n_pixels, 10], loss="cross_entropy")
posterior = thermo.Posterior(net, X, y, prior_precision=lam)
print(f"{n_points} images of {side}x{side} pixels, {net.n_params} parameters")

# %% [markdown]
# ## Optimise, then sample
#
# Barzilai–Borwein gradient descent finds the minimum θ* of U (the MAP estimate).
# BAOAB then samples around it.  Both the kinetic and the configurational
# temperature should average to 1/β = 1.

# %%
optimum = thermo.optimize(posterior, "bb", theta0=net.init(seed=0), n_steps=300,
                          learning_rate=1e-3, record_trajectory=True)
theta_star = optimum.theta
u_star = posterior.energy(theta_star)
print(f"U(θ*) = {u_star:.2f}, training accuracy {net.accuracy(theta_star, X, y):.3f}")

n_steps = 20_000 if SMALL else 200_000
run = thermo.sample(posterior, "baoab", theta0=theta_star, n_steps=n_steps, step_size=0.05,
                    beta=beta, friction=1.0, seed=0, record_every=5,
                    record_trajectory=True)
burn = run.n_records // 10
trajectory = run.trajectory[burn:]
kinetic = summarize(run.observables["kinetic_temperature"][burn:], on_short="ignore")
configurational = summarize(run.observables["configurational_temperature"][burn:],
                            on_short="ignore")
print(f"kinetic temperature {kinetic.mean:.3f} ± {kinetic.mcse_iat:.3f}, "
      f"configurational {configurational.mean:.3f} ± {configurational.mcse_iat:.3f}")

# %% [markdown]
# ## The funnel in one number: equipartition
#
# The sampler does not sit at the minimum.  In a quadratic basin every one of the
# d directions holds $1/(2\beta)$ of energy on average, so
# $\langle U\rangle - U(\theta^*) \approx d/(2\beta)$: the higher the dimension, the
# further up the walls of the funnel the walker lives, because that is where the
# volume is.

# %%
energy = summarize(run.observables["energy"][burn:], on_short="ignore")
print(f"<U> - U(θ*) = {energy.mean - u_star:.1f} ± {energy.mcse_iat:.1f};  "
      f"d/(2β) = {net.n_params / (2 * beta):.1f}")

# %% [markdown]
# ## The exactly flat subspace
#
# Adding the same vector to the weights of all ten classes (one number per pixel,
# the same for every class) and the same number to all biases changes no softmax
# probability: $n_\text{pixels} + 1$ exactly flat directions.  A pixel that is zero
# in every image adds 9 more (its ten weights are all flat; one combination is
# already counted).  θ holds W (pixels × classes, row-major) and then b, so
# these directions are easy to write down.  Along them only the prior acts, and
# the posterior variance is exactly $1/(\beta\lambda)$.

# %%
zero_pixels = np.flatnonzero(X.max(axis=0) == 0.0)
vectors = []
for j in range(n_pixels):                      # shift of pixel j's weights in all classes
    v = np.zeros(net.n_params)
    v[10 * j:10 * j + 10] = 1.0
    vectors.append(v)
v = np.zeros(net.n_params)
v[10 * n_pixels:] = 1.0                        # shift of all biases
vectors.append(v)
for j in zero_pixels:                          # every weight of an always-zero pixel
    for k in range(10):
        v = np.zeros(net.n_params)
        v[10 * j + k] = 1.0
        vectors.append(v)
flat, _ = np.linalg.qr(np.array(vectors).T)
rank = np.linalg.matrix_rank(np.array(vectors))
flat = flat[:, :rank]
print(f"{rank} exactly flat directions ({n_pixels} + 1 + 9 × {len(zero_pixels)} zero pixels)")

# %% [markdown]
# The sampled variance along the flat directions should be 1/(βλ) = 1.  The
# remaining directions are confined by the data; we remove the flat subspace from
# the trajectory and diagonalise the covariance of what is left.  Its leading
# eigenvectors are the flattest directions *that the data determine*.

# %%
centred = trajectory - trajectory.mean(axis=0)
flat_variance = (centred @ flat).var(axis=0, ddof=1)
print(f"variance along flat directions: mean {flat_variance.mean():.3f} (exact {1 / (beta * lam)})")

data_part = trajectory - (centred @ flat) @ flat.T
pairs = principal_components(data_part)
data_values = pairs.values[: net.n_params - rank]
all_values = principal_components(trajectory).values

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.semilogy(np.arange(1, all_values.size + 1), all_values, ".", label="all directions")
ax.semilogy(np.arange(1, data_values.size + 1), data_values, ".",
            label="flat subspace removed")
ax.axhline(1 / (beta * lam), color="k", lw=0.8, label="1/(βλ), prior only")
ax.set_xlabel("eigenvalue rank")
ax.set_ylabel("covariance eigenvalue")
ax.legend()
fig.tight_layout()
fig.savefig(OUTPUT / "mnist_covariance_spectrum.png", dpi=100)

# %% [markdown]
# Two things to read off the spectrum.  The spectrum with the flat subspace removed
# has exactly as many eigenvalues fewer as there are flat directions; those had
# the prior-only variance 1/(βλ) (printed above).  And the posterior precision is the data curvature *plus* λ, so
# every exact covariance eigenvalue lies below 1/(βλ): the eigenvalues above the
# line are sampling noise.  A sample covariance of d dimensions from n
# effectively independent samples spreads its eigenvalues by a factor of about
# $(1 \pm \sqrt{d/n})^2$; with n = records / IAT only a few hundred here, the top
# of the spectrum is inflated.  Longer runs (the full-size run, or more walkers,
# see the Dask tutorial) shrink the spread.

# %% [markdown]
# ## The landscape: a flat and a stiff direction
#
# `landscape` evaluates U on the plane through θ* spanned by two eigenvectors of
# the data covariance: the leading one (flattest) and the last one (stiffest),
# here with `units="raw"`, i.e. both axes in the same units of θ.  The basin is
# a long, narrow valley: wide along the flat direction, narrow along the stiff
# one.  The optimiser's path (projected, in red) comes down the steep walls; the
# samples (grey) fill the valley up to the level where its volume balances the
# Boltzmann factor.
# (The full-size run, with more pixels and data, has a much wider spread of
# curvatures and a correspondingly narrower valley.)

# %%
stiff = data_values.size                       # the stiffest data direction
directions = covariance_directions(pairs, ranks=(1, stiff), units="raw")
half_width = 4.0 * np.sqrt(pairs.values[0])
surface = landscape(posterior, theta_star, directions, extent=half_width,
                    n_grid=31 if SMALL else 61)
samples_xy, _ = surface.add_trajectory("samples",
                                       trajectory[:: max(1, len(trajectory) // 2000)])
path_xy, _ = surface.add_trajectory("optimiser", optimum.trajectory)

fig, ax = plt.subplots(figsize=(5.5, 4.5))
levels = u_star + np.array([0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256])
contour = ax.contour(surface.xcoordinates, surface.ycoordinates, surface.energy.T,
                     levels=levels, cmap="viridis")
ax.clabel(contour, fmt=lambda v: f"{v - u_star:.1f}", fontsize=7)
ax.plot(samples_xy[:, 0], samples_xy[:, 1], ".", ms=1.5, color="0.4", alpha=0.5)
ax.plot(path_xy[:, 0], path_xy[:, 1], "r.-", ms=2, lw=0.8)
ax.set_xlim(-half_width, half_width)
ax.set_ylim(-half_width, half_width)
ax.set_aspect("equal")
ax.set_xlabel(f"eigenvector 1 (θ units)")
ax.set_ylabel(f"eigenvector {stiff} (θ units)")
ax.set_title("U − U(θ*) near the minimum", fontsize=9)
fig.tight_layout()
fig.savefig(OUTPUT / "mnist_landscape.png", dpi=100)
print("figures written to", OUTPUT)
