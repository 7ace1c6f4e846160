"""`grover --version` and `grover config show`: what a user needs to know before `--set`."""

import pytest

from grover_jax.cli import main
from grover_jax.configuration import load_config


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("grover ")


def test_config_show_prints_every_field_with_its_value(capsys):
    assert main(["config", "show", "small", "--set", "train.num_steps=7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    shown = dict(line.split(" = ", 1) for line in lines)
    assert shown["train.num_steps"] == "7" and shown["model.num_layers"] == "4"
    config = load_config("small")
    assert len(shown) == sum(len(section) for section in config.values() if hasattr(section, "keys")) + sum(
        1 for value in config.values() if not hasattr(value, "keys"))


def test_config_show_of_an_unknown_name_is_one_line(capsys):
    assert main(["config", "show", "nosuch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nosuch" in err[0]
