"""The spinalnet command: help, version, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

import spinalnet
from spinalnet.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spinalnet", *args], capture_output=True, text=True)


def test_version_and_help_through_the_console_entry():
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"spinalnet {spinalnet.__version__}"
    done = run("--help")
    assert done.returncode == 0 and "describe" in done.stdout


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: spinalnet" in capsys.readouterr().out


def test_describe_prints_layout(capsys):
    assert main(["describe", "320", "10", "--layer-width", "8", "--num-layers", "6"]) == 0
    out = capsys.readouterr().out
    assert "h5   = relu(Linear(168 -> 8))  reads x[160:320] + h4" in out
    assert "parameters: 8,538" in out


@pytest.mark.parametrize("args,message", [
    (["describe", "1", "10"], "in_features (1) must be >= num_splits (2)"),
    (["describe", "10", "3", "--num-layers", "0"], "num_layers must be an integer >= 1, got 0"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    done = run(*args)
    assert done.returncode == 2
    assert done.stderr.startswith(f"spinalnet: error: {message}")
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_unknown_option_exits_2():
    done = run("describe", "10", "3", "--no-such-option")
    assert done.returncode == 2 and "unrecognized arguments: --no-such-option" in done.stderr
