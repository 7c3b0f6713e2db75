"""Figures: loss landscapes, diffusion-map embeddings, free energies, autocorrelations."""
from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_landscape", "plot_landscape_panels", "plot_embedding", "plot_free_energy",
           "plot_autocorrelation", "save_figure"]

_KINDS = ("contourf", "contour", "surface")
_QUANTITIES = {"train_loss": "loss", "train_acc": "accuracy", "energy": "U"}
_TRAJECTORY_COLOURS = ("tab:red", "white", "tab:orange", "magenta", "cyan")


def save_figure(fig, path, formats=("png", "pdf"), dpi=150):
    """Save ``fig`` as ``path`` with each extension in ``formats``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or path-like
        File name; an existing extension is replaced.
    formats : sequence of str, optional
        Extensions (default PNG and PDF).
    dpi : int, optional
        Resolution of raster formats.

    Returns
    -------
    list of str
        The files written.
    """
    stem = os.path.splitext(os.fspath(path))[0]
    written = []
    for ext in formats:
        name = f"{stem}.{ext}"
        fig.savefig(name, dpi=dpi, bbox_inches="tight")
        written.append(name)
    return written


def _surface_values(landscape, quantity, log):
    if quantity not in _QUANTITIES:
        raise ValueError(f"quantity must be one of {tuple(_QUANTITIES)}, got {quantity!r}")
    values = getattr(landscape, quantity)
    if values is None:
        raise ValueError(f"this landscape has no {quantity!r} surface")
    values = np.asarray(values, dtype=np.float64)
    label = _QUANTITIES[quantity]
    if log:
        finite = values[np.isfinite(values) & (values > 0)]
        if finite.size == 0:
            raise ValueError(f"log scale needs positive {label} values")
        values = np.log10(np.clip(values, finite.min(), None))
        label = f"log10 {label}"
    return values, label


def plot_landscape(landscape, ax=None, quantity="train_loss", kind="contourf", log=False,
                   levels=30, trajectories=True, colorbar=True, title=None, cmap="viridis"):
    """Draw one landscape surface.

    Parameters
    ----------
    landscape : thermo.analysis.Landscape
        The surface.
    ax : matplotlib Axes, optional
        Target axes (3-D axes for ``kind="surface"``); a new figure otherwise.
    quantity : {"train_loss", "train_acc", "energy"}, optional
        Surface to draw.
    kind : {"contourf", "contour", "surface"}, optional
        Filled contours, contour lines or a 3-D surface.
    log : bool, optional
        Draw ``log10`` of the quantity.
    levels : int or array_like, optional
        Contour levels.
    trajectories : bool or sequence of str, optional
        Overlay the projected trajectories stored in ``landscape.trajectories``
        (all, none or the named ones), with their distance from the plane in
        the legend.
    colorbar : bool, optional
        Add a colour bar.
    title : str, optional
        Axes title.
    cmap : str, optional
        Colour map.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    values, label = _surface_values(landscape, quantity, log)
    if ax is None:
        fig = Figure(figsize=(6, 5))
        ax = fig.add_subplot(projection="3d" if kind == "surface" else None)
    fig = ax.figure
    a, b = np.meshgrid(landscape.xcoordinates, landscape.ycoordinates, indexing="ij")
    if kind == "surface":
        if getattr(ax, "name", "") != "3d":
            raise ValueError("kind='surface' needs 3-D axes (projection='3d')")
        artist = ax.plot_surface(a, b, values, cmap=cmap, linewidth=0, antialiased=True)
        ax.set_zlabel(label, fontsize=8)
    elif kind == "contourf":
        artist = ax.contourf(a, b, values, levels=levels, cmap=cmap)
        ax.contour(a, b, values, levels=artist.levels[::3], colors="k", linewidths=0.4,
                   alpha=0.5)
    else:
        artist = ax.contour(a, b, values, levels=levels, cmap=cmap)
        ax.clabel(artist, artist.levels[::4], inline=True, fontsize=7, fmt="%.3g")
    if colorbar:
        fig.colorbar(artist, ax=ax, label=label, shrink=0.6 if kind == "surface" else 0.8,
                     pad=0.12 if kind == "surface" else 0.05)
    labels = landscape.directions.labels
    ax.set_xlabel(labels[0], fontsize=8 if kind == "surface" else None)
    ax.set_ylabel(labels[1], fontsize=8 if kind == "surface" else None)
    if kind == "surface":
        # θ* on the surface (at the grid point nearest the origin).
        i = int(np.argmin(np.abs(landscape.xcoordinates)))
        j = int(np.argmin(np.abs(landscape.ycoordinates)))
        ax.plot([landscape.xcoordinates[i]], [landscape.ycoordinates[j]], [values[i, j]],
                marker="*", color="gold", markeredgecolor="k", markersize=11,
                linestyle="none", zorder=5)
    else:
        ax.plot([0], [0], marker="*", color="gold", markeredgecolor="k", markersize=11,
                linestyle="none", label="θ*", zorder=5)
    if kind != "surface" and trajectories:
        names = list(landscape.trajectories) if trajectories is True else list(trajectories)
        for n, name in enumerate(names):
            if name not in landscape.trajectories:
                raise ValueError(f"no trajectory named {name!r} on this landscape")
            coords, distance = landscape.trajectories[name]
            colour = _TRAJECTORY_COLOURS[n % len(_TRAJECTORY_COLOURS)]
            ax.plot(coords[:, 0], coords[:, 1], "-", color=colour, linewidth=1.2,
                    marker=".", markersize=3, zorder=4,
                    label=f"{name} (off-plane {distance.min():.2g}–{distance.max():.2g})")
            ax.plot(coords[:1, 0], coords[:1, 1], "o", color=colour, markeredgecolor="k",
                    markersize=6, zorder=5)
        ax.set_xlim(landscape.xcoordinates[0], landscape.xcoordinates[-1])
        ax.set_ylim(landscape.ycoordinates[0], landscape.ycoordinates[-1])
    if kind != "surface":
        ax.legend(loc="upper right", fontsize=7, framealpha=0.6)
        ax.set_aspect("auto")
    if title is not None:
        ax.set_title(title)
    return fig


def plot_landscape_panels(landscapes, quantity="train_loss", kinds=("contourf",), log=False,
                          titles=None, levels=30, panel_size=(5.0, 4.2), suptitle=None):
    """Several landscapes (e.g. zoom levels) side by side, one row per kind.

    Parameters
    ----------
    landscapes : sequence of Landscape
        One column each.
    quantity : str, optional
        See :func:`plot_landscape`.
    kinds : sequence of str, optional
        One row per kind ("contourf", "contour", "surface").
    log : bool or sequence of bool, optional
        Log scale (per column when a sequence).
    titles : sequence of str, optional
        Column titles.
    levels : int, optional
        Contour levels.
    panel_size : (float, float), optional
        Inches per panel.
    suptitle : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    landscapes = list(landscapes)
    if not landscapes:
        raise ValueError("no landscapes to plot")
    kinds = list(kinds)
    for kind in kinds:
        if kind not in _KINDS:
            raise ValueError(f"kinds must be among {_KINDS}, got {kind!r}")
    logs = [log] * len(landscapes) if np.ndim(log) == 0 else list(log)
    if len(logs) != len(landscapes):
        raise ValueError("log must be a bool or one bool per landscape")
    if titles is not None and len(titles) != len(landscapes):
        raise ValueError("titles must have one entry per landscape")
    rows, cols = len(kinds), len(landscapes)
    fig = Figure(figsize=(panel_size[0] * cols, panel_size[1] * rows))
    for r, kind in enumerate(kinds):
        for c, land in enumerate(landscapes):
            ax = fig.add_subplot(rows, cols, r * cols + c + 1,
                                 projection="3d" if kind == "surface" else None)
            plot_landscape(land, ax=ax, quantity=quantity, kind=kind, log=logs[c],
                           levels=levels, title=titles[c] if titles and r == 0 else None)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_embedding(result, color=None, ax=None, components=(0, 1), color_label="loss",
                   cmap="viridis", s=6):
    """Scatter plot of diffusion coordinates coloured by a per-point value.

    Parameters
    ----------
    result : thermo.analysis.DiffusionMapResult
        A fitted diffusion map.
    color : array_like, optional
        One value per sample of the *input* (length of the original samples,
        subsampled with ``result.indices``) or per point used; e.g. the loss.
    ax : matplotlib Axes, optional
        Target axes.
    components : (int, int), optional
        Which coordinates (0-based) to plot; with one coordinate only, it is
        plotted against the colour value.
    color_label : str, optional
        Colour bar label.
    cmap : str, optional
        Colour map.
    s : float, optional
        Marker size.

    Returns
    -------
    matplotlib.figure.Figure
    """
    coords = np.asarray(result.coordinates)
    m = coords.shape[0]
    if color is not None:
        color = np.asarray(color, dtype=np.float64).ravel()
        if color.size != m:
            if color.size > int(np.max(result.indices)):
                color = color[result.indices]
            else:
                raise ValueError(f"color needs {m} values (points used) or one per input "
                                 f"sample, got {color.size}")
    if ax is None:
        fig = Figure(figsize=(5.5, 4.5))
        ax = fig.add_subplot()
    fig = ax.figure
    i, j = components
    if coords.shape[1] == 1 or j >= coords.shape[1]:
        if color is None:
            raise ValueError("a one-dimensional embedding needs color values")
        ax.scatter(coords[:, i], color, s=s)
        ax.set_xlabel(f"diffusion coordinate {i + 1}")
        ax.set_ylabel(color_label)
        return fig
    art = ax.scatter(coords[:, i], coords[:, j], c=color, s=s, cmap=cmap)
    if color is not None:
        fig.colorbar(art, ax=ax, label=color_label)
    ax.set_xlabel(f"diffusion coordinate {i + 1} (λ = {result.eigenvalues[i]:.3g})")
    ax.set_ylabel(f"diffusion coordinate {j + 1} (λ = {result.eigenvalues[j]:.3g})")
    kind = "TMDmap" if result.target_measure else "diffusion map"
    ax.set_title(f"{kind}, ε = {result.epsilon:.3g}, α = {result.alpha:g}")
    return fig


def plot_free_energy(profile, ax=None, exact=None, label="estimate", cv_label="s",
                     max_free_energy=None):
    """Free energy profile with error bars, optionally against an exact curve.

    Parameters
    ----------
    profile : thermo.analysis.FreeEnergyProfile
        The estimate.
    ax : matplotlib Axes, optional
        Target axes.
    exact : callable or array_like, optional
        ``F(s)`` (function of the bin centres, or values at them); shifted to min 0.
    label : str, optional
        Legend label of the estimate.
    cv_label : str, optional
        x-axis label.
    max_free_energy : float, optional
        Upper y limit.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if ax is None:
        fig = Figure(figsize=(5.5, 4))
        ax = fig.add_subplot()
    fig = ax.figure
    finite = np.isfinite(profile.free_energy)
    ax.errorbar(profile.centres[finite], profile.free_energy[finite],
                yerr=np.nan_to_num(profile.error[finite]), fmt="o", markersize=3, capsize=2,
                label=label)
    if exact is not None:
        values = exact(profile.centres) if callable(exact) else np.asarray(exact, float)
        ax.plot(profile.centres, values - np.min(values), "k-", label="exact")
    ax.set_xlabel(cv_label)
    ax.set_ylabel("F (energy units)")
    if max_free_energy is not None:
        ax.set_ylim(-0.2, max_free_energy)
    ax.legend()
    return fig


def plot_autocorrelation(x, ax=None, max_lag=None, label=None):
    """Autocorrelation function with the Sokal window and τ marked.

    Parameters
    ----------
    x : array_like, shape (n,)
        Time series.
    ax : matplotlib Axes, optional
        Target axes.
    max_lag : int, optional
        Largest lag drawn (default: 3 windows).
    label : str, optional
        Series name for the legend.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from thermo.analysis.autocorrelation import autocorrelation, integrated_autocorrelation_time

    result = integrated_autocorrelation_time(x, on_short="ignore", full_output=True)
    if max_lag is None:
        max_lag = min(result.n - 1, max(10, 3 * int(result.window)))
    rho = autocorrelation(x, max_lag)
    if ax is None:
        fig = Figure(figsize=(5.5, 4))
        ax = fig.add_subplot()
    fig = ax.figure
    flag = "" if result.reliable else " (too short!)"
    ax.plot(np.arange(rho.size), rho, label=f"{label or 'ρ(t)'}: τ = {result.tau:.3g}{flag}")
    ax.axvline(result.window, color="grey", linestyle="--", linewidth=0.8,
               label=f"Sokal window M = {result.window}")
    ax.axhline(0, color="k", linewidth=0.5)
    ax.set_xlabel("lag")
    ax.set_ylabel("autocorrelation")
    ax.legend()
    return fig
