"""``thermo landscape``: U(θ) on a 1-D or 2-D grid of directions through a point.

The grid points are ``θ_c + a u (+ b v)`` for ``a, b`` in
``[-extent, extent]`` (``--grid-points`` values each), with directions

* ``random``: Gaussian vectors (seeded by ``--seed``), orthonormalised;
* ``pca``: the leading principal axes of a trajectory (``--trajectory-file``:
  a run directory, ``trajectory.h5`` or a TATi trajectory CSV), centred at
  ``--theta`` or, if not given, at the trajectory mean;
* a ``.npy`` file with one direction per row (orthonormalised).

Output: ``landscape.csv`` (columns ``a`` [, ``b``], ``energy`` [, ``accuracy``]),
``directions.npy`` (rows u [, v]), ``centre.npy`` and ``figures/landscape.png``.
"""
from __future__ import annotations

import os

from thermo.cli.main import CommandError

__all__ = ["main", "orthonormal"]


def orthonormal(vectors):
    """Orthonormalise the rows of ``vectors`` (Gram-Schmidt via QR).

    Parameters
    ----------
    vectors : ndarray, shape (k, d)

    Returns
    -------
    ndarray, shape (k, d)
    """
    import numpy as np

    q, r = np.linalg.qr(np.asarray(vectors, dtype=np.float64).T)
    if np.any(np.abs(np.diag(r)) < 1e-12):
        raise CommandError("the landscape directions are linearly dependent")
    return np.ascontiguousarray((q * np.sign(np.diag(r))).T)


def _trajectory(path, max_points=2000):
    from thermo.cli.analysis import load_input

    data = load_input({"input": path, "run_file": None, "burn_in": 0, "every": 1,
                       "walker": -1})
    if data.theta is None:
        raise CommandError(f"--trajectory-file {path} holds no trajectory")
    return data.theta(max_points=max_points)[2]


def main(flags):
    """Run ``thermo landscape``.

    Parameters
    ----------
    flags : dict
        Options given on the command line (see :mod:`thermo.cli.options`).

    Returns
    -------
    int
        Exit status.
    """
    import numpy as np

    from thermo.cli.common import (build_model, initial_theta, load_theta, make_output_dir,
                                   parse_flags, prepare_output_dir, set_threads)

    context = parse_flags("landscape", flags)
    options = context.options
    output = options["output"]
    spec = options["directions"]
    if spec == "pca" and options["trajectory_file"] is None:
        raise CommandError("--directions pca needs --trajectory-file")
    if spec not in ("random", "pca") and not spec.endswith(".npy"):
        raise CommandError(f"--directions {spec!r}: expected random, pca or a .npy file")
    prepare_output_dir(output, overwrite=options["overwrite"])
    set_threads(options["threads"])
    potential, net, X, y, description = build_model(options, context)
    d, dtype = potential.dimension, potential.dtype
    k = options["dimensions"]
    if k > d:
        raise CommandError(f"--dimensions {k} exceeds the {d} parameters")
    centre = None
    if options["theta"] is not None:
        centre = load_theta(options["theta"], d, dtype, name="--theta").astype(np.float64)
    if spec == "random":
        rng = np.random.default_rng(options["seed"])
        directions = orthonormal(rng.standard_normal((k, d)))
    elif spec == "pca":
        if options["trajectory_file"] is None:
            raise CommandError("--directions pca needs --trajectory-file")
        if not os.path.exists(options["trajectory_file"]):
            raise CommandError(f"--trajectory-file {options['trajectory_file']} does not exist")
        trajectory = np.asarray(_trajectory(options["trajectory_file"]), dtype=np.float64)
        if trajectory.shape[1] != d:
            raise CommandError(f"--trajectory-file has {trajectory.shape[1]} parameters, "
                               f"the model {d}")
        if trajectory.shape[0] <= k:
            raise CommandError(f"--trajectory-file has {trajectory.shape[0]} records; need "
                               f"more than {k}")
        from thermo.analysis.covariance import principal_components

        directions = orthonormal(principal_components(trajectory, k=k).vectors.T)
        if centre is None:
            centre = trajectory.mean(axis=0)
    elif spec.endswith(".npy"):
        if not os.path.isfile(spec):
            raise CommandError(f"--directions file {spec} does not exist")
        try:
            raw = np.atleast_2d(np.load(spec, allow_pickle=False))
        except (OSError, ValueError) as error:
            raise CommandError(f"--directions: cannot read {spec}: {error}") from None
        if raw.ndim != 2 or raw.shape != (k, d) or raw.dtype.kind != "f":
            raise CommandError(f"--directions {spec} must hold {k} float rows of {d} values, "
                               f"got {raw.dtype} {raw.shape}")
        if not np.all(np.isfinite(raw)):
            raise CommandError(f"--directions {spec} contains NaN or inf")
        directions = orthonormal(raw)
    else:
        raise CommandError(f"--directions {spec!r}: expected random, pca or a .npy file")
    if centre is None:
        centre = initial_theta(options, net, d, dtype, options["seed"]).astype(np.float64)
    n = options["grid_points"]
    axis = np.linspace(-options["extent"], options["extent"], n)
    axes = [axis] * k
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, k)
    energies = np.empty(mesh.shape[0])
    accuracies = np.empty(mesh.shape[0]) if net is not None else None
    progress = context.progress(mesh.shape[0], unit="point")
    for i, coefficients in enumerate(mesh):
        theta = (centre + coefficients @ directions).astype(dtype)
        energies[i] = potential.energy(theta)
        if accuracies is not None:
            accuracies[i] = potential.accuracy(theta)
        progress.update(1)
    progress.close()
    make_output_dir(output)
    from thermo.io.atomic import atomic_write
    from thermo.io.tables import write_table

    labels = ["a", "b"][:k]
    columns = [*labels, "energy"]
    table = [mesh, energies[:, None]]
    if accuracies is not None:
        columns.append("accuracy")
        table.append(accuracies[:, None])
    write_table(os.path.join(output, "landscape.csv"), columns, np.hstack(table))
    with atomic_write(os.path.join(output, "directions.npy")) as handle:
        np.save(handle, directions)
    with atomic_write(os.path.join(output, "centre.npy")) as handle:
        np.save(handle, centre)
    if options["figures"]:
        from thermo.cli.figures import landscape_figure

        values = energies.reshape((n,) * k)
        landscape_figure(context, output, axes, values, labels)
    finite = np.isfinite(energies)
    context.note(f"U on {mesh.shape[0]} points: min {energies[finite].min():.6g}, "
                 f"max {energies[finite].max():.6g}; wrote {output}/landscape.csv")
    return 0
