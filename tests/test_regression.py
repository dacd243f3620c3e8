"""The regression study: target generators, splits, the Spinal MLP, the command end to end, bad tables."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spinalnet import SpinalLinear, mlp, spinal_mlp
from spinalnet.commands.cli import main
from spinalnet.errors import UsageError
from spinalnet.regression.study import TARGETS, make_targets, split_indices
from spinalnet.data.tabular import load_table

FAST = ["--epochs", "3", "--seeds", "2", "--samples", "120"]


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_generators_follow_the_paper(name):
    x, y = make_targets(name, 500, 0.2, seed=1)
    assert x.shape == (500, 8) and y.shape == (500,)
    clean = {"sum": x.sum(1), "sin_sum": np.sin(x.sum(1)), "prod": x.prod(1), "sin_prod": np.sin(x.prod(1))}[name]
    noise = y - clean
    assert noise.min() >= 0 and noise.max() <= 0.2 and 0.08 < noise.mean() < 0.12  # 0.2 * U(0, 1)
    assert abs(x.mean()) < 0.1 and abs(x.std() - 1) < 0.05
    x2, y2 = make_targets(name, 500, 0.2, seed=1)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    with pytest.raises(UsageError, match="unknown target"):
        make_targets("cos_sum", 10, 0.2, 0)


def test_split_is_disjoint_complete_and_seeded():
    train, val, test = split_indices(1000, 0.15, 0.15, seed=3)
    assert (len(train), len(val), len(test)) == (700, 150, 150)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(1000))
    assert np.array_equal(split_indices(1000, 0.15, 0.15, seed=3)[2], test)
    with pytest.raises(UsageError, match="cannot be split"):
        split_indices(2, 0.3, 0.3, seed=0)


def test_paper_models_and_spinal_mlp_builder():
    net = spinal_mlp(8, 1)
    (block,) = net
    assert isinstance(block, SpinalLinear) and (block.num_layers, block.layer_width, block.split_sizes) == (6, 50, [4, 4])
    ffn = mlp(8, 1)
    assert [m.out_features for m in ffn if isinstance(m, torch.nn.Linear)] == [200, 100, 1]
    deep = spinal_mlp(10, 3, hidden_sizes=(32, 16), layer_width=8, num_layers=4)
    spinal_blocks = [m for m in deep if isinstance(m, SpinalLinear)]
    assert [(b.in_features, b.out_features) for b in spinal_blocks] == [(10, 32), (32, 16), (16, 3)]
    assert deep(torch.randn(5, 10)).shape == (5, 3)


def test_regress_end_to_end_writes_results(tmp_path, capsys):
    out = tmp_path / "reg"
    assert main(["regress", "--target", "sin_sum", "--output", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "paper metric: min train minibatch MSE" in printed and "test MSE" in printed
    results = json.loads((out / "results.json").read_text())
    res = results["targets"]["sin_sum"]
    for model in ("fc", "spinal"):
        assert len(res[model]["test_mse"]) == 2 and len(res[model]["paper_metric_min_train_batch_mse"]) == 2
    assert res["spinal"]["params"] < res["fc"]["params"]
    assert f"better (lower MSE) in {res['better_in']} of 2 seeds" in printed
    assert len((out / "results.csv").read_text().strip().splitlines()) == 1 + 4
    assert (out / "regression.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["regress", "--target", "sin_sum", "--output", str(out), *FAST]) == 2  # never overwritten


@pytest.mark.slow
def test_both_models_learn_and_statistics_follow_from_predictions(tmp_path):
    """On sum(x) (variance 8) both models end far below the variance; every paired statistic follows
    from the per-seed lists and predictions.npz."""
    from scipy import stats as sps

    out = tmp_path / "learn"
    assert main(["regress", "--target", "sum", "--output", str(out), "--epochs", "12", "--seeds", "3",
                 "--samples", "240"]) == 0
    res = json.loads((out / "results.json").read_text())["targets"]["sum"]
    pred = np.load(out / "predictions.npz")
    variance = pred["sum.y_true"].var()
    assert variance > 4
    for model in ("fc", "spinal"):
        assert max(res[model]["test_mse"]) < 0.05 * variance, (model, res[model]["test_mse"])
        recomputed = ((pred[f"sum.{model}.y_pred"] - pred["sum.y_true"]) ** 2).mean(1)
        assert recomputed == pytest.approx(res[model]["test_mse"], abs=1e-6)
    fc, sp = np.array(res["fc"]["test_mse"]), np.array(res["spinal"]["test_mse"])
    assert res["difference_mean"] == pytest.approx((sp - fc).mean(), abs=1e-6)

    assert res["prob_improvement"] == pytest.approx(np.mean((sp < fc) + 0.5 * (sp == fc)), abs=1e-6)
    errors = {m: (pred[f"sum.{m}.y_pred"] - pred["sum.y_true"]) ** 2 for m in ("fc", "spinal")}
    # each seed has test data of its own: the interval adds each seed's example variance on its own
    d, per_example = sp - fc, errors["spinal"] - errors["fc"]
    se = np.sqrt(d.var(ddof=1) / 3 + sum(e.var(ddof=1) / len(e) for e in per_example) / 9)
    half = sps.t.ppf(0.975, 2) * se
    assert res["difference_ci95"] == pytest.approx([d.mean() - half, d.mean() + half], abs=1e-6)
    assert res["p_value"] == pytest.approx(2 * sps.t.sf(abs(d.mean()) / se, 2), abs=1e-6)


@pytest.mark.slow
def test_regress_on_a_csv(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 3))
    y = 2 * x[:, 0] - x[:, 2]
    path = tmp_path / "t.csv"
    lines = ["a,b,c,target"] + [",".join(f"{v:.5f}" for v in (*row, t)) for row, t in zip(x, y)]
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "csv"
    assert main(["regress", "--data", f"csv:{path}", "--y-column", "target", "--output", str(out), "--epochs", "30",
                 "--seeds", "1", "--num-splits", "3"]) == 0
    res = json.loads((out / "results.json").read_text())["targets"]["t.csv"]
    assert res["fc"]["test_mse_mean"] < y.var()  # learned something, in the target's own units


@pytest.mark.parametrize("content,args,match", [
    ("a,b\n1,2\n", ["--y-column", "zz"], r"no column 'zz'; columns are \['a', 'b'\]"),
    ("a,b\n1,x\n", ["--y-column", "b"], r"line 2, column 'b': 'x' is not a number"),
    ("a,b\n1,nan\n", ["--y-column", "b"], r"line 2, column 'b': 'nan' \(NaN or inf\) is not allowed"),
    ("a,b\n1,2,3\n", ["--y-column", "b"], r"line 2: 3 fields, the header has 2"),
    ("a,b\n", ["--y-column", "b"], "needs a header row and at least one data row"),
    ("b\n1\n", ["--y-column", "b"], "needs at least one input column"),
    ("a,b\n1,2\n", [], "--y-column NAME is required"),
])
def test_bad_csv_is_one_clear_line(tmp_path, capsys, content, args, match):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert main(["regress", "--data", f"csv:{path}", "--output", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spinalnet: error: ") and len(err.strip().splitlines()) == 1
    import re
    assert re.search(match, err), err
    assert not (tmp_path / "o").exists()


def test_npz_table_errors(tmp_path):
    np.savez(tmp_path / "ok.npz", x=np.zeros((4, 2)), y=np.zeros(4))
    assert load_table(f"npz:{tmp_path / 'ok.npz'}", None)[0].shape == (4, 2)
    np.savez(tmp_path / "nan.npz", x=np.full((4, 2), np.nan), y=np.zeros(4))
    with pytest.raises(UsageError, match="NaN or inf"):
        load_table(f"npz:{tmp_path / 'nan.npz'}", None)
    with pytest.raises(UsageError, match="csv:PATH or npz:PATH"):
        load_table("parquet:x", None)


def test_num_splits_above_the_input_count_is_refused_not_clamped(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["regress", "--num-splits", "9", "--num-layers", "9", "--output", str(out)]) == 2
    assert capsys.readouterr().err == ("spinalnet: error: --num-splits must be between 1 and 8 (the number of input "
                                       "features of the synthetic targets), got 9\n")
    np.savez(tmp_path / "t.npz", x=np.random.default_rng(0).normal(size=(40, 3)), y=np.zeros(40))
    assert main(["regress", "--data", f"npz:{tmp_path / 't.npz'}", "--num-splits", "4", "--output", str(out)]) == 2
    assert "between 1 and 3 (the number of input features of npz:" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ValueError, match=r"in_features \(4\) must be >= num_splits \(5\)"):
        spinal_mlp(8, 1, hidden_sizes=(4,), num_splits=5, num_layers=6)
    # the largest allowed value works exactly: every block reads 8 single-feature chunks
    assert [b.split_sizes for b in spinal_mlp(8, 1, num_splits=8, num_layers=8)] == [[1] * 8]


@pytest.mark.parametrize("arrays,match", [
    (dict(x=np.ones((6, 2)) * (1 + 1j), y=np.zeros(6)), "complex"),
    (dict(x=np.ones((6, 2)), y=np.zeros(6) + 1j), "complex"),
    (dict(x=np.ones((6, 2)), y=np.array([0, 1, np.inf, 0, 1, 0])), "NaN or inf"),
    (dict(x=np.ones((6, 2)), y=np.zeros(5)), r"got \(6, 2\) and \(5,\)"),
    (dict(x=np.array([["a", "b"]] * 6), y=np.zeros(6)), "must be numeric"),
])
def test_npz_table_refuses_complex_and_other_wrong_arrays(tmp_path, capsys, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    assert main(["regress", "--data", f"npz:{path}", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"spinalnet: error: {path}") and len(err.splitlines()) == 1
    import re
    assert re.search(match, err), err
    assert not (tmp_path / "o").exists()
