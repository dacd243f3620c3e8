"""spinalnet export: ONNX (onnxruntime), TorchScript and pt2 match PyTorch, with a dynamic batch size."""

from __future__ import annotations

import pytest
import torch

from spinalnet.commands.cli import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from conftest import make_images
    import numpy as np

    root = tmp_path_factory.mktemp("export")
    x, y = make_images(160, classes=4)
    np.savez(root / "d.npz", x=x, y=y.astype(np.int64))
    out = root / "run"
    assert main(["train", "--dataset", f"npz:{root / 'd.npz'}", "--model", "vgg5", "--epochs", "1",
                 "--batch-size", "32", "--output", str(out), "--no-progress"]) == 0
    return out / "checkpoints" / "best.ckpt"


def _reference(checkpoint, x):
    """The checkpoint's own weights, with its stored normalisation applied by hand (not the export wrapper)."""
    from spinalnet.engine.checkpoints import load_classifier

    module = load_classifier(checkpoint)
    facts = module.hparams["facts"]
    mean, std = (torch.tensor(facts[k]).view(1, -1, 1, 1) for k in ("mean", "std"))
    with torch.no_grad():
        return module.model((x - mean) / std)


@pytest.mark.parametrize("fmt", ["torchscript", "pt2", "onnx"])
def test_export_matches_pytorch_with_dynamic_batch(checkpoint, tmp_path, fmt, capsys):
    out = tmp_path / f"model.{fmt}"
    assert main(["export", str(checkpoint), "--format", fmt, "--output", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    for n in (1, 5):
        x = torch.rand(n, 1, 28, 28)
        expected = _reference(checkpoint, x)
        if fmt == "torchscript":
            got = torch.jit.load(str(out))(x)
        elif fmt == "pt2":
            got = torch.export.load(str(out)).module()(x)
        else:
            ort = pytest.importorskip("onnxruntime")
            session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            got = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
        assert got.shape == (n, 4)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_export_refuses_to_overwrite_and_bad_checkpoints(checkpoint, tmp_path, capsys):
    out = tmp_path / "m.pt2"
    out.write_text("keep me")
    assert main(["export", str(checkpoint), "--format", "pt2", "--output", str(out)]) == 2
    assert out.read_text() == "keep me" and "pass --force" in capsys.readouterr().err
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(checkpoint.read_bytes()[:1000])
    assert main(["export", str(bad), "--format", "pt2", "--output", str(tmp_path / "x.pt2")]) == 2
    assert "not a readable spinalnet checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.pt2").exists()


def _run_onnx(path, x):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])


def test_onnx_export_is_one_file_that_runs_after_being_moved(checkpoint, tmp_path, capsys):
    made = tmp_path / "made"
    made.mkdir()
    assert main(["export", str(checkpoint), "--format", "onnx", "--output", str(made / "model.onnx")]) == 0
    assert sorted(p.name for p in made.iterdir()) == ["model.onnx"]  # no hidden weights file beside it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = (made / "model.onnx").rename(elsewhere / "copy.onnx")
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(_run_onnx(moved, x), _reference(checkpoint, x), atol=1e-5, rtol=1e-5)


def test_onnx_too_big_for_one_file_writes_the_documented_data_file(checkpoint, tmp_path, monkeypatch):
    import spinalnet.inference.export as export_module

    monkeypatch.setattr(export_module, "ONNX_SINGLE_FILE_LIMIT", 1000)  # as if the weights were over 2 GB
    out = tmp_path / "big" / "model.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--output", str(out)]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx", "model.onnx.data"]
    assert (out.parent / "model.onnx.data").stat().st_size > 1000
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("model.onnx", "model.onnx.data"):
        (out.parent / name).rename(moved / name)
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(_run_onnx(moved / "model.onnx", x), _reference(checkpoint, x), atol=1e-5, rtol=1e-5)
    monkeypatch.undo()  # a normal export over it with --force leaves one file again
    assert main(["export", str(checkpoint), "--format", "onnx", "--output", str(moved / "model.onnx"), "--force"]) == 0
    assert sorted(p.name for p in moved.iterdir()) == ["model.onnx"]


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_export_onto_a_directory_is_one_line_and_leaves_nothing(checkpoint, tmp_path, capsys, force):
    target = tmp_path / "dir"
    target.mkdir()
    assert main(["export", str(checkpoint), "--format", "onnx", "--output", str(target), *force]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spinalnet: error: --output") and "is a directory" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == [target] and list(target.iterdir()) == []


@pytest.mark.parametrize("content", [b"just some text\n", b"", "truncated", "state dict", "config None",
                                     "config text"])
def test_eval_and_export_of_a_file_that_is_not_a_checkpoint(checkpoint, tmp_path, capsys, content):
    bad = tmp_path / "bad.ckpt"
    if content == "state dict":  # a plain state dict saved with torch.save
        torch.save(torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"], bad)
    elif isinstance(content, str) and content.startswith("config"):  # the stored run config replaced (it gave an AttributeError traceback)
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        saved["hyper_parameters"]["config"] = None if content == "config None" else "vgg5"
        torch.save(saved, bad)
    elif content == "truncated":
        bad.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    else:
        bad.write_bytes(content)
    for argv in (["eval", str(bad)], ["export", str(bad), "--format", "onnx", "--output", str(tmp_path / "m.onnx")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"spinalnet: error: {bad}") and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.ckpt"]


def test_eval_of_a_directory_or_missing_file_names_it(tmp_path, capsys):
    for path in (tmp_path, tmp_path / "missing.ckpt"):
        assert main(["eval", str(path)]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("size", ["0", "-3"])
def test_eval_batch_size_must_be_positive(checkpoint, capsys, size):
    assert main(["eval", str(checkpoint), "--batch-size", size]) == 2
    assert capsys.readouterr().err == f"spinalnet: error: --batch-size must be >= 1, got {size}\n"


def test_eval_on_data_of_another_shape_is_one_line(idx_dir, tmp_path, capsys):
    from conftest import make_images
    from spinalnet.data.idx import write_idx

    run = tmp_path / "run"
    assert main(["train", "--dataset", "fashion-mnist", "--data-dir", str(idx_dir), "--epochs", "1",
                 "--batch-size", "64", "--output", str(run), "--no-progress"]) == 0
    other = tmp_path / "other" / "fashion-mnist"
    other.mkdir(parents=True)
    for prefix, n in (("train", 40), ("t10k", 20)):
        x, y = make_images(n, size=32)
        write_idx(other / f"{prefix}-images-idx3-ubyte", x)
        write_idx(other / f"{prefix}-labels-idx1-ubyte", y)
    capsys.readouterr()
    assert main(["eval", str(run / "checkpoints" / "best.ckpt"), "--data-dir", str(other.parent)]) == 2
    err = capsys.readouterr().err
    assert "images stored as (1, 28, 28) (C, H, W); the data found now is (1, 32, 32)" in err
    assert len(err.splitlines()) == 1


def test_export_onto_its_own_checkpoint_is_refused_even_with_force(checkpoint, tmp_path, capsys):
    """--force replaced the checkpoint by the ONNX file, and the checkpoint was lost."""
    own = tmp_path / "own.ckpt"
    own.write_bytes(checkpoint.read_bytes())
    before = own.read_bytes()
    assert main(["export", str(own), "--format", "onnx", "--output", str(own), "--force"]) == 2
    err = capsys.readouterr().err
    assert err == f"spinalnet: error: --output {own} is the file being read; choose another file\n"
    assert own.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["own.ckpt"]
