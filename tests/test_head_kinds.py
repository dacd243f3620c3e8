"""One table of head kinds (spinalnet.heads.kinds): a new kind is one registered entry, and every arm function, the
model zoo and ``spinalnet compare`` take it with no other edit; the table and the parser import no torch."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import torch
from torch import nn

from spinalnet.commands.cli import main
from spinalnet.errors import UsageError
from spinalnet.heads.arms import HeadContext, build, count_params, resolve
from spinalnet.heads.kinds import (ArmSpec, HeadKind, head_kind, kind_names, no_formula, register_kind,
                                   unregister_kind)
from spinalnet.heads.spec import contrast_label, parse_arm
from spinalnet.models import create_model


def _rank(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError
    return value


def _resolve_low_rank(spec: ArmSpec, ctx: HeadContext, reference: ArmSpec | None, count) -> ArmSpec:
    return spec.with_options(rank=4, dropout=0.0)


def _count_low_rank(spec: ArmSpec, ctx: HeadContext) -> int:
    return ctx.in_features * spec.get("rank") + spec.get("rank") * ctx.num_classes + ctx.num_classes


def _build_low_rank(spec: ArmSpec, ctx: HeadContext) -> nn.Module:
    """A toy head: a rank-r bottleneck, Linear(n, r, no bias) then Linear(r, C)."""
    layers = [nn.Dropout(spec.get("dropout"))] if spec.get("dropout") else []
    return nn.Sequential(*layers, nn.Linear(ctx.in_features, spec.get("rank"), bias=False),
                         nn.Linear(spec.get("rank"), ctx.num_classes))


#: The whole of what a new kind takes: one entry, with an option of its own.
LOW_RANK = HeadKind("lowrank", ("rank", "dropout"), ("a low-rank Linear", "a low-rank Linear of its own rank"),
                    _build_low_rank, _resolve_low_rank, _count_low_rank,
                    option_types={"rank": (_rank, "a whole number >= 1")})


@pytest.fixture
def low_rank() -> Iterator[HeadKind]:
    kind = register_kind(LOW_RANK)
    try:
        yield kind
    finally:
        unregister_kind(kind.name)


def _context(in_features: int = 20, num_classes: int = 3) -> HeadContext:
    return HeadContext(in_features, num_classes, {"layer_width": 8, "num_layers": 2}, lambda: nn.Linear(20, 3))


def test_a_registered_kind_goes_through_every_arm_function(low_rank):
    spec = parse_arm(" lowrank : rank=3 ")
    assert (spec.kind, spec.get("rank"), spec.name) == ("lowrank", 3, "lowrank:rank=3")
    ctx = _context()
    resolved = resolve(spec, ctx)
    assert resolved.text == "lowrank:rank=3,dropout=0.0"  # its own value kept, the default written out
    assert resolve(parse_arm("lowrank"), ctx).text == "lowrank:rank=4,dropout=0.0"
    head = build(resolved, ctx)
    assert head(torch.randn(5, 20)).shape == (5, 3)
    assert count_params(resolved, ctx) == sum(p.numel() for p in head.parameters()) == 20 * 3 + 3 * 3 + 3
    assert contrast_label(parse_arm("lowrank")) == "a low-rank Linear"
    assert contrast_label(spec) == "a low-rank Linear of its own rank"
    with pytest.raises(UsageError, match="rank must be a whole number >= 1, got '0'"):
        parse_arm("lowrank:rank=0")
    with pytest.raises(UsageError, match="unknown option of 'lowrank' heads 'rnak' \\(did you mean 'rank'\\?\\)"):
        parse_arm("lowrank:rnak=2")


def test_a_kind_without_a_formula_is_counted_on_the_meta_device(low_rank):
    register_kind(dataclasses.replace(LOW_RANK, name="lowrank2", count_params=no_formula))
    try:
        ctx = _context(512, 10)
        spec = resolve(parse_arm("lowrank2:rank=6"), ctx)
        assert count_params(spec, ctx) == _count_low_rank(spec, ctx)
    finally:
        unregister_kind("lowrank2")


def test_the_model_zoo_builds_a_registered_kind_and_forgets_it_when_unregistered(low_rank):
    net = create_model("default-cnn", 10, head="lowrank:rank=5", head_seed=0)
    assert net.head_arm.text == "lowrank:rank=5,dropout=0.0"
    assert net.head_info["layers"] == ["Linear(320->5)", "Linear(5->10)"]
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    unregister_kind("lowrank")
    try:
        with pytest.raises(UsageError, match="unknown head 'lowrank'"):
            parse_arm("lowrank")
    finally:
        register_kind(LOW_RANK)  # the fixture unregisters it


@pytest.mark.slow
def test_compare_trains_a_registered_kind_against_fc(low_rank, npz_file, tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "--dataset", f"npz:{npz_file}", "--heads", "fc,lowrank:rank=8", "--seeds", "1",
                 "--epochs", "1", "--batch-size", "32", "--lr", "0.05", "--no-progress", "--output", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["arms"]) == ["fc", "lowrank:rank=8"] and results["reference"] == "lowrank:rank=8"
    arm = results["arms"]["lowrank:rank=8"]
    assert arm["head"]["layers"] == ["Linear(320->8)", "Linear(8->4)"]
    assert arm["head_params"] == 320 * 8 + 8 * 4 + 4
    (contrast,) = results["contrasts"]
    assert (contrast["arm"], contrast["label"]) == ("fc", "the paper's baseline")
    run = json.loads((out / "runs" / "lowrank_rank=8-seed0" / "result.json").read_text())
    assert run["head"] == "lowrank:rank=8,dropout=0.0"


@pytest.mark.parametrize("name", ["", "low_rank", "low:rank", "a,b", "a=b", " lowrank"])
def test_a_kind_s_name_cannot_break_arm_texts_or_paths(name):
    with pytest.raises(ValueError, match="a head kind's name may not"):
        register_kind(dataclasses.replace(LOW_RANK, name=name))


def test_a_kind_is_registered_once(low_rank):
    with pytest.raises(ValueError, match="'lowrank' is registered already"):
        register_kind(LOW_RANK)
    assert kind_names()[:5] == ("fc", "linear", "mlp", "mlp2", "spinal") and head_kind("lowrank") is LOW_RANK


def test_the_table_and_the_parser_import_no_torch():
    """The builders are named by import path, so resolving an arm by formula imports no framework."""
    code = ("import sys\n"
            "from spinalnet.heads.kinds import HeadContext, resolve_arm\n"
            "from spinalnet.heads.spec import parse_arm, contrast_label\n"
            "spec = resolve_arm(parse_arm('mlp'), HeadContext(320, 10, {'layer_width': 8, 'num_layers': 6}))\n"
            "assert spec.get('hidden') == 26, spec\n"
            "assert contrast_label(parse_arm('mlp')) == 'same parameters'\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    src = Path(__file__).resolve().parents[1] / "src"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(src)})
    assert done.returncode == 0, done.stderr[-2000:]
