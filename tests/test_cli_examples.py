"""Run the worked examples of thermo.cli.examples (the README's) in order."""
import os
import shlex

import pytest

from thermo.cli.examples import EXAMPLES, markdown
from thermo.cli.main import main


def test_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for example in EXAMPLES:
        for name, content in example.files.items():
            (tmp_path / name).write_text(content)
        argv = shlex.split(example.command)
        assert argv[0] == "thermo"
        status = main(argv[1:])
        err = capsys.readouterr().err
        assert status == 0, f"{example.command}: {err}"
        missing = [path for path in example.creates if not os.path.exists(path)]
        assert not missing, f"{example.command} did not create {missing}"


def test_every_subcommand_has_an_example():
    from thermo.cli.options import COMMANDS

    used = {shlex.split(example.command)[1] for example in EXAMPLES}
    assert used == set(COMMANDS)


def test_markdown_lists_every_command():
    text = markdown()
    for example in EXAMPLES:
        assert example.command in text


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.command[:40] for e in EXAMPLES])
def test_example_options_are_valid(example):
    from thermo.cli.main import build_parser

    build_parser().parse_args(shlex.split(example.command)[1:])
