"""Matplotlib figures for thermo's analyses.

Every function draws into ``ax`` when given one and otherwise creates a new
:class:`matplotlib.figure.Figure` (not registered with pyplot, so it works
headless and in threads); it returns the figure.  Save with
``fig.savefig("name.png")`` or :func:`save_figure` (PNG and PDF at once).
"""
from thermo.plotting.figures import (
    plot_autocorrelation,
    plot_embedding,
    plot_free_energy,
    plot_landscape,
    plot_landscape_panels,
    save_figure,
)

__all__ = ["plot_landscape", "plot_landscape_panels", "plot_embedding", "plot_free_energy",
           "plot_autocorrelation", "save_figure"]
