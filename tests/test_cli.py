"""The spinalnet command: help, version, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

import spinalnet
from spinalnet.commands.cli import main


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


def test_unknown_option_exits_2_and_points_at_the_sub_command_s_help():
    done = run("describe", "10", "3", "--no-such-option")
    assert done.returncode == 2
    assert done.stderr == "spinalnet: error: unrecognized arguments: --no-such-option (see spinalnet describe --help)\n"


def test_options_are_never_abbreviated_and_a_near_miss_is_named():
    """``compare --head fc`` is not ``--heads fc`` (a one-arm comparison): refused, with the option meant."""
    done = run("compare", "--head", "fc", "--dataset", "digits", "--epochs", "1")
    assert done.returncode == 2
    assert done.stderr == ("spinalnet: error: unrecognized arguments: --head fc (did you mean '--heads'?) "
                           "(see spinalnet compare --help)\n")


def test_no_command_prints_the_help_and_one_error_line():
    done = run()
    assert done.returncode == 2 and "describe" in done.stdout
    assert done.stderr == "spinalnet: error: a command is required (see spinalnet --help)\n"


@pytest.mark.parametrize("args,message", [
    (["describe", "1000000000", "10"], "this head would have 24,000,000,858 parameters (96.0 GB as float32), "
                                       "more than describe's limit of 1,000,000,000"),
    (["describe", "99999999999999999999", "2"], "this head would have 2,400,000,000,000,000,000,442 parameters"),
    (["describe", "10", "10", "--num-layers", "100000"], "--num-layers 100,000 is more than describe prints"),
    (["describe", "10", "3", "--num-splits", "99999999999999999999"], "in_features (10) must be >= num_splits"),
    (["describe", "10", "-1"], "out_features must be an integer >= 1, got -1"),
])
def test_describe_refuses_impossible_sizes_before_allocating(capsys, monkeypatch, args, message):
    import torch

    real_empty = torch.empty

    def no_real_allocation(*shape, **kw):  # describe builds on the meta device only
        assert kw.get("device") is not None or torch.get_default_device().type == "meta", "allocated weights"
        return real_empty(*shape, **kw)

    monkeypatch.setattr(torch, "empty", no_real_allocation)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"spinalnet: error: {message}") and len(err.splitlines()) == 1, err


def test_describe_matches_a_real_layer_without_allocating_it(capsys):
    from spinalnet import SpinalLinear

    assert main(["describe", "100", "7", "--layer-width", "5", "--num-layers", "4", "--num-splits", "3"]) == 0
    real = SpinalLinear(100, 7, layer_width=5, num_layers=4, num_splits=3)
    assert f"parameters: {sum(p.numel() for p in real.parameters()):,}" in capsys.readouterr().out


def test_building_the_parser_imports_no_framework():
    """--help, --version and bad options answer at once, and Ctrl-C finds no torch import under way."""
    code = "import sys; from spinalnet.commands.cli import build_parser; build_parser(); print(sorted({'torch', 'lightning', " \
           "'numpy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
