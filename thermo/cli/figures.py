"""PNG figures written by the subcommands (matplotlib, Agg backend).

Figures are a convenience: a failure to draw one is reported as a warning
and never fails the command.
"""
from __future__ import annotations

import os

__all__ = ["run_figures", "analysis_figures", "landscape_figure"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _directory(output):
    path = os.path.join(output, "figures")
    os.makedirs(path, exist_ok=True)
    return path


def _guard(context, what, function, *args):
    try:
        function(*args)
    except Exception as error:  # noqa: BLE001 - figures must never fail a run
        context.warn(f"could not draw {what}: {type(error).__name__}: {error}")


def run_figures(context, output, metad=False):
    """Traces of the observables (and the free energy of a metadynamics run).

    Parameters
    ----------
    context : thermo.cli.common.Context
    output : str
        Run directory.
    metad : bool
        Also plot ``free_energy.csv``.
    """
    _guard(context, "observables.png", _observables, output)
    if metad:
        _guard(context, "free_energy.png", _free_energy_file, output,
               os.path.join(output, "free_energy.csv"))


def _observables(output):
    import numpy as np

    from thermo.io.tables import read_table

    columns, values = read_table(os.path.join(output, "observables.csv"))
    if values.shape[0] == 0:
        return
    names = [c for c in ("energy", "kinetic_temperature", "configurational_temperature",
                         "bias_energy", "gradient_norm", "accuracy") if c in columns]
    names = [n for n in names if np.isfinite(values[:, columns.index(n)]).any()]
    if not names:
        return
    plt = _pyplot()
    figure, axes = plt.subplots(len(names), 1, figsize=(7, 1.8 * len(names) + 0.5),
                                sharex=True, squeeze=False)
    step = values[:, columns.index("step")]
    walker = values[:, columns.index("walker")] if "walker" in columns else None
    for axis, name in zip(axes[:, 0], names):
        column = values[:, columns.index(name)]
        if walker is None:
            axis.plot(step, column, lw=0.8)
        else:
            for w in np.unique(walker):
                mask = walker == w
                axis.plot(step[mask], column[mask], lw=0.8, label=f"walker {int(w)}")
        axis.set_ylabel(name, fontsize=8)
    axes[-1, 0].set_xlabel("step")
    figure.tight_layout()
    figure.savefig(os.path.join(_directory(output), "observables.png"), dpi=100)
    plt.close(figure)


def _free_energy_file(output, path):
    from thermo.io.tables import read_table

    columns, values = read_table(path)
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5, 3.5))
    if len(columns) == 2:
        axis.plot(values[:, 0], values[:, 1])
        axis.set_xlabel(columns[0])
        axis.set_ylabel("F")
    else:
        import numpy as np

        x = np.unique(values[:, 0])
        y = np.unique(values[:, 1])
        f = values[:, 2].reshape(x.size, y.size)
        mesh = axis.contourf(x, y, f.T, levels=30)
        figure.colorbar(mesh, ax=axis, label="F")
        axis.set_xlabel(columns[0])
        axis.set_ylabel(columns[1])
    figure.tight_layout()
    figure.savefig(os.path.join(_directory(output), "free_energy.png"), dpi=100)
    plt.close(figure)


def analysis_figures(context, output, results):
    """Figures of ``thermo analyse`` results.

    Parameters
    ----------
    context : thermo.cli.common.Context
    output : str
    results : dict
        As assembled by :func:`thermo.cli.analysis.main_analyse`.
    """
    if "pca" in results:
        _guard(context, "pca.png", _pca, output, results["pca"])
    if "diffmap" in results:
        _guard(context, "diffmap.png", _diffmap, output, results["diffmap"])
    if "free-energy" in results:
        _guard(context, "free_energy.png", _profile, output, results["free-energy"])


def _pca(output, pca):
    values, vectors, mean, steps, walkers, coordinates = pca
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].semilogy(range(1, len(values) + 1), values, "o-")
    axes[0].set_xlabel("index")
    axes[0].set_ylabel("covariance eigenvalue")
    if coordinates.shape[1] >= 2:
        axes[1].scatter(coordinates[:, 0], coordinates[:, 1], c=steps, s=3)
        axes[1].set_xlabel("pc1")
        axes[1].set_ylabel("pc2")
    else:
        axes[1].plot(steps, coordinates[:, 0], lw=0.8)
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("pc1")
    figure.tight_layout()
    figure.savefig(os.path.join(_directory(output), "pca.png"), dpi=100)
    plt.close(figure)


def _diffmap(output, diffmap):
    steps, walkers, result = diffmap
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5, 4))
    coordinates = result.coordinates
    if coordinates.shape[1] >= 2:
        axis.scatter(coordinates[:, 0], coordinates[:, 1], c=steps, s=3)
        axis.set_xlabel("dc1")
        axis.set_ylabel("dc2")
    else:
        axis.plot(steps, coordinates[:, 0], ".", ms=2)
        axis.set_xlabel("step")
        axis.set_ylabel("dc1")
    figure.tight_layout()
    figure.savefig(os.path.join(_directory(output), "diffmap.png"), dpi=100)
    plt.close(figure)


def _profile(output, free_energy):
    import numpy as np

    label, profile = free_energy
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5, 3.5))
    finite = np.isfinite(profile.free_energy)
    axis.errorbar(profile.centres[finite], profile.free_energy[finite],
                  yerr=np.nan_to_num(profile.error[finite]), fmt="o-", ms=3)
    axis.set_xlabel(label)
    axis.set_ylabel("F")
    figure.tight_layout()
    figure.savefig(os.path.join(_directory(output), "free_energy.png"), dpi=100)
    plt.close(figure)


def landscape_figure(context, output, axes, values, labels):
    """Line or contour plot of a loss landscape.

    Parameters
    ----------
    context : thermo.cli.common.Context
    output : str
    axes : list of ndarray
    values : ndarray
    labels : list of str
    """
    def draw():
        plt = _pyplot()
        figure, axis = plt.subplots(figsize=(5, 4))
        if len(axes) == 1:
            axis.plot(axes[0], values)
            axis.set_xlabel(labels[0])
            axis.set_ylabel("U")
        else:
            mesh = axis.contourf(axes[0], axes[1], values.T, levels=30)
            figure.colorbar(mesh, ax=axis, label="U")
            axis.set_xlabel(labels[0])
            axis.set_ylabel(labels[1])
        figure.tight_layout()
        figure.savefig(os.path.join(_directory(output), "landscape.png"), dpi=100)
        plt.close(figure)

    _guard(context, "landscape.png", draw)
