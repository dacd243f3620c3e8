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
    assert _names(extras["keras"]) == {"keras", "safetensors"}
    assert TORCH_STACK <= _names(extras["torch"])
    assert all("spinalnet[torch]" in extras[name] for name in ("timm", "onnx"))
    assert "spinalnet[torch,keras,timm,onnx,tensorboard]" in extras["dev"]
    assert _names(extras["tensorboard"]) == {"spinalnet", "tensorboard"}


def test_the_floor_environment_pins_every_declared_floor():
    """ci/min-versions.txt (make test-min) installs exactly the lowest version pyproject allows, for every
    requirement with a floor."""
    pins = dict(line.split("==") for line in (Path(__file__).parent.parent / "ci" / "min-versions.txt").read_text()
                .splitlines() if line.strip() and not line.startswith("#"))
    requirements = [*PYPROJECT["project"]["dependencies"],
                    *(r for extra in PYPROJECT["project"]["optional-dependencies"].values() for r in extra)]
    floors = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", requirement.replace(" ", ""))
        if match:
            floors[match[1].lower()] = match[2]
    assert floors and set(floors) == {name.lower() for name in pins}, set(floors) ^ set(pins)
    for name, floor in floors.items():
        pinned = pins[next(p for p in pins if p.lower() == name)]
        assert pinned.split(".")[:len(floor.split("."))] == floor.split("."), (name, floor, pinned)


def test_importing_the_package_imports_no_torch_until_a_torch_name_is_used():
    code = ("import sys, spinalnet, spinalnet.data, spinalnet.comparison.summary\n"
            "assert 'torch' not in sys.modules, 'eager torch import'\n"
            "from spinalnet import SpinalLinear, split_sizes\n"
            "assert 'torch' in sys.modules and SpinalLinear.__module__ == 'spinalnet.layers.spinal_linear'\n"
            "assert 'SpinalLinear' in dir(spinalnet) and split_sizes(5, 2) == [3, 2]\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
