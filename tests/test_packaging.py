"""The dependency layout: a torch-free core, PyTorch in the `torch` extra, lazy package imports."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
TORCH_STACK = {"torch", "torchvision", "lightning", "matplotlib"}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_core_and_keras_extra_pull_no_torch_and_the_torch_extra_has_it():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert not _names(PYPROJECT["project"]["dependencies"]) & (TORCH_STACK | {"spinalnet"})
    assert _names(extras["keras"]) == {"keras"}
    assert TORCH_STACK <= _names(extras["torch"])
    assert all("spinalnet[torch]" in extras[name] for name in ("timm", "onnx"))
    assert "spinalnet[torch,keras,timm,onnx]" in extras["dev"]


def test_importing_the_package_imports_no_torch_until_a_torch_name_is_used():
    code = ("import sys, spinalnet, spinalnet.data, spinalnet.comparison.summary\n"
            "assert 'torch' not in sys.modules, 'eager torch import'\n"
            "from spinalnet import SpinalLinear, split_sizes\n"
            "assert 'torch' in sys.modules and SpinalLinear.__module__ == 'spinalnet.layers.spinal_linear'\n"
            "assert 'SpinalLinear' in dir(spinalnet) and split_sizes(5, 2) == [3, 2]\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
