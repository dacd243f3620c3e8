"""The house: each on-disk record has one writer, an arm is one spelling everywhere, and a bug of ours is never
dressed as the user's mistake."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from spinalnet.commands.cli import main

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "spinalnet"
#: Each record file and the one module that owns it (defines its name and its read/write).
OWNERS = {"result.json": "spinalnet.engine.run_record", "comparison.json": "spinalnet.comparison.records",
          "results.json": "spinalnet.comparison.results_file", "feature_cache.json": "spinalnet.comparison.feature_record",
          "study.json": "spinalnet.study.record", "predictions.npz": "spinalnet.engine.predictions",
          "labels.npz": "spinalnet.engine.predictions"}
#: The record writer (a format version and an atomic write) and who may call it: the records' own modules.
RECORD_WRITERS = {"spinalnet.engine.run_record", "spinalnet.comparison.records", "spinalnet.comparison.results_file",
                  "spinalnet.comparison.feature_record", "spinalnet.study.record"}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _trees() -> dict[str, ast.AST]:
    return {_module(path): ast.parse(path.read_text()) for path in PACKAGE.rglob("*.py")}


def _docstrings(tree: ast.AST) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def _calls(tree: ast.AST, name: str) -> bool:
    return any(isinstance(node, ast.Call) and (getattr(node.func, "id", None) == name or
                                               getattr(node.func, "attr", None) == name) for node in ast.walk(tree))


def test_every_record_file_has_one_owner_and_one_writer():
    """Read from the source: a record's file name is spelled in its own module only (everyone else imports the
    name; ``spinalnet.rundir`` lists the files a forced start-over removes and writes none), and the record writer
    (``write_record``: a format version and an atomic write) is called only by the records' modules."""
    trees = _trees()
    spelled: dict[str, set[str]] = {name: set() for name in OWNERS}
    for module, tree in trees.items():
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in spelled and id(node) not in docs:
                spelled[node.value].add(module)
    for name, modules in spelled.items():
        assert modules - {"spinalnet.rundir"} == {OWNERS[name]}, f"{name} is spelled in {sorted(modules)}"
    callers = {module for module, tree in trees.items() if _calls(tree, "write_record")}
    assert callers - {"spinalnet.files"} == RECORD_WRITERS, sorted(callers)


def test_an_arm_spelled_with_dashes_and_spaces_works_everywhere(npz_file, tmp_path, capsys):
    """The crash of compare's summary: the runs trained into the normalised name, the record kept the spelling."""
    out = tmp_path / "cmp"
    common = ["--dataset", f"npz:{npz_file}", "--image-size", "28", "--model", "default-cnn", "--heads",
              "fc, spinal: layer-width=16", "--epochs", "1", "--batch-size", "32", "--output", str(out), "--no-progress"]
    assert main(["compare", *common, "--seeds", "1"]) == 0
    record = json.loads((out / "comparison.json").read_text())
    assert record["options"]["heads"] == ["fc", "spinal:layer_width=16"]
    assert (out / "runs" / "spinal_layer_width=16-seed0" / "result.json").is_file()
    assert list(json.loads((out / "results.json").read_text())["arms"]) == ["fc", "spinal:layer_width=16"]
    assert main(["compare", *common, "--seeds", "2", "--resume"]) == 0  # resume: the finished seed is kept
    assert "[spinal:layer_width=16 seed 0] finished earlier, kept" in capsys.readouterr().out
    shards = tmp_path / "shards"
    for k in ("1/2", "2/2"):
        args = [*common, "--seeds", "2", "--shard", k]
        args[args.index(str(out))] = str(shards)
        assert main(["compare", *args]) == 0
    assert json.loads((shards / "results.json").read_text())["contrasts"][0]["arm"] == "fc"
    assert main(["report", str(out), str(shards), "--markdown"]) == 0


def test_a_run_missing_outside_a_shard_is_one_line_not_a_traceback(npz_file, tmp_path, capsys, monkeypatch):
    from spinalnet.comparison import execute

    monkeypatch.setattr(execute, "train_runs", lambda plan, splits, log: None)  # as if a run vanished
    assert main(["compare", "--dataset", f"npz:{npz_file}", "--heads", "fc,spinal", "--seeds", "1", "--epochs", "1",
                 "--output", str(tmp_path / "cmp"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2 of the 2 runs of this comparison have no finished result" in err[0]


def test_a_bug_is_a_traceback_that_says_so_not_a_usage_error(npz_file, tmp_path, capsys, monkeypatch):
    from spinalnet.comparison import plan

    def broken(*args, **kwargs):
        raise KeyError("a key our own code forgot")

    monkeypatch.setattr(plan, "stored_results", broken)
    assert main(["compare", "--dataset", f"npz:{npz_file}", "--seeds", "1", "--epochs", "1",
                 "--output", str(tmp_path / "cmp"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "KeyError: 'a key our own code forgot'" in err
    assert "spinalnet: internal error: this is a bug in spinalnet, not a mistake in your command" in err
    assert "spinalnet: error:" not in err


@pytest.mark.parametrize("args,message", [
    (["describe", "1", "10"], "in_features (1) must be >= num_splits (2)"),  # the layer's ValueError, converted
    (["evaluate", "x.ckpt"], "unknown command 'evaluate' (did you mean 'eval'?)"),
    (["train", "--strategy", "no-such-strategy", "--epochs", "1"], "no-such-strategy"),  # Lightning's ValueError
])
def test_refusals_of_user_values_are_one_line_with_exit_2(args, message, capsys, npz_file, tmp_path):
    if args[0] == "train":
        args = [*args, "--dataset", f"npz:{npz_file}", "--output", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spinalnet: error:") and message in err[0], err
