"""Paper configs, spinalnet reproduce and spinalnet report."""

from __future__ import annotations

import json

import pytest

from spinalnet.commands.cli import main
from spinalnet.regression.study import RegressConfig
from spinalnet.comparison.experiments import config_dir, experiments
from spinalnet.comparison.config import CompareConfig


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
    assert "unknown experiment 'fashion-mnist-vgg' (did you mean 'fashion-mnist-vgg5' or " in capsys.readouterr().err


def test_reproduce_scaled_down_then_report(idx_dir, tmp_path, capsys):
    out = tmp_path / "fm"
    assert main(["reproduce", "fashion-mnist-default-cnn", "--data-dir", str(idx_dir), "--epochs", "1",
                 "--seeds", "2", "--output", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["experiment"]["name"] == "fashion-mnist-default-cnn"
    assert results["config"]["epochs"] == 1 and results["config"]["momentum"] == 0.5
    spinal = results["arms"]["spinal"]
    assert len(spinal["test_acc"]) == 2 and list(results["arms"]) == ["fc", "fc:dropout=0", "mlp", "spinal"]  # the config's arms
    capsys.readouterr()
    assert main(["report", str(out), "--markdown"]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    # its paper numbers: none recorded for this experiment, so those columns are left out
    assert table[0].startswith("| experiment | directory | measured: fc | measured: Spinal | Spinal − fc (95% CI)")
    row = table[2]
    assert row.startswith(f"| fashion-mnist-default-cnn | `{out}` |") and "2 x 1" in row
    assert f"{spinal['test_acc_mean']:.2f} ± {spinal['test_acc_std']:.2f}" in row
    verdict = row.rstrip(" |").rsplit("|", 1)[1]
    assert "vs fc: " in verdict and "; vs same-size MLP: " in verdict  # both answers
    assert any(v in verdict for v in ("**yes**", "**no**", "no significant difference", "significant alone",
                                      "by its interval"))


def test_report_all_marks_what_was_not_run_and_keeps_the_document_head(tmp_path, capsys):
    from spinalnet.regression.study import RegressConfig, regress

    out = tmp_path / "reg"
    regress(RegressConfig(target="sum", epochs=2, seeds=2, samples=100, output=str(out)), log=lambda s: None,
            experiment={"name": "regression", "title": "t", "paper": {}, "changes": ""})
    doc = tmp_path / "RESULTS.md"
    doc.write_text("# Results\n\ntext naming the `<!-- report -->` line\n<!-- report -->\nold table\n")
    assert main(["report", str(out), "--all", "--output", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Results\n\ntext naming the `<!-- report -->` line\n<!-- report -->\n")
    assert "old table" not in text
    # the paper's columns hold the paper's numbers only; our reading of its metric stays in our own cell
    assert "| regression: sum (test MSE; the paper's metric, min train-batch MSE, ours: fc " in text
    assert f"| `{out}` | - | - |" in text
    assert "| cifar10-wrn101-transfer |" in text and "not run: data not available offline" in text
    assert "| fashion-mnist-vgg5 |" in text


def test_report_on_something_else_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().err


def test_report_skips_directories_without_results_with_a_note(tmp_path, capsys):
    from spinalnet.regression.study import RegressConfig, regress

    out = tmp_path / "reg"
    regress(RegressConfig(target="sum", epochs=1, seeds=1, samples=60, output=str(out)), log=lambda s: None)
    (tmp_path / "a-train-run").mkdir()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "a-train-run"), str(out), "--markdown"]) == 0
    captured = capsys.readouterr()
    assert f"spinalnet: note: skipping {tmp_path / 'a-train-run'}: no results.json" in captured.err
    row = captured.out.splitlines()[2]
    assert "regression: sum" in row and " ± " not in row  # one seed: no std shown


@pytest.mark.parametrize("content,expected", [
    ("{}", "not a results file; expected the results.json of compare, regress or reproduce"),
    ("[1, 2]", "holds a JSON list, not a results file"),
    ('{"head": "spinal", "test_acc": 90.0}', "it is a single run's result.json"),
    ("{not json", "not a readable results file"),
    ('{"fc": {}, "spinal": {}, "config": {}}', "incomplete results file: head fc has no seeds, test_acc"),
    ('{"targets": {"sum": {"fc": 1}}, "config": {"epochs": 1}}', "incomplete results file"),
])
def test_report_on_json_that_is_not_a_results_file_names_it(tmp_path, capsys, content, expected):
    path = tmp_path / "results.json"
    path.write_text(content)
    for arg in (path, tmp_path):
        assert main(["report", str(arg), "--output", str(tmp_path / "table.md")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"spinalnet: error: {path}") and expected in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "table.md").exists()


def test_reproduce_regression_takes_limit_batches_and_refuses_compare_only_options(tmp_path, capsys):
    out = tmp_path / "reg"
    assert main(["reproduce", "regression", "--epochs", "1", "--seeds", "1", "--limit-batches", "0.25",
                 "--output", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["config"]["limit_batches"] == 0.25
    capsys.readouterr()
    assert main(["report", str(out), "--markdown"]) == 0
    assert "1 x 1 (0.25 of each epoch)" in capsys.readouterr().out
    for extra in (["--data-dir", str(tmp_path)], ["--resume"], ["--devices", "2"]):
        assert main(["reproduce", "regression", "--output", str(tmp_path / "no"), *extra]) == 2
        err = capsys.readouterr().err
        assert f"takes no {extra[0]}" in err and "--limit-batches" in err and len(err.splitlines()) == 1
    for bad, message in ((["--epochs", "0"], "--epochs must be >= 1, got 0"),
                         (["--limit-batches", "0"], "--limit-batches must be > 0"),
                         (["--seeds", "-1"], "--seeds must be >= 1, got -1")):
        assert main(["reproduce", "regression", "--output", str(tmp_path / "no"), *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"spinalnet: error: {message}") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "no").exists()


def test_report_output_must_be_a_file_and_not_a_results_file(tmp_path, capsys):
    from spinalnet.regression.study import RegressConfig, regress

    out = tmp_path / "reg"
    regress(RegressConfig(target="sum", epochs=1, seeds=1, samples=60, output=str(out)), log=lambda s: None)
    before = (out / "results.json").read_bytes()
    for target, message in ((tmp_path, "is a directory"), (out / "results.json", "is one of the results files")):
        assert main(["report", str(out), "--output", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"spinalnet: error: --output {target}") and message in err and len(err.splitlines()) == 1
    assert (out / "results.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reg"]


def _fake_comparison(path, fc, spinal, name):
    """A compare results.json from before the paired statistics: per-seed lists only."""
    import statistics

    path.mkdir()
    heads = {h: {"seeds": list(range(len(v))), "test_acc": v, "test_acc_mean": statistics.fmean(v),
                 "test_acc_std": statistics.stdev(v)} for h, v in (("fc", fc), ("spinal", spinal))}
    (path / "results.json").write_text(json.dumps({
        "dataset": "d", "model": "m", **heads, "config": {"epochs": 2},
        "experiment": {"name": name}, "hardware": {"cpu_count": 2}, "versions": {}}))


def _markdown_rows(text: str) -> dict[str, dict[str, str]]:
    lines = text.strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]
    return {row["experiment"]: row for row in rows}


def test_report_gives_each_comparison_s_own_p_and_the_table_wide_one(tmp_path, capsys):
    from scipy import stats as sps

    from spinalnet.stats import holm

    clear = ([80.0, 81.0, 80.5, 80.2, 80.9], [82.1, 83.0, 82.4, 82.5, 82.8])  # Spinal better in every seed
    noise = ([80.0, 81.0, 80.5, 80.2, 80.9], [80.3, 80.7, 80.9, 80.1, 80.6])
    _fake_comparison(tmp_path / "a", *clear, "exp-a")
    _fake_comparison(tmp_path / "b", *noise, "exp-b")
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--markdown"]) == 0
    rows = _markdown_rows(capsys.readouterr().out)
    assert "paper: fc" not in rows["exp-a"]  # no paper numbers for these experiments: the column is left out
    raw = [sps.ttest_rel(s, f).pvalue for f, s in (clear, noise)]  # two-head files of format 1: paired t
    table = holm(raw)
    for name, p, p_table in zip(("exp-a", "exp-b"), raw, table):
        row = rows[name]
        assert row["p"] == f"{p:.2g}" and row["p (Holm)"] == f"{p:.2g}"  # one contrast: its own Holm is its p
        assert row["p (Holm, table)"] == f"{p_table:.2g}"
        assert row["directory"] == f"`{tmp_path / name[-1]}`"  # rows name their directory
    assert table[0] > raw[0]  # the table-wide correction bites
    assert rows["exp-a"]["does the Spinal head help?"].startswith("vs fc: **yes**, Spinal better (p (Holm) = ")
    assert "interval over seeds only" in rows["exp-a"]["does the Spinal head help?"]
    assert rows["exp-b"]["does the Spinal head help?"].startswith("vs fc: no significant difference")


def test_report_as_text_fits_120_columns(tmp_path, capsys):
    _fake_comparison(tmp_path / "a", [80.0, 81.0, 80.5], [82.1, 83.0, 82.4], "exp-a")
    assert main(["report", str(tmp_path / "a")]) == 0
    text = capsys.readouterr().out
    assert max(map(len, text.splitlines())) <= 120 and "exp-a" in text and "does the" in text


def test_verdict_rules():
    from spinalnet.comparison.report import Test, answer

    stats = {"seeds": 5, "difference_mean": 1.0, "difference_ci95": [0.5, 1.5], "ci_level": "seeds and test examples",
             "p_value": 0.004}
    test = lambda s, own: Test("vs fc", s, own, "Spinal better", "fc better")  # noqa: E731
    assert answer(test(stats, 0.01), 0.03, 4) == "**yes**, Spinal better (p (Holm) = 0.01; across the table 0.03)"
    worse = {**stats, "difference_mean": -1.0, "difference_ci95": [-1.5, -0.5]}
    assert answer(test(worse, 0.01), 0.03, 4) == "**no**, fc better (p (Holm) = 0.01; across the table 0.03)"
    # significant in its comparison, not across the table: said so, never "no difference" beside an interval
    # that excludes 0
    assert answer(test(stats, 0.01), 0.2, 9) == ("Spinal better, significant alone (p (Holm) = 0.01); not after "
                                                  "correcting for the 9 tests of this table (p = 0.2)")
    assert answer(test(stats, 0.08), 0.3, 9).startswith("Spinal better by its interval (p = 0.004), but not after")
    assert answer(test({**stats, "difference_ci95": [-0.1, 1.5]}, 0.01), 0.01, 2).startswith("unclear")
    assert answer(test({**stats, "difference_ci95": [-0.5, 1.5], "p_value": 0.3}, 0.6), 0.9, 2) == \
        "no significant difference (p (Holm) = 0.6)"
    assert answer(test({**stats, "seeds": 1, "p_value": None}, None), None, 2) == "inconclusive (1 seed, no test)"
