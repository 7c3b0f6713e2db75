"""Metadynamics on a diffusion-map CV across a permutation-symmetric barrier.

The network f(x) = w₂ tanh(w₁ x + b₁) + b₂ (one tanh hidden unit, θ = (w₁,
b₁, w₂, b₂)) is fitted by least squares to y = tanh(1.5 x) + noise, with a
Gaussian prior of precision λ = 2:

    U(θ) = Σ_i ½ (f(x_i; θ) − y_i)² + (λ/2) |θ|².

Because tanh is odd, the sign flip S: (w₁, b₁, w₂, b₂) → (−w₁, −b₁, −w₂, b₂)
leaves U unchanged, so U has two equivalent minima θ* and Sθ* (w₂ > 0 and
w₂ < 0).  Any path between them crosses w₁ = 0 or w₂ = 0, where the network
outputs a constant: the barrier is about 11 energy units.  At β = 1 (barrier
≈ 11 kT) unbiased BAOAB stays in its basin.

Protocol:

1. Unbiased BAOAB at β for ``n_steps`` steps: count basin crossings (sign of
   w₂ with hysteresis ±0.3).
2. Exploration at a higher temperature (β_explore = 0.5, barrier ≈ 5.5 kT),
   then a one-coordinate :class:`thermo.cv.DiffusionMapCV` fitted on those
   samples (it separates the two basins: its correlation with sign(w₂) is
   reported).
3. Well-tempered metadynamics at β along the diffusion coordinate for the same
   ``n_steps``: count crossings; free energy F(s) = −γ/(γ−1) V(s).  The basin
   free energies F_A, F_B = −kT log ∫_{basin} e^{−βF(s)} ds are split at the
   barrier top of F(s); by symmetry the exact ΔF = F_A − F_B is 0.  The same
   difference is also estimated by reweighting the samples
   (w = exp(β(V + W − c(t)))) with the basin defined by sign(w₂).

Run ``python experiments/metad_symmetric_network.py --size small`` (CI, a few
seconds after compilation) or ``--size full``.  Writes ``results.json`` and
``free_energy.png`` to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

SIZES = {
    "small": dict(n_steps=1_000_000, explore_steps=500_000, n_landmarks=300),
    "full": dict(n_steps=5_000_000, explore_steps=1_000_000, n_landmarks=500),
}
BETA = 1.0
BETA_EXPLORE = 0.5
STEP_SIZE = 0.02
FRICTION = 1.0
RECORD_EVERY = 10
EPSILON = 1.0


def make_problem(seed=0, n_data=20, prior_precision=2.0):
    """Data, network, posterior and one minimum θ* (with w₂ > 0)."""
    import thermo
    from thermo.networks import MLP
    from thermo.potentials import Posterior

    rng = np.random.default_rng(seed)
    X = np.linspace(-2.0, 2.0, n_data)[:, None]
    y = np.tanh(1.5 * X) + 0.05 * rng.normal(size=(n_data, 1))
    net = MLP([1, 1, 1], activation="tanh", loss="mse")
    potential = Posterior(net, X, y, prior_precision=prior_precision)
    theta_min = thermo.optimize(potential, "gd", theta0=np.array([1.5, 0.0, 1.0, 0.0]),
                                n_steps=5000, learning_rate=0.01).theta
    return potential, theta_min


def flip(theta):
    """The symmetry S: (w₁, b₁, w₂, b₂) → (−w₁, −b₁, −w₂, b₂)."""
    return np.asarray(theta) * np.array([-1.0, -1.0, -1.0, 1.0])


def count_crossings(w2, threshold=0.3):
    """Basin changes of sign(w₂), with hysteresis: a crossing needs |w₂| > threshold."""
    state = np.where(w2 > threshold, 1, np.where(w2 < -threshold, -1, 0))
    visited = state[state != 0]
    if visited.size == 0:
        return 0
    return int(np.count_nonzero(np.diff(visited) != 0))


def basin_free_energies(axis, free_energy, temperature):
    """F of the two basins of a 1-D profile, split at the barrier top between
    the lowest minimum on each side of the profile's centre of mass."""
    beta = 1.0 / temperature
    weight = np.exp(-beta * (free_energy - free_energy.min()))
    centre = np.sum(axis * weight) / np.sum(weight)
    left = np.flatnonzero(axis < centre)
    right = np.flatnonzero(axis >= centre)
    i = left[np.argmin(free_energy[left])]
    j = right[np.argmin(free_energy[right])]
    top = i + int(np.argmax(free_energy[i:j + 1]))
    f_a = -temperature * np.log(weight[:top].sum())
    f_b = -temperature * np.log(weight[top:].sum())
    return f_a, f_b, axis[top]


def run(size="small", seed=0, out=None, plot=True):
    """Run the experiment; returns a dict of the measured numbers."""
    import thermo
    from thermo.bias import Metadynamics
    from thermo.cv import DiffusionMapCV

    config = SIZES[size]
    n_steps = config["n_steps"]
    potential, theta_min = make_problem()
    temperature = 1.0 / BETA
    results = {"size": size, "seed": seed, "beta": BETA, "n_steps": n_steps,
               "barrier": potential.energy(np.array([0.0, 0.0, 0.0, 0.0])) - potential.energy(
                   theta_min),
               "symmetry_check": abs(potential.energy(theta_min)
                                     - potential.energy(flip(theta_min)))}
    started = time.perf_counter()
    plain = thermo.sample(potential, "baoab", theta0=theta_min, n_steps=n_steps,
                          step_size=STEP_SIZE, beta=BETA, friction=FRICTION, seed=seed,
                          record_every=RECORD_EVERY, record_trajectory=True)
    results["crossings_unbiased"] = count_crossings(plain.trajectory[:, 2])

    explore = thermo.sample(potential, "baoab", theta0=theta_min,
                            n_steps=config["explore_steps"], step_size=STEP_SIZE,
                            beta=BETA_EXPLORE, friction=FRICTION, seed=seed + 1,
                            record_every=20, record_trajectory=True)
    samples = explore.trajectory
    results["crossings_exploration"] = count_crossings(samples[:, 2])
    cv = DiffusionMapCV.fit(samples, n_coords=1, epsilon=EPSILON, alpha=0.5,
                            n_landmarks=config["n_landmarks"], seed=seed)
    values = cv(samples)[:, 0]
    results["epsilon"] = cv.epsilon
    results["cv_correlation_with_basin"] = float(
        abs(np.corrcoef(values, np.sign(samples[:, 2]))[0, 1]))

    lower, upper = values.min(), values.max()
    width = upper - lower
    sigma = 0.04 * width
    bias = Metadynamics(cv, height=0.5 * temperature, sigma=sigma, pace=100,
                        temperature=temperature, bias_factor=10.0,
                        grid=[(lower - 0.3 * width, upper + 0.3 * width,
                               int(np.ceil(1.6 * width / (sigma / 5))) + 1)],
                        walls=[(lower - 0.05 * width, upper + 0.05 * width)],
                        wall_kappa=1000.0 * temperature / width ** 2,
                        record_every=RECORD_EVERY, max_records=n_steps // RECORD_EVERY + 1,
                        max_hills=n_steps // 100 + 1)
    biased = thermo.sample(potential, "baoab", theta0=theta_min, n_steps=n_steps,
                           step_size=STEP_SIZE, beta=BETA, friction=FRICTION, seed=seed + 2,
                           record_every=RECORD_EVERY, record_trajectory=True, bias=bias)
    results["crossings_metadynamics"] = count_crossings(biased.trajectory[:, 2])
    results["crossing_ratio"] = results["crossings_metadynamics"] / max(
        results["crossings_unbiased"], 1)

    axis, free_energy = bias.free_energy()
    f_a, f_b, top = basin_free_energies(axis, free_energy, temperature)
    results["basin_free_energy_difference_kT"] = float((f_a - f_b) / temperature)
    results["barrier_position"] = float(top)
    # reweighting with the basins defined in parameter space (sign of w₂)
    colvar = bias.colvar()
    half = len(colvar["step"]) // 2
    log_w = colvar["weight_log"][half:]
    w = np.exp(log_w - log_w.max())
    w2 = biased.trajectory[half:, 2]
    results["reweighted_basin_difference_kT"] = float(
        -np.log(w[w2 > 0].sum() / w[w2 < 0].sum()))
    results["n_hills"] = bias.n_hills
    results["seconds"] = time.perf_counter() - started

    if out is not None:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "results.json"), "w") as handle:
            json.dump(results, handle, indent=2)
        bias.write_hills(os.path.join(out, "HILLS"))
        if plot:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            fig, axes = plt.subplots(1, 2, figsize=(10, 4))
            axes[0].plot(axis, free_energy / temperature)
            axes[0].axvline(top, ls=":", c="k")
            axes[0].set_xlabel("diffusion coordinate ψ₁")
            axes[0].set_ylabel("F / kT")
            axes[0].set_ylim(0, 15)
            axes[0].set_title(f"ΔF(basins) = {results['basin_free_energy_difference_kT']:.2f} kT")
            steps = np.arange(1, len(plain.trajectory) + 1) * RECORD_EVERY
            axes[1].plot(steps, plain.trajectory[:, 2], lw=0.5, label="unbiased")
            axes[1].plot(steps, biased.trajectory[:, 2], lw=0.5, label="metadynamics")
            axes[1].set_xlabel("step")
            axes[1].set_ylabel("w₂")
            axes[1].legend()
            fig.tight_layout()
            fig.savefig(os.path.join(out, "free_energy.png"), dpi=120)
            plt.close(fig)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/metad_symmetric_network")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    results = run(args.size, seed=args.seed, out=args.out, plot=not args.no_plot)
    for key, value in results.items():
        print(f"{key:36s} {value}")
    return results


if __name__ == "__main__":
    main()
