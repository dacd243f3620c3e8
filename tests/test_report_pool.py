"""spinalnet report --pool: finished comparisons pooled without a study file, on the comparisons kept in
docs/results (no training), and a comparison given twice refused instead of counted as two settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from spinalnet.commands.cli import main

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
EIGHT, TWENTY_FOUR = RESULTS / "fashion-mnist-default-cnn-arms-8epochs", RESULTS / "fashion-mnist-default-cnn-arms-24epochs"


def test_two_comparisons_pool_over_the_arms_they_share(capsys):
    assert main(["report", "--pool", str(EIGHT), str(TWENTY_FOUR)]) == 0
    printed = capsys.readouterr().out
    shared = [a for a in json.loads((EIGHT / "results.json").read_text())["arms"]
              if a in json.loads((TWENTY_FOUR / "results.json").read_text())["arms"]]
    assert printed.startswith(f"2 comparisons pooled (arms they share: {', '.join(shared)}; reference spinal)")
    assert "pooled over 2 settings" in printed


def test_a_comparison_and_its_copy_are_refused(tmp_path, capsys):
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(EIGHT / "results.json", copy / "results.json")
    assert main(["report", "--pool", str(EIGHT), str(TWENTY_FOUR), str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"spinalnet: error: {copy} holds the same runs as {EIGHT.name} (a copy, or a comparison and its "
                   "resumed copy): pooling them twice would count one setting as two; give each comparison once")


def test_a_comparison_and_its_copy_with_fewer_arms_are_refused(tmp_path, capsys):
    """The 8-epoch comparison as it was before two arms were added to it: the same runs, pooled once."""
    results = json.loads((EIGHT / "results.json").read_text())
    results["arms"] = {k: v for k, v in results["arms"].items() if k not in ("linear", "mlp2")}
    results["contrasts"] = [c for c in results["contrasts"] if c["arm"] not in ("linear", "mlp2")]
    before = tmp_path / "before"
    before.mkdir()
    (before / "results.json").write_text(json.dumps(results))
    assert main(["report", "--pool", str(before), str(EIGHT)]) == 2
    assert "holds the same runs as before" in capsys.readouterr().err
