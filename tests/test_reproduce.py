"""Paper configs, spinalnet reproduce and spinalnet report."""

from __future__ import annotations

import json

import pytest

from spinalnet.cli import main
from spinalnet.regression import RegressConfig
from spinalnet.reproduce import config_dir, experiments
from spinalnet.training.config import CompareConfig


def test_every_paper_config_is_valid_and_explains_its_changes():
    exps = experiments()
    assert len(exps) >= 40
    for name, exp in exps.items():
        assert exp.title and exp.changes, name
        if exp.kind == "compare":
            CompareConfig.from_dict(exp.options).validate()
            assert exp.cpu_hours is not None and exp.cpu_hours > 0, name
        else:
            RegressConfig.from_dict(exp.options).validate()
    families = {n.split("-")[-1] for n in exps}
    assert {"cnn", "arch2", "vgg5", "vgg19bn", "resnet18", "resnet34", "transfer", "regression"} <= families
    assert (config_dir() / "fashion-mnist-default-cnn.yaml").is_file()


def test_reproduce_list_and_unknown_name(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in experiments()) and "est. CPU h" in out
    assert main(["reproduce", "fashion-mnist-vgg"]) == 2
    assert "unknown experiment 'fashion-mnist-vgg' (did you mean 'fashion-mnist-vgg5'?)" in capsys.readouterr().err


def test_reproduce_scaled_down_then_report(idx_dir, tmp_path, capsys):
    out = tmp_path / "fm"
    assert main(["reproduce", "fashion-mnist-default-cnn", "--data-dir", str(idx_dir), "--epochs", "1",
                 "--seeds", "2", "--output", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["experiment"]["name"] == "fashion-mnist-default-cnn"
    assert results["config"]["epochs"] == 1 and results["config"]["momentum"] == 0.5
    assert len(results["spinal"]["test_acc"]) == 2
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0].startswith("| experiment | paper: fc | paper: Spinal | measured: fc")
    row = table[2]
    assert row.startswith("| fashion-mnist-default-cnn |") and "2 x 1" in row
    assert f"{results['spinal']['test_acc_mean']:.2f} ± {results['spinal']['test_acc_std']:.2f}" in row
    assert any(v in row for v in ("**yes**", "**no**", "no significant difference"))


def test_report_all_marks_what_was_not_run_and_keeps_the_document_head(tmp_path, capsys):
    from spinalnet.regression import RegressConfig, regress

    out = tmp_path / "reg"
    regress(RegressConfig(target="sum", epochs=2, seeds=2, samples=100, output=str(out)), log=lambda s: None,
            experiment={"name": "regression", "title": "t", "paper": {}, "changes": ""})
    doc = tmp_path / "RESULTS.md"
    doc.write_text("# Results\n\ntext naming the `<!-- report -->` line\n<!-- report -->\nold table\n")
    assert main(["report", str(out), "--all", "--output", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Results\n\ntext naming the `<!-- report -->` line\n<!-- report -->\n")
    assert "old table" not in text
    assert "| regression: sum (test MSE) | paper's metric, ours:" in text
    assert "| cifar10-wrn101-transfer |" in text and "not run: data not available offline" in text
    assert "| fashion-mnist-vgg5 |" in text


def test_report_on_something_else_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().err
