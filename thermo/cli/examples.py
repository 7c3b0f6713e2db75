"""Worked examples of the ``thermo`` command, one or more per subcommand.

They run in this order in one empty directory (later ones use the files of
earlier ones), take seconds each once Numba's cache is warm, and are run by
``tests/test_cli_examples.py``.  The README shows them as they are.

Each :class:`Example` has a title, the command line, files to create first
(e.g. a config file) and the files the command must produce.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Example", "EXAMPLES", "markdown"]


@dataclass(frozen=True)
class Example:
    """One worked example.

    Attributes
    ----------
    title : str
    command : str
        Shell command line starting with ``thermo``.
    files : dict
        File name -> content, written before the command runs.
    creates : tuple of str
        Paths the command must create.
    """

    title: str
    command: str
    files: dict = field(default_factory=dict)
    creates: tuple = ()


EXAMPLES = [
    Example("Installation report: versions, Numba threads, CUDA GPU",
            "thermo info"),
    Example("Write TATi's two-clusters toy data set (200 points) to CSV",
            "thermo dataset --dataset two_clusters --n-points 200 --output clusters.csv",
            creates=("clusters.csv",)),
    Example("Train a perceptron on it with Barzilai-Borwein steps; θ ends up in "
            "train/theta.npy",
            "thermo optimize --data clusters.csv --optimizer bb --learning-rate 0.001 "
            "--steps 300 --record-every 10 --output train --quiet",
            creates=("train/theta.npy", "train/observables.csv", "train/config.toml")),
    Example("Sample the posterior around the trained θ with BAOAB; options from a TOML "
            "file, one overridden by a flag",
            "thermo sample --config sample.toml --steps 2000 --output run --quiet",
            files={"sample.toml": (
                "# thermo sample options (flags override them)\n"
                "data = \"clusters.csv\"\n"
                "theta0 = \"train\"\n"
                "sampler = \"baoab\"\n"
                "step_size = 0.02\n"
                "beta = 1.0\n"
                "friction = 5.0\n"
                "record_every = 10\n"
                "checkpoint_every = 50\n"
                "steps = 100000\n")},
            creates=("run/observables.csv", "run/trajectory.h5", "run/averages.csv",
                     "run/checkpoint.npz")),
    Example("Extend the run to 3000 steps from its checkpoint (bit-identical to one "
            "3000-step run)",
            "thermo sample --resume --output run --steps 3000 --quiet",
            creates=("run/theta.npy",)),
    Example("Averages, autocorrelation times, covariance and the free energy along the "
            "first principal axis",
            "thermo analyse --input run --analyses averages,iat,covariance,free-energy "
            "--burn-in 500 --output run-analysis --quiet",
            creates=("run-analysis/averages.csv", "run-analysis/iat.csv",
                     "run-analysis/covariance.csv", "run-analysis/free_energy.csv")),
    Example("Loss landscape on a 2-D plane of the two principal axes of the run",
            "thermo landscape --data clusters.csv --directions pca --trajectory-file run "
            "--theta train --extent 2 --grid-points 11 --output landscape --quiet",
            creates=("landscape/landscape.csv",)),
    Example("Multiple-walker metadynamics (2 walkers sharing their hills) on a double well, "
            "CV x, free energy from the bias",
            "thermo metad --potential double-well --barrier 2 --cv coordinates:0 "
            "--cv-range=-2,2 --walkers 2 --round-steps 200 --steps 4000 --pace 20 "
            "--hill-height 0.2 --hill-width 0.2 --step-size 0.05 --output metad --quiet",
            creates=("metad/HILLS", "metad/free_energy.csv", "metad/observables.csv")),
    Example("Analyse TATi output: a TATi trajectory CSV (id, step, loss, weight0, ..., bias0)",
            "thermo analyse --input trajectory-tati.csv --analyses averages,covariance "
            "--output tati-analysis --quiet",
            files={"trajectory-tati.csv": (
                "id,step,loss,weight0,weight1,bias0\n"
                + "".join(f"{w},{s},{3.2 - 0.001 * s - 0.01 * w:.6f},"
                          f"{-0.13 + 0.002 * ((7 * s + 3 * w) % 11):.6f},"
                          f"{-0.36 + 0.003 * ((5 * s + w) % 13):.6f},"
                          f"{0.1 + 0.001 * ((3 * s + 2 * w) % 7):.6f}\n"
                          for w in range(2) for s in range(1, 41)))},
            creates=("tati-analysis/averages.csv", "tati-analysis/covariance.csv")),
]


def markdown():
    """The examples as a Markdown list (for the README).

    Returns
    -------
    str
    """
    lines = []
    for example in EXAMPLES:
        lines.append(f"- {example.title}:")
        for name, content in example.files.items():
            if len(content) < 400:
                lines.append(f"  ```toml\n  # {name}\n  "
                             + content.rstrip("\n").replace("\n", "\n  ") + "\n  ```")
            else:
                lines.append(f"  (needs the file `{name}`)")
        lines.append(f"  ```\n  {example.command}\n  ```")
    return "\n".join(lines)
