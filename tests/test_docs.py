"""Documentation checks: the Sphinx build, public docstrings, docstring examples.

* ``test_sphinx_build`` builds the site with warnings as errors
  (``python -m sphinx -W -b html docs <tmp>``); skipped with a reason when
  Sphinx, numpydoc or myst-parser is not installed (``pip install -e ".[docs]"``).
* ``test_docstring_sections`` checks every public function and class of the
  public packages (the names in their ``__all__``) for a docstring with
  Parameters (when it takes arguments), Returns (when it returns a value) and
  Examples sections.  Gaps that existed when this test was written are listed
  in :data:`KNOWN_GAPS`; a *new* gap fails the test, a closed one only warns
  (delete its entry).
* ``test_doctests`` runs the examples in the docstrings of every module that
  defines a public name, as ``python -m pytest --doctest-modules`` would.
"""
from __future__ import annotations

import ast
import doctest
import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

PUBLIC_PACKAGES = ("thermo.data", "thermo.networks", "thermo.potentials", "thermo.samplers",
                   "thermo.optimizers", "thermo.analysis", "thermo.cv", "thermo.bias",
                   "thermo.io", "thermo.walkers")  # as docs/_ext/thermo_docs.PUBLIC_PACKAGES

#: (package, name) -> sections missing when this list was made.  Keep it short:
#: add an example to the docstring and delete the entry.
KNOWN_GAPS = {
}


# ----------------------------------------------------------------- public names

def _thermo_docs():
    """The docs extension (docs/_ext/thermo_docs.py), which defines what is public."""
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        return importlib.import_module("thermo_docs")
    finally:
        sys.path.remove(str(DOCS / "_ext"))


def _package_groups(package_name):
    """(module, names) pairs documented for a package, exactly as the docs build does."""
    return [(importlib.import_module(module_name), names)
            for module_name, names in _thermo_docs().public_names(package_name)]


def public_objects():
    """(package, name, object) for every public function and class.

    Packages that do not import yet are left out (the docs build lists them as
    not available).  Constants (no docstring of their own) are skipped.
    """
    found = []
    for package_name in PUBLIC_PACKAGES:
        if importlib.util.find_spec(package_name) is None:
            continue
        for module, names in _package_groups(package_name):
            for name in names:
                try:
                    obj = getattr(module, name)
                except Exception:  # noqa: BLE001 - lazily imported module not written yet
                    continue
                if inspect.ismodule(obj):
                    continue
                if not (inspect.isclass(obj) or inspect.isfunction(obj)
                        or inspect.isbuiltin(obj) or callable(obj)):
                    continue
                if not getattr(obj, "__module__", "").startswith("thermo"):
                    continue
                found.append((package_name, name, obj))
    return found


# ----------------------------------------------------------------- docstring sections

def _has_section(doc, *titles):
    for title in titles:
        if re.search(rf"^\s*{title}\s*\n\s*-{{3,}}\s*$", doc, re.MULTILINE):
            return True
    return False


def _takes_arguments(function):
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return False
    return any(p.name not in ("self", "cls") for p in signature.parameters.values())


def _returns_value(function):
    """Whether the function's source has a ``return <value>`` or ``yield``."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return False
    tree = ast.parse(source)
    top = tree.body[0]
    for node in ast.walk(top):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                             ast.ClassDef)) and node is not top:
            continue
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            return True
    return False


def missing_sections(obj):
    """Sections an object's docstring lacks (empty list: complete).

    Functions need Parameters (if they take arguments), Returns or Yields (if
    they return a value) and Examples.  Classes need Parameters or Attributes
    (if the constructor takes arguments; the class or ``__init__`` docstring)
    and Examples; exceptions and warnings need only a docstring.
    """
    doc = inspect.getdoc(obj) or ""
    if not doc.strip():
        return ["docstring"]
    missing = []
    if inspect.isclass(obj):
        if issubclass(obj, BaseException):
            return []
        init_doc = inspect.getdoc(obj.__init__) if "__init__" in vars(obj) else ""
        combined = doc + "\n" + (init_doc or "")
        takes = _takes_arguments(obj) or bool(getattr(obj, "_fields", ()))
        if takes and not _has_section(combined, "Parameters", "Attributes"):
            missing.append("Parameters")
        if not _has_section(combined, "Examples"):
            missing.append("Examples")
        return missing
    function = inspect.unwrap(obj)
    if getattr(function, "py_func", None) is not None:  # a Numba dispatcher
        function = function.py_func
    if _takes_arguments(function) and not _has_section(doc, "Parameters"):
        missing.append("Parameters")
    if _returns_value(function) and not _has_section(doc, "Returns", "Yields"):
        missing.append("Returns")
    if not _has_section(doc, "Examples"):
        missing.append("Examples")
    return missing


def docstring_gaps():
    """{(package, name): [missing sections]} for all public objects."""
    gaps = {}
    for package_name, name, obj in public_objects():
        missing = missing_sections(obj)
        if missing:
            gaps[(package_name, name)] = missing
    return gaps


def test_docstring_sections():
    gaps = docstring_gaps()
    new = {key: value for key, value in gaps.items()
           if not set(value) <= set(KNOWN_GAPS.get(key, ()))}
    closed = sorted(key for key in KNOWN_GAPS if key not in gaps)
    if closed:
        warnings.warn("docstring gaps closed, delete from KNOWN_GAPS in tests/test_docs.py: "
                      + ", ".join(f"{p}.{n}" for p, n in closed), UserWarning)
    assert not new, "public docstrings lacking sections:\n" + "\n".join(
        f"  {package}.{name}: {', '.join(sections)}"
        for (package, name), sections in sorted(new.items()))


def test_missing_sections_rules():
    def documented(x, y=1):
        """Add.

        Parameters
        ----------
        x, y : int

        Returns
        -------
        int

        Examples
        --------
        >>> documented(1)
        2
        """
        return x + y

    def bare(x):
        """Print x."""
        print(x)

    class Thing:
        """A thing.

        Parameters
        ----------
        size : int
        """

        def __init__(self, size):
            self.size = size

    assert missing_sections(documented) == []
    assert missing_sections(bare) == ["Parameters", "Examples"]
    assert missing_sections(Thing) == ["Examples"]
    assert missing_sections(ValueError) == []


# ----------------------------------------------------------------- doctests

def doctest_modules():
    """Names of the modules that define public objects, plus the packages."""
    names = set()
    for package_name, _name, obj in public_objects():
        names.add(package_name)
        module = getattr(obj, "__module__", "")
        if module.startswith("thermo"):
            names.add(module)
    return sorted(names)


#: Modules whose docstring examples fail, reported to their authors; marked
#: xfail (not strict) so that a fix shows up as XPASS.  Remove entries when fixed.
KNOWN_DOCTEST_FAILURES = {
}


@pytest.mark.parametrize("module_name", [
    pytest.param(name, marks=pytest.mark.xfail(reason=KNOWN_DOCTEST_FAILURES[name],
                                               strict=False))
    if name in KNOWN_DOCTEST_FAILURES else name
    for name in doctest_modules()])
def test_doctests(module_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # examples that write files write here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(module, module_name) if t.examples]
    if not tests:
        pytest.skip(f"{module_name} has no docstring examples")
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS
                                   | doctest.NORMALIZE_WHITESPACE)
    import io
    output = io.StringIO()
    for test in tests:
        runner.run(test, out=output.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, output.getvalue()


# ----------------------------------------------------------------- consistency

def test_sampler_columns_are_documented():
    """Every observable a sampler can record has a row in the conventions table."""
    solvers = pytest.importorskip("thermo.samplers._solvers")
    observables = pytest.importorskip("thermo.io.observables")
    undocumented = [c for c in solvers.COLUMNS if c not in observables.COLUMNS]
    assert not undocumented, f"columns missing from thermo.io.observables.COLUMNS: {undocumented}"


def test_guide_covers_every_sampler():
    """docs/guide/samplers.md describes every registered sampler (by its method name)."""
    samplers = pytest.importorskip("thermo.samplers")
    text = (DOCS / "guide" / "samplers.md").read_text(encoding="utf-8")
    # Only thermo's own samplers: tests register deliberately broken ones.
    own = [name for name in samplers.available_samplers()
           if samplers.get_sampler(name).run_chunk.__module__.startswith("thermo.")]
    missing = [name for name in own if f'`"{name}"`' not in text]
    assert not missing, f"samplers not described in docs/guide/samplers.md: {missing}"


def test_every_cli_option_has_help():
    options = pytest.importorskip("thermo.cli.options")
    for option in options.OPTIONS:
        assert option.help.strip(), f"{option.flag} has no help text"
        assert option.commands, f"{option.flag} belongs to no command"


def test_docstring_preprocessing():
    thermo_docs = _thermo_docs()
    lines = ["Update equations:", "", "    x = a", "        + b", "", "Text."]
    thermo_docs.literal_equation_blocks(lines)
    assert lines[0] == "Update equations::"
    lines = ["State.", "", "theta : (d,) the point", "    after the step.", "step : int"]
    thermo_docs.join_hanging_lines(lines)
    assert lines == ["State.", "", "theta : (d,) the point after the step.", "step : int"]
    numpydoc = ["Parameters", "----------", "x : int", "    The x."]
    thermo_docs.join_hanging_lines(numpydoc)
    assert numpydoc == ["Parameters", "----------", "x : int", "    The x."]


def test_percent_cells():
    thermo_docs = _thermo_docs()
    text = ("# ---\n# jupyter:\n# ---\n\n# %% [markdown]\n# # Title\n#\n# Text $x$.\n\n"
            "# %%\nx = 1\n\n# %%\n\n# %% [markdown]\n# More.\n")
    assert thermo_docs.percent_cells(text) == [
        ("markdown", "# Title\n\nText $x$."), ("code", "x = 1"), ("markdown", "More.")]
    lines = ["K = |p|²/2, ``|x|`` and :math:`|a|`", "Example::", "", "    a = |b|",
             "back |c|", ">>> print('|d|')", ".. math::", "", "   |e|", "f |g|"]
    thermo_docs.escape_bars(lines)
    assert lines == ["K = \\|p\\|²/2, ``|x|`` and :math:`|a|`", "Example::", "",
                     "    a = |b|", "back \\|c\\|", ">>> print('|d|')", ".. math::", "",
                     "   |e|", "f \\|g\\|"]


def test_tati_mapping_claimed_in_docs():
    """docs/tati.md: a TATi run (mean loss, β_T, h_T, γ_T) is the thermo run with
    β = β_T/N, h = h_T/√N, γ = γ_T √N on the total loss, with K = N K_TATi."""
    thermo = pytest.importorskip("thermo")
    from thermo.potentials import Gaussian

    precision = np.array([[2.0, 0.3], [0.3, 0.5]])
    n_data, beta_tati, step_tati, friction_tati = 500, 1000.0, 0.01, 10.0
    start = np.array([0.1, -0.2])
    tati = thermo.sample(Gaussian(np.zeros(2), precision=precision), "baoab", theta0=start,
                         n_steps=500, step_size=step_tati, beta=beta_tati,
                         friction=friction_tati, seed=3, record_trajectory=True)
    ours = thermo.sample(Gaussian(np.zeros(2), precision=n_data * precision), "baoab",
                         theta0=start, n_steps=500, step_size=step_tati / np.sqrt(n_data),
                         beta=beta_tati / n_data, friction=friction_tati * np.sqrt(n_data),
                         seed=3, record_trajectory=True)
    np.testing.assert_allclose(ours.trajectory, tati.trajectory, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.observables["kinetic_energy"],
                               n_data * tati.observables["kinetic_energy"], rtol=1e-9)


# ----------------------------------------------------------------- the build

def _sphinx_missing():
    missing = [name for name in ("sphinx", "numpydoc", "myst_parser")
               if importlib.util.find_spec(name) is None]
    return missing


@pytest.mark.skipif(bool(_sphinx_missing()),
                    reason="documentation tools not installed: "
                           + ", ".join(_sphinx_missing())
                           + " (pip install -e '.[docs]')")
def test_sphinx_build(tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    env.pop("THERMO_DOCS_RUN_TUTORIALS", None)
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
               "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, (
        "sphinx -W failed:\n" + result.stdout[-5000:] + result.stderr[-10000:])
    html = tmp_path / "html"
    for page in ("index.html", "conventions.html", "tati.html", "_generated/cli.html",
                 "_generated/api/index.html", "guide/samplers.html",
                 "_generated/tutorials/index.html"):
        assert (html / page).is_file(), f"{page} was not built"
    cli = (html / "_generated/cli.html").read_text(encoding="utf-8")
    options = pytest.importorskip("thermo.cli.options")
    for option in options.OPTIONS:
        assert option.flag in cli, f"{option.flag} missing from the CLI page"


# ----------------------------------------------------------------- maintenance

def _write_gap_reports(report_path):
    """Rewrite KNOWN_GAPS in this file and the missing-examples report.

    ``python tests/test_docs.py [report.md]`` (default
    ``.status/docs_missing_examples.md``).
    """
    gaps = docstring_gaps()
    body = "".join(f"    ({package!r}, {name!r}): {tuple(sections)!r},\n"
                   for (package, name), sections in sorted(gaps.items()))
    this = Path(__file__)
    text = this.read_text(encoding="utf-8")
    text = re.sub(r"KNOWN_GAPS = \{\n.*?^\}\n", "KNOWN_GAPS = {\n" + body + "}\n", text,
                  count=1, flags=re.MULTILINE | re.DOTALL)
    this.write_text(text, encoding="utf-8")
    objects = {(p, n): o for p, n, o in public_objects()}
    lines = ["# Public docstrings lacking sections", "",
             "Generated by `python tests/test_docs.py` (rules: functions need Parameters "
             "when they take arguments, Returns when they return a value, and Examples; "
             "classes need Parameters/Attributes and Examples; exceptions only a docstring).",
             "", "| public name | defined in | missing |", "|---|---|---|"]
    for (package, name), sections in sorted(gaps.items()):
        module = getattr(objects[(package, name)], "__module__", "?")
        lines.append(f"| `{package}.{name}` | `{module}` | {', '.join(sections)} |")
    lines.append("")
    lines.append(f"{len(gaps)} names.")
    Path(report_path).parent.mkdir(parents=True, exist_ok=True)
    Path(report_path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(gaps)} gaps; wrote KNOWN_GAPS and {report_path}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    _write_gap_reports(sys.argv[1] if len(sys.argv) > 1
                       else ROOT / ".status" / "docs_missing_examples.md")
