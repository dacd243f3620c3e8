"""The paper configs declare every difference from the authors' scripts and carry every number PAPER.md gives."""

from __future__ import annotations

import re

import pytest

from spinalnet.comparison.experiments import experiments

# PAPER.md, "Reported results (anchors)" and "Evidence from outside the paper": experiment -> its numbers.
PAPER_ANCHORS: dict[str, list[float]] = {
    "emnist-letters-vgg5": [95.88, 95.93],
    "emnist-balanced-vgg5": [91.05, 85.82],
    "bird225-vgg19bn-transfer": [98.67, 99.02],
    "bird225-wrn101-transfer": [99.56],
    "stl10-wrn101-transfer": [98.23, 98.66],
    "cifar10-wrn101-transfer": [98.22, 98.12],
    "cifar100-wrn101-transfer": [88.34],
    "caltech101-wrn101-transfer": [96.11, 96.87],
    "cinic10-wrn101-transfer": [93.60],
    "svhn-wrn101-transfer": [97.87],
    "stanford-cars-wrn101-transfer": [93.35],
    "flowers102-wrn101-transfer": [99.39, 99.14, 99.30],
    "fruits360-wrn101-transfer": [99.99],
    "mnist-vgg19bn-transfer": [99.75],
    "quickdraw-vgg5": [89.94],
}
# What every config of a family must speak to (a difference, or that there is none).
TOPICS = {"default-cnn": ["selection", "init", "schedule", "augmentation", "normalisation", "seeds"],
          "arch2": ["selection", "schedule", "restart exponent", "augmentation", "init", "seeds"],
          "vgg5": ["selection", "schedule", "restart exponent", "init", "augmentation", "seeds"],
          "cifar-cnn": ["selection", "schedule", "restart exponent", "init", "augmentation", "seeds"],
          "vgg19bn": ["selection", "schedule", "restart exponent", "init", "augmentation", "seeds"],
          "resnet": ["selection", "schedule", "restart exponent", "widths", "pooling", "init", "augmentation", "seeds"],
          "transfer": ["selection", "validation", "schedule", "widths", "init", "augmentation", "seeds"]}
EXPERIMENTS = experiments()


def _numbers(value) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)]
    return [float(n) for n in re.findall(r"\d+\.\d+", str(value))]


def _family(name: str, model: str) -> str | None:
    if name.endswith("-transfer"):
        return "transfer"
    return "resnet" if model.startswith("resnet") else TOPICS.get(model) and model


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_config_declares_its_changes_and_the_papers_numbers(name):
    exp = EXPERIMENTS[name]
    assert exp.changes and all(isinstance(c, str) and len(c) > 20 for c in exp.changes), name
    assert exp.paper, f"{name}: paper: is empty; give the numbers or a note that PAPER.md has none"
    numbers = _numbers(exp.paper)
    for anchor in PAPER_ANCHORS.get(name, []):
        assert anchor in numbers, f"{name}: paper: lacks {anchor} (PAPER.md)"
    if not PAPER_ANCHORS.get(name) and exp.kind == "compare":
        assert "no result" in str(exp.paper.get("note", "")), name
    family = _family(name, exp.options.get("model", ""))
    if family:
        declared = " ".join(c.split(":")[0] for c in exp.changes)
        for topic in TOPICS[family]:
            assert topic in declared, f"{name}: changes: says nothing about {topic}"


def test_resnet_configs_restart_with_the_scripts_exponent():
    for name in ("cifar10-resnet18", "cifar100-resnet34"):
        options = EXPERIMENTS[name].options
        assert options["schedule"] == "random-restart" and options["restart_exponent"] == 5


def test_every_anchor_names_an_existing_experiment():
    assert set(PAPER_ANCHORS) <= set(EXPERIMENTS)
