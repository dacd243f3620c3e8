"""From a run to a model in use: the Python loading API, class names wherever they are needed, frozen backbones
in the Python API, data fingerprints, and the lines a run starts with."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import spinalnet
from conftest import make_images
from spinalnet.commands.cli import main
from spinalnet.errors import UsageError


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("workflow")
    x, y = make_images(240, classes=4)
    np.savez(root / "d.npz", x=x, y=y.astype(np.int64))
    out = root / "run"
    assert main(["train", "--dataset", f"npz:{root / 'd.npz'}", "--epochs", "2", "--batch-size", "32", "--lr", "0.05",
                 "--output", str(out), "--no-progress"]) == 0
    return out


def test_load_gives_an_eval_model_with_its_normalisation_and_classes(trained):
    model = spinalnet.load(trained / "checkpoints" / "best.ckpt")
    assert isinstance(model, torch.nn.Module) and not model.training
    assert model.classes == ["0", "1", "2", "3"] and model.input_shape == (1, 28, 28)
    x, y = make_images(40, classes=4, seed=9)
    names = spinalnet.predict(model, x)  # uint8 (N, H, W) as the data came
    assert len(names) == 40 and set(names) <= set(model.classes)
    assert np.mean([n == str(k) for n, k in zip(names, y)]) > 0.8  # the learnable task is learnt
    with torch.no_grad():
        logits = model(torch.from_numpy(x[:, None]).float() / 255)
    assert [model.classes[i] for i in logits.argmax(1).tolist()] == names
    assert spinalnet.predict(trained / "checkpoints" / "best.ckpt", x[:3]) == names[:3]
    assert "load" in spinalnet.__all__ and "predict" in spinalnet.__all__


def test_predict_puts_mixed_uint8_and_float_images_on_one_scale_and_refuses_0_255_floats(trained):
    model = spinalnet.load(trained / "checkpoints" / "best.ckpt")
    x, _ = make_images(6, classes=4, seed=3)
    as_uint8 = spinalnet.predict(model, x)
    as_float = spinalnet.predict(model, x.astype(np.float32) / 255)
    assert as_float == as_uint8
    assert spinalnet.predict(model, [x[:3], x[3:].astype(np.float32) / 255]) == as_uint8  # one list, both kinds
    with pytest.raises(UsageError, match=r"float images must hold values in \[0, 1\], found 0\.\.255"):
        spinalnet.predict(model, np.full((2, 28, 28), 255.0, dtype=np.float32) * np.arange(2)[:, None, None])
    with pytest.raises(UsageError, match="float images must hold values in"):
        spinalnet.predict(model, np.full((28, 28), np.nan, dtype=np.float32))


def test_class_names_are_in_the_result_the_checkpoint_and_every_export(trained, tmp_path):
    result = json.loads((trained / "result.json").read_text())
    assert result["classes"] == ["0", "1", "2", "3"]
    ckpt = torch.load(trained / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["hyper_parameters"]["facts"]["classes"] == ["0", "1", "2", "3"]
    onnx = pytest.importorskip("onnx")
    assert main(["export", str(trained / "checkpoints" / "best.ckpt"), "--format", "onnx",
                 "--output", str(tmp_path / "m.onnx")]) == 0
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(meta["classes"]) == ["0", "1", "2", "3"] and "[0, 1]" in meta["input"]
    for fmt in ("torchscript", "pt2"):
        out = tmp_path / f"m.{fmt}"
        assert main(["export", str(trained / "checkpoints" / "best.ckpt"), "--format", fmt, "--output", str(out)]) == 0
        extra = {"classes": ""}
        if fmt == "torchscript":
            torch.jit.load(str(out), _extra_files=extra)
        else:
            torch.export.load(str(out), extra_files=extra)
        assert json.loads(extra["classes"]) == ["0", "1", "2", "3"]


def test_folder_class_names_are_printed_and_eval_reports_them_per_class(image_folder, tmp_path, capsys):
    out = tmp_path / "f"
    assert main(["train", "--dataset", f"folder:{image_folder}", "--model", "default-cnn", "--epochs", "1",
                 "--batch-size", "8", "--num-workers", "0", "--output", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"run directory: {out}" in printed and "classes (2): ants, bees" in printed
    assert main(["eval", str(out / "checkpoints" / "best.ckpt"), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert [c["class"] for c in evaluated["per_class"]] == ["ants", "bees"]
    assert sum(c["samples"] for c in evaluated["per_class"]) == evaluated["samples"] == 8


def test_eval_warns_about_changed_data_and_strict_refuses(tmp_path, capsys):
    x, y = make_images(240, classes=4)
    x_test, y_test = make_images(64, classes=4, seed=3)
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=y.astype(np.int64), x_test=x_test, y_test=y_test.astype(np.int64))
    out = tmp_path / "r"
    assert main(["train", "--dataset", f"npz:{data}", "--epochs", "1", "--output", str(out), "--no-progress"]) == 0
    ckpt = str(out / "checkpoints" / "best.ckpt")
    capsys.readouterr()
    assert main(["eval", ckpt]) == 0
    assert "warning" not in capsys.readouterr().err
    np.savez(data, x=x, y=y.astype(np.int64), x_test=x_test,
             y_test=np.random.default_rng(0).permutation(y_test).astype(np.int64))  # permuted test labels
    assert main(["eval", ckpt]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spinalnet: warning: the data of npz:") and "differs" in err[0]
    assert main(["eval", ckpt, "--strict"]) == 2
    assert "without --strict eval reports it anyway" in capsys.readouterr().err


@pytest.mark.parametrize("library", ["torchvision", "timm"])
def test_spinalize_freeze_backbone_keeps_batch_norm_statistics_under_train(library):
    if library == "timm":
        timm = pytest.importorskip("timm")
        model = timm.create_model("resnet18", pretrained=False, num_classes=3)
    else:
        import torchvision

        model = torchvision.models.resnet18(weights=None)
    spinalnet.spinalize(model, 5, freeze_backbone=True, layer_width=8)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    assert before
    model.train()
    model(torch.randn(6, 3, 64, 64)).sum().backward()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # statistics did not move
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("fc.") for n in trainable)


def test_the_start_of_a_run_says_what_it_will_do(tmp_path):
    x, y = make_images(120, classes=3, size=20)
    np.savez(tmp_path / "small.npz", x=x, y=y.astype(np.int64))
    done = subprocess.run([sys.executable, "-m", "spinalnet", "train", "--dataset", f"npz:{tmp_path / 'small.npz'}",
                           "--model", "tv:resnet18", "--epochs", "1", "--output", str(tmp_path / "o"), "--no-progress",
                           "--augment", "rotate"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == f"run directory: {tmp_path / 'o'}"
    assert lines[1].startswith("data: npz:") and "86 training / 10 validation / 24 test images of 1 x 20 x 20" in lines[1]
    assert "input: 1 x 20 x 20 stored; resized on the device to 3 x 32 x 32" in done.stdout
    assert "normalisation: the training split's mean" in done.stdout and "augmentation: rotate" in done.stdout
    assert "model: tv:resnet18, head spinal: " in done.stdout and " in the head" in done.stdout


def test_report_imports_no_torch(tmp_path):
    from spinalnet.regression.study import RegressConfig, regress

    out = tmp_path / "reg"
    regress(RegressConfig(target="sum", epochs=1, seeds=2, samples=60, output=str(out)), log=lambda s: None)
    code = ("import sys; from spinalnet.commands.cli import main; code = main(['report', sys.argv[1]]); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "regression: sum" in done.stdout


def test_report_writes_a_sharded_comparison_s_summary_without_torch(npz_file, tmp_path):
    from spinalnet.comparison.compare import compare
    from spinalnet.comparison.config import CompareConfig

    out = tmp_path / "cmp"
    for k in (1, 2):
        compare(CompareConfig(dataset=f"npz:{npz_file}", heads=["fc", "spinal"], seeds=1, epochs=1, progress=False,
                              shard=f"{k}/2", output=str(out)), log=lambda s: None)
    written = json.loads((out / "results.json").read_text())
    (out / "results.json").unlink()
    code = ("import sys; from spinalnet.commands.cli import main; code = main(['report', sys.argv[1]]); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "results.json").read_text())["contrasts"] == written["contrasts"]


def test_checkpoints_load_with_weights_only_and_a_foreign_pickle_is_refused(trained, tmp_path, capsys):
    for name in ("best.ckpt", "last.ckpt"):  # ours hold tensors and plain data only
        torch.load(trained / "checkpoints" / name, weights_only=True)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": Payload()}, evil)
    for command in (["eval", str(evil)], ["export", str(evil), "--format", "onnx", "--output", str(tmp_path / "x")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "refused: it holds Python objects that are not tensors or plain data" in err
        assert len(err.strip().splitlines()) == 1
    assert not marker.exists()  # nothing it carried ran
    text = tmp_path / "model.py"
    text.write_text("print('a script, not a checkpoint')\n")
    assert main(["eval", str(text)]) == 2  # not a pickle at all: said so, not "could run code"
    err = capsys.readouterr().err
    assert f"{text}: not a checkpoint: torch.load cannot read it" in err and "could run code" not in err


def test_tensorboard_logger_writes_an_event_file_that_reads_back(tmp_path, npz_file):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    assert main(["train", "--dataset", f"npz:{npz_file}", "--epochs", "2", "--batch-size", "32", "--logger",
                 "tensorboard", "--output", str(out), "--no-progress"]) == 0
    assert list(out.glob("events.out.tfevents.*")) and (out / "metrics.csv").is_file()  # metrics.csv either way
    log = EventAccumulator(str(out))  # every event file of the run directory, as tensorboard --logdir reads them
    log.Reload()
    assert {"val_acc", "train_loss"} <= set(log.Tags()["scalars"])
    assert [round(e.value, 2) for e in log.Scalars("val_acc")] == [
        round(v, 2) for v in json.loads((out / "result.json").read_text())["val_acc_curve"]]


def test_mlflow_logger_without_mlflow_is_one_line(tmp_path, npz_file, capsys):
    import importlib.util

    if importlib.util.find_spec("mlflow") is not None:
        pytest.skip("mlflow is installed here")
    out = tmp_path / "ml"
    assert main(["train", "--dataset", f"npz:{npz_file}", "--logger", "mlflow", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("spinalnet: error: --logger mlflow needs the mlflow package, which is not installed: "
                           "pip install mlflow")
    assert not out.exists()
