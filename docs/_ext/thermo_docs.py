"""Sphinx extension that generates thermo's reference pages at build time.

Nothing here is written by hand twice: the pages are derived from the code.

``_generated/api/*.rst``
    One page per public package of :data:`PUBLIC_PACKAGES` that imports.  The
    documented names are the package's ``__all__`` (for a package without
    ``__all__``, the ``__all__`` of each of its public submodules).  Packages
    that do not exist yet are listed on the index page as not available.
``_generated/cli.rst``
    The ``thermo`` command: one section per subcommand with the usage line of
    the argparse parser (:func:`thermo.cli.main.build_parser`) and a table of
    the options from :data:`thermo.cli.options.OPTIONS` (flag, default, unit,
    meaning, allowed values), the single table argparse is built from.
``_generated/tutorials/*.md``
    One page per ``tutorials/*.py`` script in jupytext's percent format:
    ``# %% [markdown]`` cells become text, code cells become code blocks.
    Figures are embedded when the script has been run into
    ``docs/_generated/tutorials/figures`` (set ``THERMO_DOCS_RUN_TUTORIALS=1``
    to run every tutorial at reduced size during the build).

Files are rewritten only when their content changes, so incremental builds
stay incremental.
"""
from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
import textwrap
from pathlib import Path

#: Packages documented in the API reference, in reading order.
PUBLIC_PACKAGES = (
    ("thermo.data", "Data sets: MNIST, toy sets, user data"),
    ("thermo.networks", "Fully connected networks on a flat θ"),
    ("thermo.potentials", "Potentials U(θ): posterior, analytic, priors"),
    ("thermo.samplers", "Samplers of exp(-β(U+V))"),
    ("thermo.optimizers", "Optimizers"),
    ("thermo.analysis", "Autocorrelation, error bars, covariance, diffusion maps, free energies"),
    ("thermo.cv", "Collective variables"),
    ("thermo.bias", "Biases and metadynamics"),
    ("thermo.io", "Run directories, CSV/HDF5, checkpoints, TATi files"),
    ("thermo.walkers", "Walkers on one machine and on clusters"),
)

#: Submodules documented on their package's page in addition to the package's
#: ``__all__``: (names from the submodule's ``__all__``) and module docstrings
#: only (the theory and equations of each scheme).
EXTRA_MODULES = {
    "thermo.samplers": ("thermo.samplers.ensemble", "thermo.samplers.noise"),
    "thermo.networks": ("thermo.networks.sparse_perceptron",),
}
DOCSTRING_MODULES = {
    "thermo.samplers": ("thermo.samplers.baoab", "thermo.samplers.gla",
                        "thermo.samplers.overdamped", "thermo.samplers.sgld",
                        "thermo.samplers.ccadl", "thermo.samplers.hmc",
                        "thermo.samplers._solvers"),
}

TUTORIAL_FIGURE_DIR = "figures"


# --------------------------------------------------------------------- helpers

def _write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.write_text(text, encoding="utf-8")


def _title(text: str, char: str = "=") -> str:
    return f"{text}\n{char * max(len(text), 3)}\n"


def public_names(package_name):
    """The documented names of a package, grouped by where they come from.

    Parameters
    ----------
    package_name : str
        e.g. ``"thermo.samplers"``.

    Returns
    -------
    list of (str, list of str)
        ``(module name, names)`` pairs: the package itself with its
        ``__all__`` when it has one, else each public submodule with its
        ``__all__``.  Raises ImportError when the package does not import.
    """
    package = importlib.import_module(package_name)
    names = getattr(package, "__all__", None)
    if names is not None:
        groups = [(package_name, list(names))]
        exported = {id(getattr(package, n, None)) for n in names}
        for module_name in EXTRA_MODULES.get(package_name, ()):
            try:
                module = importlib.import_module(module_name)
            except Exception:  # noqa: BLE001 - not written yet
                continue
            extra = [n for n in getattr(module, "__all__", ())
                     if id(getattr(module, n, None)) not in exported]
            if extra:
                groups.append((module_name, extra))
        return groups
    groups = []
    for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
        if info.name.startswith("_"):
            continue
        module_name = f"{package_name}.{info.name}"
        try:
            module = importlib.import_module(module_name)
        except Exception:  # a module being written must not break the build
            continue
        module_names = getattr(module, "__all__", None)
        if module_names:
            groups.append((module_name, list(module_names)))
    return groups


def _directive(module_name, name):
    """The autodoc directive for ``module_name.name`` (None: skip it)."""
    module = importlib.import_module(module_name)
    try:
        obj = getattr(module, name)
    except Exception:  # noqa: BLE001 - a lazily imported module not written yet
        return None
    target = f"{module_name}.{name}"
    if inspect.ismodule(obj):
        return None
    if inspect.isclass(obj):
        if issubclass(obj, BaseException):
            return f".. autoexception:: {target}\n"
        return f".. autoclass:: {target}\n   :members:\n"
    if callable(obj):
        return f".. autofunction:: {target}\n"
    return f".. autodata:: {target}\n   :no-value:\n"


def api_pages():
    """rst text of the API index and of each available package page.

    Returns
    -------
    dict
        file name -> rst text.
    """
    pages = {}
    available, missing = [], []
    for package_name, summary in PUBLIC_PACKAGES:
        try:
            groups = public_names(package_name)
        except Exception as error:  # noqa: BLE001 - report, do not fail
            missing.append((package_name, f"{type(error).__name__}: {error}"))
            continue
        if not any(names for _, names in groups):
            missing.append((package_name, "no public names yet"))
            continue
        available.append((package_name, summary))
        lines = [_title(f"``{package_name}``"), f".. automodule:: {package_name}\n"
                 "   :no-members:\n"]
        for module_name, names in groups:
            if module_name != package_name:
                lines.append(_title(f"``{module_name}``", "-"))
                lines.append(f".. automodule:: {module_name}\n   :no-members:\n")
            entries = [(n, _directive(module_name, n)) for n in names]
            entries = [(n, d) for n, d in entries if d]
            if entries:
                lines.append(".. autosummary::\n   :nosignatures:\n\n" + "".join(
                    f"   {n}\n" for n, _ in entries))
            lines.extend(directive for _, directive in entries)
        schemes = []
        for module_name in DOCSTRING_MODULES.get(package_name, ()):
            try:
                importlib.import_module(module_name)
            except Exception:  # noqa: BLE001 - not written yet
                continue
            schemes.append(_title(f"``{module_name}``", "~")
                           + f"\n.. automodule:: {module_name}\n   :no-members:\n")
        if schemes:
            lines.append(_title("Module notes", "-"))
            lines.append("The module docstrings below give each scheme's update equations, "
                         "which momentum its kinetic observables use, and its options.\n")
            lines.extend(schemes)
        pages[f"{package_name}.rst"] = "\n".join(lines)
    index = [_title("API reference"),
             "Generated from the docstrings of thermo's public packages.  Each page "
             "documents the names in the package's ``__all__``; everything else is "
             "internal.  The conventions (U the total loss plus prior, β the inverse "
             "temperature, θ layout, observable columns) are on :doc:`/conventions`.\n",
             ".. toctree::\n   :maxdepth: 1\n\n" + "".join(
                 f"   {name}\n" for name, _ in available)]
    if missing:
        index.append("Not available in this build (the package does not import or has "
                     "no public names):\n\n" + "".join(
                         f"* ``{name}``\n" for name, _ in missing))
    pages["index.rst"] = "\n".join(index)
    return pages


# --------------------------------------------------------------------- CLI page

def _rst_cell(text: str) -> str:
    text = str(text).replace("\\", "\\\\").replace("*", "\\*").replace("|", "\\|")
    text = text.replace("`", "\\`").replace("_", "\\_")
    return text or " "


def cli_page():
    """rst text of the command-line reference, from thermo.cli.options.

    Returns
    -------
    str
    """
    try:
        from thermo.cli import options as table
    except Exception as error:  # noqa: BLE001
        return (_title("The ``thermo`` command") + "\nThe option table "
                f"``thermo.cli.options`` does not import in this build ({error}).\n")
    parser = None
    try:
        from thermo.cli.main import build_parser
        parser = build_parser()
    except Exception:  # noqa: BLE001 - usage lines are optional
        parser = None
    subparsers = {}
    if parser is not None:
        for action in parser._actions:  # argparse keeps subparsers here
            if getattr(action, "choices", None) and isinstance(action.choices, dict):
                subparsers.update(action.choices)
    lines = [_title("The ``thermo`` command"), textwrap.dedent("""\
        ``thermo COMMAND [options]`` runs one of the subcommands below;
        ``thermo COMMAND --help`` prints the same information.  This page is
        generated from the option table ``thermo.cli.options.OPTIONS``, the one
        table from which the argparse parser is built and config files are
        validated, so it cannot disagree with the command.

        Every option can also be given in a TOML or JSON file passed with
        ``--config`` (key ``step_size`` or ``step-size``); flags given on the
        command line override the file.  Boolean options take ``--name`` /
        ``--no-name``; list options take comma-separated values.  Units: ``U``
        is the unit of the potential energy (the *total* loss over the N training
        points plus the prior), ``θ`` that of the parameters, ``time`` that of the
        step size h (see :doc:`/conventions`).

        Options marked *result: no* do not change the numbers a run produces; all
        others are stored in the run directory's ``config.toml`` and must not
        change on ``--resume`` (``--steps`` may grow).
        """)]
    try:
        from thermo.cli.examples import EXAMPLES
    except Exception:  # noqa: BLE001 - the examples are optional
        EXAMPLES = []
    if EXAMPLES:
        lines.append(_title("Worked examples", "-"))
        lines.append("These run in this order in one empty directory (later ones use the "
                     "files of earlier ones); ``tests/test_cli_examples.py`` runs them, "
                     "and they come from ``thermo.cli.examples.EXAMPLES``.\n")
        for number, example in enumerate(EXAMPLES, 1):
            lines.append(f"{number}. {_rst_cell(example.title)}\n")
            for name, content in example.files.items():
                language = "toml" if name.endswith(".toml") else "text"
                if len(content) > 600:
                    lines.append(f"   (needs the file ``{name}``, written by the test)\n")
                    continue
                lines.append(f"   ``{name}``:\n\n   .. code-block:: {language}\n\n"
                             + textwrap.indent(content.rstrip("\n"), "      ") + "\n")
            lines.append("   .. code-block:: bash\n\n      " + example.command + "\n")
    lines.append(_title("Commands", "-"))
    lines.append(".. contents::\n   :local:\n   :depth: 1\n")
    for command, (_module, summary) in table.COMMANDS.items():
        lines.append(f".. _cli-{command}:\n")
        lines.append(_title(f"thermo {command}", "~"))
        lines.append(summary[0].upper() + summary[1:] + ".\n")
        if command in subparsers:
            usage = " ".join(subparsers[command].format_usage().split())
            usage = usage.replace("usage: ", "")
            lines.append(".. code-block:: text\n\n   " + usage + "\n")
        rows = [".. list-table::\n   :header-rows: 1\n   :widths: 22 12 10 56\n",
                "   * - option\n     - default\n     - unit\n     - meaning"]
        for option in table.options_for(command).values():
            flag = option.flag
            if option.kind == "bool":
                flag = f"{option.flag} / --no-{option.flag[2:]}"
            meaning = _rst_cell(option.help)
            if option.choices:
                meaning += "; one of " + ", ".join(
                    f"``{choice}``" for choice in option.choices)
            bounds = []
            if option.low is not None:
                bounds.append(("> " if option.low_open else ">= ") + f"{option.low:g}")
            if option.high is not None:
                bounds.append(("< " if option.high_open else "<= ") + f"{option.high:g}")
            if bounds and option.kind in ("int", "float", "int_list", "float_list"):
                meaning += " (" + ", ".join(bounds) + ")"
            if not option.result:
                meaning += "; result: no"
            rows.append(f"   * - ``{flag}``\n     - {_rst_cell(table.default_text(option))}"
                        f"\n     - {_rst_cell(option.unit)}\n     - {meaning}")
        lines.append("\n".join(rows) + "\n")
    return "\n".join(lines)


# --------------------------------------------------------------------- observables

def observables_table():
    """rst list-table of the observable columns, from thermo.io.observables.COLUMNS.

    Returns
    -------
    str
        Included by ``conventions.md`` (file ``_generated/observable_columns.rst.inc``).
    """
    try:
        from thermo.io.observables import COLUMNS
    except Exception as error:  # noqa: BLE001
        return f"(The column table thermo.io.observables.COLUMNS does not import: {error}.)\n"
    rows = [".. list-table::\n   :header-rows: 1\n   :widths: 28 10 62\n",
            "   * - column\n     - unit\n     - meaning"]
    for name, (unit, meaning) in COLUMNS.items():
        rows.append(f"   * - ``{name}``\n     - {_rst_cell(unit)}\n     - {_rst_cell(meaning)}")
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------- tutorials

CELL = re.compile(r"^# %%(.*)$")


def percent_cells(text):
    """Split a jupytext percent script into cells.

    Parameters
    ----------
    text : str

    Returns
    -------
    list of (str, str)
        ``("markdown" | "code", source)`` pairs; the YAML header and empty
        cells are dropped, markdown lines lose their ``# `` prefix.
    """
    lines = text.splitlines()
    if lines and lines[0].startswith("# ---"):
        end = next((i for i in range(1, len(lines)) if lines[i].startswith("# ---")), 0)
        lines = lines[end + 1:]
    cells, kind, body = [], None, []

    def flush():
        if kind is None:
            source = "\n".join(body).strip("\n")
            if source.strip():
                cells.append(("code", source))
            return
        if kind == "markdown":
            stripped = [line[2:] if line.startswith("# ") else line.lstrip("#")
                        for line in body]
            source = "\n".join(stripped).strip("\n")
        else:
            source = "\n".join(body).strip("\n")
        if source.strip():
            cells.append((kind, source))

    for line in lines:
        match = CELL.match(line)
        if match:
            flush()
            kind = "markdown" if "[markdown]" in match.group(1) else "code"
            body = []
        else:
            body.append(line)
    flush()
    return cells


def tutorial_page(script: Path, figures: list) -> str:
    """MyST markdown of one tutorial script.

    Parameters
    ----------
    script : pathlib.Path
    figures : list of str
        Figure paths relative to the generated page, embedded at the end.

    Returns
    -------
    str
    """
    cells = percent_cells(script.read_text(encoding="utf-8"))
    parts = []
    for kind, source in cells:
        if kind == "markdown":
            parts.append(source)
        else:
            parts.append("```python\n" + source + "\n```")
    note = (f"*This page is the script* `tutorials/{script.name}` *(jupytext percent "
            "format: open it as a notebook with* `jupytext --to notebook` *or run it with* "
            f"`python tutorials/{script.name}`*; set* `THERMO_TUTORIAL_SMALL=1` *for the "
            "reduced size used by the tests).*")
    # put the note after the title
    if parts and parts[0].startswith("# "):
        title, _, rest = parts[0].partition("\n")
        parts[0] = title + "\n\n" + note + ("\n\n" + rest.strip() if rest.strip() else "")
    else:
        parts.insert(0, f"# {script.stem}\n\n" + note)
    if figures:
        parts.append("## Figures\n\nProduced by running the script at reduced size "
                     "during this build.")
        for figure in figures:
            parts.append(f"```{{image}} {figure}\n:width: 80%\n```")
    return "\n\n".join(parts) + "\n"


def _run_tutorials(scripts, figure_dir: Path):
    """Run each tutorial at reduced size, its figures going to ``figure_dir``."""
    env = dict(os.environ, THERMO_TUTORIAL_SMALL="1", MPLBACKEND="Agg")
    for script in scripts:
        out = figure_dir / script.stem
        out.mkdir(parents=True, exist_ok=True)
        env["THERMO_TUTORIAL_OUTPUT"] = str(out)
        subprocess.run([sys.executable, str(script)], cwd=str(script.parent), env=env,
                       check=True, timeout=600, stdout=subprocess.DEVNULL)


def tutorial_pages(root: Path, generated: Path):
    """Markdown pages of all tutorials plus their index.

    Parameters
    ----------
    root : pathlib.Path
        Repository root (holds ``tutorials/``).
    generated : pathlib.Path
        ``docs/_generated``.

    Returns
    -------
    dict
        file name -> text.
    """
    scripts = sorted((root / "tutorials").glob("[0-9]*.py"))
    figure_dir = generated / "tutorials" / TUTORIAL_FIGURE_DIR
    if os.environ.get("THERMO_DOCS_RUN_TUTORIALS", "") not in ("", "0"):
        _run_tutorials(scripts, figure_dir)
    pages = {}
    toc = []
    for script in scripts:
        figures = sorted(p.relative_to(generated / "tutorials").as_posix()
                         for p in (figure_dir / script.stem).glob("*.png"))
        pages[f"{script.stem}.md"] = tutorial_page(script, figures)
        toc.append(script.stem)
    index = ["# Tutorials", "",
             "Each tutorial is a Python script in `tutorials/` written in jupytext's "
             "percent format (`# %%` cells), so it runs as a plain script and opens as "
             "a notebook (`jupytext --to notebook tutorials/01_double_well.py`).  Every "
             "script writes its figures as PNG files into the folder named by the "
             "environment variable `THERMO_TUTORIAL_OUTPUT` (default "
             "`tutorial_output/` in the working directory).  With "
             "`THERMO_TUTORIAL_SMALL=1` they run at reduced size in seconds; the test "
             "suite (`tests/test_tutorials.py`) runs them that way.", "",
             "```{toctree}", ":maxdepth: 1", "", *toc, "```", ""]
    pages["index.md"] = "\n".join(index)
    return pages


# --------------------------------------------------------------------- docstrings

_LITERAL_OR_MATH = re.compile(r"(``.+?``|:math:`[^`]*`|`[^`]*`_?)")
_TABLE_LINE = re.compile(r"^\s*[+|].*[+|]\s*$")


def escape_bars(lines):
    """Escape ``|`` of norms such as ``|∇U|²`` in docstring lines, in place.

    Physics docstrings write norms with bars, which reStructuredText reads
    as substitution references (``|name|``) and reports as errors.  Bars are
    escaped outside inline literals, roles, math, literal and doctest blocks
    and grid tables, where they are left alone.

    Parameters
    ----------
    lines : list of str
        Docstring lines (modified in place).
    """
    block_indent = None          # indentation of the enclosing literal/math block
    expect_block = False
    for number, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if block_indent is not None:
            if stripped and indent <= block_indent:
                block_indent = None
            else:
                continue
        if expect_block:
            if not stripped:
                continue
            expect_block = False
            if indent > previous_indent:
                block_indent = previous_indent
                continue
        if stripped.startswith((">>>", "...")) or _TABLE_LINE.match(line):
            continue
        if stripped.startswith(".. ") or (stripped.endswith("::") and
                                          not stripped.startswith(":")):
            expect_block = True
            previous_indent = indent
            if stripped.startswith(".. "):
                continue
        if "|" not in line:
            continue
        parts = _LITERAL_OR_MATH.split(line)
        for i in range(0, len(parts), 2):
            parts[i] = re.sub(r"(?<!\\)\|", r"\\|", parts[i])
        lines[number] = "".join(parts)


_SECTION_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")


def literal_equation_blocks(lines):
    """Make plain-text equation blocks of module docstrings literal, in place.

    A paragraph ending in a single ``:`` followed by an indented block (the
    way the module docstrings write update equations) gets ``::``, so the
    block is shown verbatim instead of being parsed as reStructuredText (where
    the hanging indents of multi-line equations are errors).

    Parameters
    ----------
    lines : list of str
    """
    for number, line in enumerate(lines):
        stripped = line.rstrip()
        if not stripped.endswith(":") or stripped.endswith("::"):
            continue
        if stripped.lstrip().startswith((".. ", ":")) or stripped.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        following = next((l for l in lines[number + 1:] if l.strip()), None)
        if following is None or len(following) - len(following.lstrip()) <= indent:
            continue
        if number + 1 < len(lines) and lines[number + 1].strip():
            continue          # a definition or field list, not a block after a blank line
        lines[number] = stripped + ":"


def join_hanging_lines(lines):
    """Join hanging-indent continuation lines of section-less docstrings, in place.

    ``name : text`` lines whose continuation is indented further (a layout
    that reads well as plain text) are "unexpected indentation" errors in
    reStructuredText.  Only docstrings without numpydoc sections are touched;
    lines ending in ``::`` and literal blocks are left alone.

    Parameters
    ----------
    lines : list of str
    """
    if any(_SECTION_UNDERLINE.match(line) for line in lines):
        return
    number = 1
    in_literal = False
    while number < len(lines):
        previous, line = lines[number - 1], lines[number]
        if previous.rstrip().endswith("::"):
            in_literal = True
        if in_literal:
            if line.strip() and len(line) - len(line.lstrip()) == 0:
                in_literal = False
            number += 1
            continue
        previous_indent = len(previous) - len(previous.lstrip())
        indent = len(line) - len(line.lstrip())
        if (previous.strip() and line.strip() and indent > previous_indent
                and not previous.rstrip().endswith(":")
                and not previous.lstrip().startswith((".. ", ">>>", "..."))):
            lines[number - 1] = previous.rstrip() + " " + line.strip()
            del lines[number]
            continue
        number += 1


def _process_docstring(app, what, name, obj, options, lines):
    if not name.startswith("thermo"):
        return
    if what == "module":
        literal_equation_blocks(lines)
    else:
        join_hanging_lines(lines)
    escape_bars(lines)


# --------------------------------------------------------------------- Sphinx hook

def generate(app):
    """Write all generated pages (Sphinx ``builder-inited`` handler)."""
    source = Path(app.srcdir)
    generated = source / "_generated"
    api = api_pages()
    for name, text in api.items():
        _write_if_changed(generated / "api" / name, text)
    _write_if_changed(generated / "cli.rst", cli_page())
    _write_if_changed(generated / "observable_columns.rst.inc", observables_table())
    for name, text in tutorial_pages(source.parent, generated).items():
        _write_if_changed(generated / "tutorials" / name, text)
    # remove pages of packages or tutorials that disappeared
    for folder, wanted in ((generated / "api", set(api)),):
        for path in folder.glob("*.rst"):
            if path.name not in wanted:
                path.unlink()


def setup(app):
    app.connect("builder-inited", generate)
    # before numpydoc (priority 500) turns sections into rst
    app.connect("autodoc-process-docstring", _process_docstring, priority=400)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
