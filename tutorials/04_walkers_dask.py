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
# # Many walkers on a Dask LocalCluster
#
# Independent walkers are the simplest parallelism and the sharpest
# equilibration test: walkers started far apart must end up sampling the same
# distribution, which the split-R-hat measures ({doc}`/guide/equilibration`).
# thermo does not schedule work itself; its executors hand pure tasks to an
# engine — here a Dask `LocalCluster` of worker processes, the same code that
# talks to a Dask scheduler on a cluster ({doc}`/guide/walkers`).
#
# The system is the sign-symmetric network of the metadynamics tutorial: two
# equivalent minima θ* and Sθ*, distinguished by the sign of the output weight
# w₂.  Half of the walkers start in each.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import thermo
from thermo.analysis import ensemble_summary
from thermo.walkers.executors import DaskExecutor, InProcessExecutor

SMALL = os.environ.get("THERMO_TUTORIAL_SMALL", "") not in ("", "0")
OUTPUT = Path(os.environ.get("THERMO_TUTORIAL_OUTPUT", "tutorial_output"))
OUTPUT.mkdir(parents=True, exist_ok=True)
n_walkers = 4 if SMALL else 16
n_steps = 40_000 if SMALL else 1_000_000
workers = 2

# %% [markdown]
# ## One walker is one task
#
# A task must be a function the workers can unpickle.  Dask pickles functions
# defined in a script by value, so `walker` below works as it is; in a package
# you would put it in a module.  The task builds its potential itself (once per
# worker process), fixes Numba's thread count (reductions depend on it, so this
# makes every executor give the same numbers) and returns plain arrays.

# %%
_POTENTIAL = {}


def build_potential():
    """The sign-symmetric network's posterior (20 points, λ = 2)."""
    rng = np.random.default_rng(0)
    X = np.linspace(-2.0, 2.0, 20)[:, None]
    y = np.tanh(1.5 * X) + 0.05 * rng.normal(size=(20, 1))
    net = thermo.MLP([1, 1, 1], activation="tanh", loss="mse")
    return thermo.Posterior(net, X, y, prior_precision=2.0)


def walker(theta0, seed, beta, n_steps):
    """Run one BAOAB walker; returns (energy, w₂) per record."""
    import numba

    numba.set_num_threads(1)
    if "posterior" not in _POTENTIAL:
        _POTENTIAL["posterior"] = build_potential()
    run = thermo.sample(_POTENTIAL["posterior"], "baoab", theta0=theta0, n_steps=n_steps,
                        step_size=0.02, beta=beta, friction=1.0, seed=seed,
                        record_every=20, record_trajectory=True)
    return run.observables["energy"], run.trajectory[:, 2]


# %% [markdown]
# ## Run on the cluster
#
# Dask starts its worker processes with "spawn", which imports this script again
# in every worker; the `if __name__ == "__main__":` guards keep the workers from
# running the cells that start clusters (in a notebook `__name__` is
# `"__main__"`, so the cells run as usual).
#
# `DaskExecutor(workers=2)` starts a `LocalCluster` with two single-threaded
# worker processes (pass `scheduler="tcp://host:8786"` to use a running
# cluster instead).  `map` returns the results in the order of the arguments,
# whichever worker finished first.  We run all walkers at β = 1, where the
# barrier is about 11 kT, and at β = 0.3.

# %%
if __name__ == "__main__":
    potential = build_potential()
    theta_star = thermo.optimize(potential, "gd", theta0=np.array([1.5, 0.0, 1.0, 0.0]),
                                 n_steps=5000, learning_rate=0.01).theta
    flip = np.array([-1.0, -1.0, -1.0, 1.0])
    starts = [theta_star if k % 2 == 0 else flip * theta_star for k in range(n_walkers)]

    results = {}
    with DaskExecutor(workers=workers) as executor:
        for beta in (1.0, 0.3):
            tasks = [(starts[k], 100 + k, beta, n_steps) for k in range(n_walkers)]
            results[beta] = executor.map(walker, tasks)
        first_two = [(starts[k], 100 + k, 1.0, 2000) for k in range(2)]
        on_dask = executor.map(walker, first_two)

    on_this_process = InProcessExecutor().map(walker, first_two)
    identical = all(np.array_equal(a[1], b[1]) for a, b in zip(on_dask, on_this_process))
    print("Dask and in-process walkers identical bit for bit:", identical)

# %% [markdown]
# ## R-hat: which observable you test matters
#
# `ensemble_summary` takes one column per walker and returns per-walker
# estimates, the pooled mean with its error bar, and the split-R-hat.  The
# energy is the same in both basins (that is the symmetry), so its R-hat is close
# to 1 even when the walkers never leave their starting basin; the sign of w₂
# reveals it.  Test equilibration on the slow observables, not only on the loss.
#
# At β = 1 the pooled mean of w₂ is close to its exact value 0 only because half
# the walkers were started in each basin; the error bar from the per-walker
# autocorrelation times is far too small, because no walker ever visits the other
# basin.  The spread of the walker means (`mcse_between`) and R-hat show it, and
# `reliable` is False.

# %%
if __name__ == "__main__":
    for beta, outcome in results.items():
        energy = np.column_stack([e for e, _ in outcome])
        w2 = np.column_stack([w for _, w in outcome])
        burn = len(energy) // 10
        summary_energy = ensemble_summary(energy[burn:], on_short="ignore")
        summary_w2 = ensemble_summary(w2[burn:], on_short="ignore")
        print(f"β = {beta}: R-hat(U) = {summary_energy.rhat:.3f}, R-hat(w₂) = {summary_w2.rhat:.3f}, "
              f"<w₂> = {summary_w2.mean:.3f} ± {summary_w2.mcse:.3f} (within walkers) "
              f"± {summary_w2.mcse_between:.3f} (between walkers), "
              f"reliable: {summary_w2.reliable}")

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for ax, (beta, outcome) in zip(axes, results.items()):
        for energy, w2 in outcome:
            ax.plot(np.arange(1, len(w2) + 1) * 20, w2, lw=0.4)
        ax.set_title(f"β = {beta}")
        ax.set_xlabel("step")
    axes[0].set_ylabel("w₂ of each walker")
    fig.tight_layout()
    fig.savefig(OUTPUT / "walkers_w2.png", dpi=100)
    print("figures written to", OUTPUT)
