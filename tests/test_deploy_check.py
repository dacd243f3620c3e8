"""compare's deploy check: one saved model per arm, evaluated as spinalnet eval does, must give the run's own test
predictions; a difference stops the comparison with one line naming the run, before its summary is written."""

from __future__ import annotations

import numpy as np

from spinalnet.commands.cli import main


def test_a_saved_model_that_does_not_reproduce_its_run_is_an_error_naming_it(npz_file, tmp_path, capsys, monkeypatch):
    from spinalnet.comparison import deploy_check

    real = deploy_check.evaluate

    def broken(*args, **kwargs):  # what the old eval did to cached folder features: other predictions
        found = real(*args, **kwargs)
        found["predictions"]["y_pred"] = (found["predictions"]["y_pred"] + 1) % 4
        found["predictions"]["logits"] = np.eye(4, dtype=np.float32)[found["predictions"]["y_pred"]] * 10
        return found

    monkeypatch.setattr(deploy_check, "evaluate", broken)
    out = tmp_path / "cmp"
    assert main(["compare", "--dataset", f"npz:{npz_file}", "--heads", "fc,spinal", "--seeds", "1", "--epochs", "1",
                 "--batch-size", "32", "--output", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spinalnet: error: [fc seed 0] its saved model")
    assert "predictions differ" in err[0] and "This is a bug in spinalnet" in err[0]
    assert not (out / "results.json").exists()  # no table that its saved models would not reproduce


def test_ties_within_float_round_off_are_not_differences():
    from spinalnet.comparison.deploy_check import TIE, _differences

    y = np.array([0, 1, 2, 3])
    stored = {"y_true": y, "y_pred": np.array([0, 1, 2, 3])}
    logits = np.eye(4, dtype=np.float32) * 5
    logits[3, 2] = logits[3, 3] - TIE.absolute / 10  # example 3: classes 2 and 3 all but tied
    found = {"y_true": y, "y_pred": np.array([0, 1, 2, 2]), "logits": logits}
    assert _differences(stored, found) == 0
    found["y_pred"] = np.array([1, 1, 2, 3])
    found["logits"] = np.eye(4, dtype=np.float32)[[1, 1, 2, 3]] * 5
    assert _differences(stored, found) == 1


def test_a_bf16_comparison_passes_its_check_and_eval_scores_what_it_reported(npz_file, tmp_path, capsys):
    """eval and the deploy check test in the run's own precision: a bf16 comparison reproduces through them."""
    import json

    out = tmp_path / "cmp"
    assert main(["compare", "--dataset", f"npz:{npz_file}", "--heads", "fc,spinal", "--seeds", "1", "--epochs", "1",
                 "--batch-size", "32", "--precision", "bf16-mixed", "--output", str(out), "--no-progress"]) == 0
    assert "deploy check: the saved models of" in capsys.readouterr().out
    result = json.loads(next((out / "runs").glob("spinal*seed0*/result.json")).read_text())
    assert main(["eval", result["best_checkpoint"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == result["test_acc"]
    # eval given the comparison's directory names one of its checkpoints (a comparison has one per run)
    assert main(["eval", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"spinalnet: error: {out} is a directory; give a checkpoint file such as "
                   f"{out / 'runs' / 'fc-seed0' / 'checkpoints' / 'best.ckpt'} (2 in it: one per run)")


def test_a_16_bit_run_counts_wider_ties():
    from spinalnet.comparison.deploy_check import LOW_PRECISION_TIE, TIE, _differences, tie_for

    assert tie_for("32-true") == tie_for("32") == tie_for("64-true") == TIE
    assert tie_for("bf16-mixed") == tie_for("16-mixed") == tie_for("bf16-true") == LOW_PRECISION_TIE
    y = np.array([0, 0])
    stored = {"y_true": y, "y_pred": np.array([0, 0])}
    # bf16's rounding step at a logit of 20 is 0.125: one step apart is a tie in bf16, a difference in float32
    found = {"y_true": y, "y_pred": np.array([1, 1]), "logits": np.array([[20.0, 20.125], [2.0, 2.5]])}
    assert _differences(stored, found, LOW_PRECISION_TIE) == 1  # example 1: a gap of 0.5 at 2.5 is no tie
    assert _differences(stored, found, TIE) == 2
