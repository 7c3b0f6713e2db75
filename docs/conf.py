"""Sphinx configuration of the thermo documentation.

Build with ``python -m sphinx -W -b html docs docs/_build/html``.

Three kinds of page are generated at build time by the local extension
``docs/_ext/thermo_docs.py`` into ``docs/_generated/`` (never edited by hand):

* the API reference, one page per public package of thermo that imports;
* the command-line reference, from the option table of ``thermo.cli.options``
  (the same table argparse is built from);
* one page per tutorial script in ``tutorials/`` (jupytext percent format).
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE / "_ext"))

# Importing thermo's modules must not need a display (matplotlib is imported by some).
os.environ.setdefault("MPLBACKEND", "Agg")

import thermo  # noqa: E402

project = "thermo"
author = "the thermo developers"
copyright = "the thermo developers, MIT licence"
version = release = thermo.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "thermo_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/.ipynb_checkpoints"]
templates_path = []
html_static_path = ["_static"]
html_theme = "alabaster"
html_theme_options = {"description": "loss landscapes through statistical physics",
                      "fixed_sidebar": True}
html_title = f"thermo {release}"

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_default_options = {"show-inheritance": False}
autodoc_typehints = "none"
autosummary_generate = False

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

# Docstrings cite their own sections and functions in plain text; a missing
# cross-reference target is not an error.
nitpicky = False
