"""spinalnet export: ONNX (onnxruntime), TorchScript and pt2 match PyTorch, with a dynamic batch size."""

from __future__ import annotations

import pytest
import torch

from spinalnet.cli import main
from spinalnet.export import inference_model


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
    model, _ = inference_model(checkpoint)
    with torch.no_grad():
        return model(x)


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
