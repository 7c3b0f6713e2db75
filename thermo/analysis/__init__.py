"""Analysis of sampling runs: error bars, covariance, landscapes, diffusion maps, free energies.

Main entry points
-----------------
``integrated_autocorrelation_time(x)``
    Sokal automatic window on the FFT autocorrelation; warns/raises for short series.
``summarize(x)``, ``ensemble_summary(chains)``
    Mean, variance, MCSE (IAT and blocking), ESS; per walker, pooled, split-R-hat.
``covariance(trajectory)``, ``CovarianceAccumulator``
    Stored or streaming (mergeable) covariance; ``principal_components``,
    ``eigendecomposition`` (full or Lanczos top-k), ``project``.
``landscape(potential_or_net, centre, directions, extent, n_grid)``
    Loss/accuracy on a 2-D plane (covariance/Hessian/random/user directions), HDF5 output.
``diffusion_map(samples, n_evecs=...)``
    pydiffmap diffusion maps (vanilla and target measure) with a checked ε.
``free_energy(cv_values, beta, bins, weights=None)``
    ``F(s) = -β⁻¹ ln p(s)`` with error bars, reweighting for biased runs.
"""
from thermo.analysis.autocorrelation import (
    IATResult,
    ShortSeriesError,
    ShortSeriesWarning,
    autocorrelation,
    autocovariance,
    integrated_autocorrelation_time,
)
from thermo.analysis.covariance import (
    CovarianceAccumulator,
    Eigenpairs,
    covariance,
    eigendecomposition,
    principal_components,
    project,
)
from thermo.analysis.diffusion_map import (
    DiffusionMapError,
    DiffusionMapResult,
    choose_epsilon,
    diffusion_map,
)
from thermo.analysis.free_energy import FreeEnergyProfile, free_energy
from thermo.analysis.landscape import (
    Directions,
    Landscape,
    covariance_directions,
    hessian_directions,
    hessian_vector_product,
    landscape,
    load_landscape,
    random_directions,
    user_directions,
    zoom_levels,
)
from thermo.analysis.statistics import (
    BlockingResult,
    EnsembleEstimate,
    Estimate,
    block_average,
    blocking_analysis,
    effective_sample_size,
    ensemble_summary,
    mean_with_error,
    split_rhat,
    summarize,
)

__all__ = [
    "IATResult", "ShortSeriesError", "ShortSeriesWarning", "autocorrelation", "autocovariance",
    "integrated_autocorrelation_time",
    "CovarianceAccumulator", "Eigenpairs", "covariance", "eigendecomposition",
    "principal_components", "project",
    "DiffusionMapError", "DiffusionMapResult", "choose_epsilon", "diffusion_map",
    "FreeEnergyProfile", "free_energy",
    "Directions", "Landscape", "covariance_directions", "hessian_directions",
    "hessian_vector_product", "landscape", "load_landscape", "random_directions",
    "user_directions", "zoom_levels",
    "BlockingResult", "EnsembleEstimate", "Estimate", "block_average", "blocking_analysis",
    "effective_sample_size", "ensemble_summary", "mean_with_error", "split_rhat", "summarize",
]
