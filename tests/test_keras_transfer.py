"""Transfer learning in Keras on whatever backend runs the tests: a frozen backbone stays as it was, the arms train
on cached features, and examples/keras_transfer.py writes the results.json that ``spinalnet report`` reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("safetensors")

from test_keras_lite import write_preset  # noqa: E402
from test_keras_quickdraw import load_example  # noqa: E402

from spinalnet.commands.cli import main as cli  # noqa: E402
from spinalnet.keras import TrainOptions, efficientnet_lite, train_arms, with_head  # noqa: E402

def _example():
    return load_example("keras_transfer")


@pytest.fixture(scope="module")
def preset(tmp_path_factory) -> Path:
    return write_preset(tmp_path_factory.mktemp("preset") / "lite0")


def _values(weights) -> list[np.ndarray]:
    return [np.array(keras.ops.convert_to_numpy(w)) for w in weights]


@pytest.mark.slow  # compiles a training step through the whole (narrow) Lite0 graph
def test_a_frozen_backbone_keeps_its_weights_and_moving_statistics(preset):
    backbone = efficientnet_lite(preset, input_shape=(32, 32, 3))
    before = _values(backbone.weights)
    model = with_head(backbone, 3, "spinal:layer_width=4,num_layers=2", freeze_base=True)
    head = model.layers[-1]
    head_before = _values(head.weights)
    assert {id(w) for w in model.trainable_weights} == {id(w) for w in head.trainable_weights}
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1, 1, (64, 32, 32, 3)).astype("float32"), rng.integers(0, 3, 64)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # training mode: a trainable BatchNorm would update
    after = _values(backbone.weights)
    moving = [i for i, w in enumerate(backbone.weights) if w.path.endswith(("moving_mean", "moving_variance"))]
    assert len(moving) == 2 * 49  # every batch norm's statistics are among the weights compared
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)
    assert any(not np.array_equal(old, new) for old, new in zip(head_before, _values(head.weights)))


def _features(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes, each a shifted Gaussian in 12 dimensions: learnable, not trivially."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.standard_normal((n, 12)) + 1.5 * np.eye(3, 12)[y]
    return x.astype("float32"), y


@pytest.mark.slow  # two runs, each compiling its own training step
def test_arms_train_on_cached_features_as_compare_trains_them():
    splits = {"train": _features(256, 0), "val": _features(64, 1), "test": _features(96, 2)}
    runs = train_arms(splits, ["fc", "linear"], [3], TrainOptions(epochs=3, batch_size=32, lr=0.05, step_size=2),
                      reference="linear", log=lambda line: None)
    assert list(runs.runs) == ["fc", "linear"] and runs.arms["fc"].info["layers"] == ["Linear(12->3)"]
    for arm, (run,) in runs.runs.items():
        assert run["seed"] == 3 and len(run["val_acc_curve"]) == 3 and run["lr_curve"] == pytest.approx([0.05, 0.05, 0.005])
        assert run["val_acc"] == max(run["val_acc_curve"])  # the weights of the best validation epoch...
        assert run["best_epoch"] == run["val_acc_curve"].index(run["val_acc"]) + 1  # ...the first such
        predicted = runs.predictions[(arm, 3)]
        assert run["test_acc"] == pytest.approx(100 * np.mean(predicted["y_pred"] == predicted["y_true"]), abs=1e-4)
        assert run["test_acc"] > 60  # chance is 33%
    # fc and linear are the same Dense here: the same seed draws the same head and batch order
    assert runs.runs["fc"][0]["val_acc_curve"] == runs.runs["linear"][0]["val_acc_curve"]


@pytest.mark.slow  # extraction through a narrow Lite0 and five runs, each compiling its own training step
def test_the_example_writes_the_results_file_that_report_reads(idx_dir, preset, tmp_path, capsys):
    out = tmp_path / "out"
    code = _example().main(["--preset", str(preset), "--output", str(out), "--data-dir", str(idx_dir),
                            "--image-size", "32", "--heads", "fc,spinal", "--seeds", "2", "--epochs", "1",
                            "--batch-size", "64", "--layer-width", "8", "--feature-cache", str(tmp_path / "f.npz")])
    printed = capsys.readouterr().out
    assert code == 0 and "error reduction, spinal vs fc" in printed and "2 seed(s) x 1 epoch(s)" in printed
    results = json.loads((out / "results.json").read_text())
    assert list(results["arms"]) == ["fc", "spinal"] and results["reference"] == "spinal"
    assert [c["arm"] for c in results["contrasts"]] == ["fc"]
    assert results["contrasts"][0]["ci_level"] == "seeds and test examples"  # the predictions were used
    assert results["arms"]["spinal"]["head"]["layers"] == ["SpinalLinear(32->4, 4 x 8, splits 16/16)"]
    assert results["config"]["keras_backend"] == keras.backend.backend()
    runs = json.loads((out / "runs.json").read_text())["runs"]
    assert [r["test_acc"] for r in runs["spinal"]] == results["arms"]["spinal"]["test_acc"]
    assert cli(["report", "--markdown", str(out)]) == 0  # spinalnet report, in this process
    row = next(line for line in capsys.readouterr().out.splitlines() if "keras:tf_efficientnet_lite0" in line)
    spinal = results["arms"]["spinal"]
    assert f"{spinal['test_acc_mean']:.2f} ± {spinal['test_acc_std']:.2f}" in row and "2 x 1" in row
    # a second run reads the features from the cache
    again = _example().main(["--preset", str(preset), "--output", str(out), "--force", "--data-dir", str(idx_dir),
                             "--image-size", "32", "--heads", "spinal", "--seeds", "1", "--epochs", "1",
                             "--batch-size", "64", "--feature-cache", str(tmp_path / "f.npz")])
    assert again == 0 and "'hit': True" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--heads", "fc,spinal:widht=3"], "unknown option of 'spinal' heads 'widht'"),
    (["--reference", "mlp2"], "the reference arm 'mlp2' is not among the heads fc, spinal"),
])
def test_bad_input_to_the_example_is_one_error_line(idx_dir, preset, tmp_path, capsys, args, message):
    code = _example().main(["--preset", str(preset), "--output", str(tmp_path / "o"), "--data-dir", str(idx_dir),
                            "--heads", "fc,spinal", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("keras_transfer: error: ") and message in err and len(err.splitlines()) == 1


def test_a_missing_preset_is_one_error_line(idx_dir, tmp_path, capsys):
    code = _example().main(["--preset", str(tmp_path / "none"), "--output", str(tmp_path / "o"),
                            "--data-dir", str(idx_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "preset" in err and "missing, not a directory" in err and len(err.splitlines()) == 1
