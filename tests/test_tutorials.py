"""Run every tutorial script at reduced size and check the figures it writes.

Each ``tutorials/NN_*.py`` runs in a fresh subprocess with
``THERMO_TUTORIAL_SMALL=1`` (reduced size), ``MPLBACKEND=Agg``,
``NUMBA_NUM_THREADS=1`` (the problems are tiny; a thread pool only costs time on
a loaded machine) and ``THERMO_TUTORIAL_OUTPUT`` pointing at a temporary folder.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))

#: Figures (and other files) each tutorial must write.
EXPECTED = {
    "01_double_well": ["double_well_marginals.png", "double_well_trace.png"],
    "02_mnist_funnel": ["mnist_covariance_spectrum.png", "mnist_landscape.png"],
    "03_metadynamics_symmetric_network": ["metad_free_energy.png", "HILLS"],
    "04_walkers_dask": ["walkers_w2.png"],
}

#: Optional packages a tutorial needs (skipped with the reason when missing).
NEEDS = {
    "04_walkers_dask": ["distributed"],
}


def test_every_tutorial_is_listed():
    assert TUTORIALS, "no tutorials found in tutorials/"
    assert sorted(EXPECTED) == [path.stem for path in TUTORIALS]


@pytest.mark.parametrize("script", TUTORIALS, ids=[path.stem for path in TUTORIALS])
def test_tutorial_is_a_percent_script(script):
    text = script.read_text(encoding="utf-8")
    assert "format_name: percent" in text, "jupytext header missing"
    cells = re.findall(r"^# %%( \[markdown\])?$", text, flags=re.MULTILINE)
    assert cells and cells[0] == " [markdown]", "the first cell must be the markdown title"
    assert re.search(r"^# %% \[markdown\]\n# # \S", text, flags=re.MULTILINE), "no title"
    assert "THERMO_TUTORIAL_SMALL" in text and "THERMO_TUTORIAL_OUTPUT" in text
    if importlib.util.find_spec("jupytext") is not None:
        import jupytext

        notebook = jupytext.reads(text, fmt="py:percent")
        assert notebook.cells[0].cell_type == "markdown"


@pytest.mark.parametrize("script", TUTORIALS, ids=[path.stem for path in TUTORIALS])
def test_tutorial_runs_small(script, tmp_path):
    missing = [name for name in NEEDS.get(script.stem, [])
               if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"{script.name} needs {', '.join(missing)} "
                    "(pip install -e '.[cluster]')")
    output = tmp_path / "figures"
    env = dict(os.environ, THERMO_TUTORIAL_SMALL="1", MPLBACKEND="Agg",
               NUMBA_NUM_THREADS="1", THERMO_TUTORIAL_OUTPUT=str(output),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                         os.environ.get("PYTHONPATH")])))
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, (
        f"{script.name} failed after {seconds:.0f} s:\n{result.stdout[-3000:]}\n"
        f"{result.stderr[-6000:]}")
    for name in EXPECTED[script.stem]:
        path = output / name
        assert path.is_file() and path.stat().st_size > 0, f"{script.name} did not write {name}"
    print(f"{script.name}: {seconds:.1f} s")
