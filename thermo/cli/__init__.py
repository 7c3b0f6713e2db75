"""The ``thermo`` command line: subcommands dataset, optimize, sample, analyse,
landscape, metad and info.

The option table is :mod:`thermo.cli.options`; the entry point is
:func:`thermo.cli.main.main`; worked examples are in
:mod:`thermo.cli.examples`.
"""
