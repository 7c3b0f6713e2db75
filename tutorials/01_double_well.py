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
# # Sampling a 2-D double well
#
# The first check of any sampler: a potential whose Boltzmann distribution is
# known exactly.  The double well
#
# $$
# U(x, y) = a\,(x^2 - 1)^2 + \tfrac{\kappa}{2}\,y^2
# $$
#
# has two minima at $x = \pm 1$ separated by a barrier of height $a$ at $x = 0$, and a
# harmonic transverse direction $y$.  Its distribution $\pi \propto e^{-\beta U}$
# factorises: the $x$-marginal is $\propto e^{-\beta a (x^2-1)^2}$ (a 1-D integral
# gives its normalisation) and $y$ is Gaussian with variance $1/(\beta\kappa)$.
#
# We sample it with BAOAB, compare the histograms with the exact marginals, and
# check the thermometers and error bars of the user guide.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import thermo
from thermo.analysis import integrated_autocorrelation_time, summarize
from thermo.potentials import DoubleWell

SMALL = os.environ.get("THERMO_TUTORIAL_SMALL", "") not in ("", "0")
OUTPUT = Path(os.environ.get("THERMO_TUTORIAL_OUTPUT", "tutorial_output"))
OUTPUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The potential and the sampler
#
# `copies=8` puts eight independent double wells into one θ of dimension 16
# (`θ = (x_1, y_1, x_2, y_2, ...)`), so one run gives eight independent chains.
# At β = 2 the barrier is $\beta a = 2$ thermal units high: walkers cross it often
# enough to sample both wells.

# %%
a, kappa, beta = 1.0, 4.0, 2.0
copies = 8
potential = DoubleWell(a=a, transverse_stiffness=kappa, copies=copies)
theta0 = np.tile([1.0, 0.0], copies)          # every copy starts in the right well

n_steps = 40_000 if SMALL else 1_000_000
run = thermo.sample(potential, "baoab", theta0=theta0, n_steps=n_steps, step_size=0.05,
                    beta=beta, friction=1.0, seed=1, record_every=5,
                    record_trajectory=True)
print(run)

# %% [markdown]
# ## Histograms against the exact marginals
#
# The trajectory has shape (records, 16); even columns are the $x_k$, odd
# columns the $y_k$.  We drop the first 10 % as burn-in and pool the copies.

# %%
burn = run.n_records // 10
x = run.trajectory[burn:, 0::2].ravel()
y = run.trajectory[burn:, 1::2].ravel()

grid = np.linspace(-2.0, 2.0, 801)
weight = np.exp(-beta * a * (grid ** 2 - 1.0) ** 2)
exact_x = weight / np.trapezoid(weight, grid)
exact_y = np.sqrt(beta * kappa / (2 * np.pi)) * np.exp(-0.5 * beta * kappa * grid ** 2)

fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
axes[0].hist(x, bins=80, range=(-2, 2), density=True, alpha=0.6, label="BAOAB")
axes[0].plot(grid, exact_x, "k-", label="exact")
axes[0].set_xlabel("x")
axes[0].set_ylabel("density")
axes[0].legend()
axes[1].hist(y, bins=80, range=(-2, 2), density=True, alpha=0.6, label="BAOAB")
axes[1].plot(grid, exact_y, "k-", label="exact")
axes[1].set_xlabel("y")
axes[1].legend()
fig.tight_layout()
fig.savefig(OUTPUT / "double_well_marginals.png", dpi=100)

# %% [markdown]
# ## Averages with error bars
#
# The exact $\langle x^2\rangle$ follows from the same 1-D integral and
# $\langle y^2\rangle = 1/(\beta\kappa)$.  Each copy is one chain; we compute
# the mean of $x^2$ with an error bar from the integrated autocorrelation time
# (in records) of the pooled-copy average, which is a series with the same
# correlation as one chain but eight times less variance.

# %%
exact_x2 = np.trapezoid(grid ** 2 * exact_x, grid)
per_record_x2 = (run.trajectory[burn:, 0::2] ** 2).mean(axis=1)
per_record_y2 = (run.trajectory[burn:, 1::2] ** 2).mean(axis=1)
estimate_x2 = summarize(per_record_x2, on_short="ignore")
estimate_y2 = summarize(per_record_y2, on_short="ignore")
print(f"<x^2> = {estimate_x2.mean:.4f} ± {estimate_x2.mcse_iat:.4f}  (exact {exact_x2:.4f}, "
      f"IAT {estimate_x2.tau:.1f} records)")
print(f"<y^2> = {estimate_y2.mean:.4f} ± {estimate_y2.mcse_iat:.4f}  "
      f"(exact {1 / (beta * kappa):.4f})")

# %% [markdown]
# ## Thermometers
#
# The kinetic temperature $|p|^2/d$ and the configurational temperature
# (here the Rugh estimator $\langle|\nabla U|^2\rangle/\langle\nabla^2 U\rangle$, since
# the analytic potentials provide a Laplacian) should both average to
# $1/\beta = 0.5$.

# %%
kinetic = summarize(run.observables["kinetic_temperature"][burn:], on_short="ignore")
print(f"kinetic temperature       {kinetic.mean:.4f} ± {kinetic.mcse_iat:.4f}  (1/β = {1 / beta})")
print(f"configurational temperature {run.configurational_temperature(discard=burn):.4f}")

# %% [markdown]
# ## How slow is the barrier crossing?
#
# The autocorrelation time of $x_1$ is dominated by the well-to-well hops; that of
# $y_1$ by the harmonic relaxation.  A long trace shows the hops.

# %%
tau_x = integrated_autocorrelation_time(run.trajectory[burn:, 0], on_short="ignore")
tau_y = integrated_autocorrelation_time(run.trajectory[burn:, 1], on_short="ignore")
print(f"IAT of x_1: {tau_x:.1f} records, of y_1: {tau_y:.1f} records")

steps = run.observables["step"]
fig, ax = plt.subplots(figsize=(9, 2.5))
ax.plot(steps, run.trajectory[:, 0], lw=0.5)
ax.set_xlabel("step")
ax.set_ylabel("$x_1$")
fig.tight_layout()
fig.savefig(OUTPUT / "double_well_trace.png", dpi=100)
print("figures written to", OUTPUT)
