"""What compare reports is what you get: for every kind of data a user brings (npz, a folder of grey PNGs, a folder
of colour JPEGs, a registry dataset) and every way a backbone is used (from scratch, frozen pretrained with and
without the feature cache, fine-tuned), every arm's saved model gives the run's own test predictions through
``spinalnet eval``, through ``spinalnet.load`` + ``predict`` on the test images (as files, for folders) and as an
ONNX program."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_images
from spinalnet.commands.cli import main
from spinalnet.data.idx import write_idx

pytestmark = pytest.mark.slow  # 16 comparisons of 3 runs each, and their exports
timm = pytest.importorskip("timm")
if "test_efficientnet" not in timm.list_models("test_*"):
    pytest.skip("timm has no test_efficientnet (timm >= 1.0)", allow_module_level=True)

ARMS = ("fc", "mlp", "spinal")
NAMES = ("circle", "square", "triangle")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    """--dataset (and --data-dir) of each kind of data."""
    root = tmp_path_factory.mktemp("data")
    x, y = make_images(90, classes=3, size=28, seed=0)
    np.savez(root / "mine.npz", x=x, y=y.astype(np.int64))
    for split, seed, n in (("train", 1, 72), ("test", 2, 24)):  # grey PNGs, train/ and test/ folders
        images, labels = make_images(n, classes=3, size=28, seed=seed)
        for i, (image, label) in enumerate(zip(images, labels)):
            (root / "grey" / split / NAMES[label]).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / "grey" / split / NAMES[label] / f"{i}.png")
    images, labels = make_images(96, classes=3, size=28, seed=3)  # colour JPEGs, one folder split 80/20
    for i, (image, label) in enumerate(zip(images, labels)):
        colour = np.stack([image, np.roll(image, 3, axis=1), 255 - image], -1)
        (root / "colour" / NAMES[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(colour.astype(np.uint8)).save(root / "colour" / NAMES[label] / f"{i}.jpg", quality=90)
    idx = root / "registry" / "fashion-mnist"
    idx.mkdir(parents=True)
    for prefix, n, seed in (("train", 90, 4), ("t10k", 30, 5)):
        images, labels = make_images(n, classes=10, size=28, seed=seed)
        write_idx(idx / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(idx / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return {"npz": f"npz:{root / 'mine.npz'}", "grey-png": f"folder:{root / 'grey'}",
            "colour-jpeg": f"folder:{root / 'colour'}", "registry": f"fashion-mnist --data-dir {root / 'registry'}"}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A small timm backbone's weights as a user's pretrained file."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.pth"
    torch.save(timm.create_model("test_efficientnet").state_dict(), path)
    return path


def _modes(weights: Path, cache: Path) -> dict[str, list[str]]:
    pretrained = ["--model", "timm:test_efficientnet", "--pretrained", str(weights), "--image-size", "32"]
    return {"scratch": ["--model", "default-cnn"],
            "frozen-cached": [*pretrained, "--freeze-backbone", "--feature-cache", str(cache)],
            "frozen": [*pretrained, "--freeze-backbone", "--feature-cache", "off"],
            "fine-tuned": pretrained}


def _test_images(dataset: str, model) -> tuple[list, torch.Tensor]:
    """The test split's images as a user has them (files for folders, arrays otherwise), in the split's order,
    and as the stored images an exported program reads."""
    from spinalnet.data import DataOptions, load_dataset
    from spinalnet.data.folders import load_folder

    if dataset.startswith("folder:"):
        test = load_folder(Path(dataset[7:]), DataOptions())[1]
        files = [test.source(i) for i in range(len(test))]
        return files, torch.stack([model.input_spec.decode(f) for f in files])
    name, _, rest = dataset.partition(" --data-dir ")
    test = load_dataset(name, DataOptions(data_dir=Path(rest) if rest else None)).test
    return list(test.images.numpy()), test.images


#: The comparison of each kind of data whose first arm is also exported to ONNX: every mode and every arm once.
EXPORTED = {("npz", "frozen-cached"): "fc", ("grey-png", "scratch"): "mlp", ("colour-jpeg", "fine-tuned"): "spinal",
            ("registry", "frozen"): "spinal"}


@pytest.mark.parametrize("mode", ["scratch", "frozen-cached", "frozen", "fine-tuned"])
@pytest.mark.parametrize("kind", ["npz", "grey-png", "colour-jpeg", "registry"])
def test_every_arm_s_saved_model_gives_the_run_s_test_predictions(kind, mode, data, weights, tmp_path):
    from spinalnet.engine.predictions import read_predictions
    from spinalnet.inference.load import load, predict

    out = tmp_path / "cmp"
    args = ["compare", "--dataset", *data[kind].split(" "), *_modes(weights, tmp_path / "cache")[mode],
            "--heads", ",".join(ARMS), "--seeds", "1", "--epochs", "1", "--batch-size", "32", "--output", str(out),
            "--no-progress"]
    assert main(args) == 0
    summary = json.loads((out / "results.json").read_text())
    # compare's deploy check ran every arm's best.ckpt through spinalnet eval's code and found the same predictions
    assert summary["deploy_check"]["runs"] == [f"{arm} seed 0" for arm in ARMS]
    for arm in ARMS:
        run = out / "runs" / f"{arm}-seed0"
        reported = read_predictions(run / "predictions.npz")
        assert summary["arms"][arm]["test_acc"] == [round(100 * float(np.mean(reported["y_pred"] == reported["y_true"])), 4)]
        best = run / "checkpoints" / "best.ckpt"
        model = load(best)
        images, stored = _test_images(data[kind], model)
        names = predict(model, images)
        np.testing.assert_array_equal([model.classes.index(n) for n in names], reported["y_pred"])
        if EXPORTED.get((kind, mode)) == arm:
            ort = pytest.importorskip("onnxruntime")
            assert main(["export", str(best), "--format", "onnx", "--output", str(tmp_path / f"{arm}.onnx")]) == 0
            session = ort.InferenceSession(str(tmp_path / f"{arm}.onnx"))
            logits = session.run(None, {"images": (stored.float() / 255).numpy()})[0]
            np.testing.assert_array_equal(logits.argmax(1), reported["y_pred"])
