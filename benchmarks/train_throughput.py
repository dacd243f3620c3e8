"""Training throughput on Fashion-MNIST: our engine against the classic pipeline, side by side.

- classic: torchvision's FashionMNIST dataset, PIL transforms (RandomPerspective + RandomRotation(10))
  per sample in a DataLoader with 2 workers, a plain PyTorch loop; same model, batch size, optimiser.
- engine: ``spinalnet.engine.train`` (Lightning), the whole dataset in memory as uint8, the same
  augmentation done in batches by one grid_sample on the training device.
- compute: forward + backward + step on random tensors already in memory: the model's own speed
  (channels-last, like the engine; the classic pipeline keeps PyTorch's default layout).

Prints images per second and the ratios engine / classic and engine / compute.

    python benchmarks/train_throughput.py           # default CNN: a full epoch; VGG-5: 150 batches
    python benchmarks/train_throughput.py --quick   # under a minute
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torchvision import transforms

from spinalnet.data import DataOptions, load_dataset
from spinalnet.models import create_model
from spinalnet.engine import TrainConfig
from spinalnet.engine.train import train

SYSTEM_COPY = Path("/usr/share/datasets/fashion-mnist")


def classic_dataset(root: Path) -> torchvision.datasets.FashionMNIST:
    """torchvision's own dataset class over the system copy (unpacked into its raw/ layout)."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in SYSTEM_COPY.glob("*.gz"):
        with gzip.open(gz) as src, open(raw / gz.stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    tf = transforms.Compose([transforms.RandomPerspective(), transforms.RandomRotation(10), transforms.ToTensor(),
                             transforms.Normalize((0.2860,), (0.3530,))])
    return torchvision.datasets.FashionMNIST(str(root), train=True, transform=tf)


def classic_throughput(model_name: str, batches: int | None, batch_size: int, root: Path) -> float:
    torch.manual_seed(0)
    model = create_model(model_name, 10, head="spinal").train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = torch.utils.data.DataLoader(classic_dataset(root), batch_size=batch_size, shuffle=True,
                                         num_workers=2, drop_last=True)
    seen, start = 0, time.perf_counter()
    for i, (x, y) in enumerate(loader):
        if batches is not None and i >= batches:
            break
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(y)
    return seen / (time.perf_counter() - start)


def compute_throughput(model_name: str, batches: int, batch_size: int) -> float:
    """In the engine's memory format (channels-last), so the ratio measures only the data path."""
    torch.manual_seed(0)
    model = create_model(model_name, 10, head="spinal").train().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))
    for _ in range(5):
        torch.nn.functional.cross_entropy(model(x), y).backward()
    start = time.perf_counter()
    for _ in range(batches):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return batches * batch_size / (time.perf_counter() - start)


def engine_throughput(model_name: str, batches: int | None, batch_size: int, splits, out: Path) -> float:
    config = TrainConfig(dataset="fashion-mnist", model=model_name, head="spinal", epochs=1, batch_size=batch_size,
                         augment="perspective-rotate", progress=False, output=str(out),
                         limit_batches=float(batches) if batches else 1.0, val_fraction=0.1)
    return train(config, splits, out)["images_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="25 batches per measurement (under a minute)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--models", default="default-cnn,vgg5")
    args = parser.parse_args()
    if not (SYSTEM_COPY / "train-images-idx3-ubyte.gz").is_file():
        raise SystemExit(f"needs the real Fashion-MNIST in {SYSTEM_COPY} (apt-get install dataset-fashion-mnist)")
    splits = load_dataset("fashion-mnist", DataOptions())
    print(f"# training throughput, Fashion-MNIST, batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; images per second")
    print(f"{'model':<13}{'batches':>9}{'classic':>10}{'engine':>10}{'compute':>10}{'engine/classic':>16}"
          f"{'engine/compute':>16}")
    with tempfile.TemporaryDirectory() as tmp:
        for model_name in args.models.split(","):
            if args.quick:
                batches = 25
            else:
                batches = None if model_name == "default-cnn" else 150
            classic = classic_throughput(model_name, batches, args.batch_size, Path(tmp) / "classic")
            engine = engine_throughput(model_name, batches, args.batch_size, splits, Path(tmp) / model_name)
            compute = compute_throughput(model_name, batches or 300, args.batch_size)
            label = "full epoch" if batches is None else str(batches)
            print(f"{model_name:<13}{label:>9}{classic:>10.0f}{engine:>10.0f}{compute:>10.0f}"
                  f"{engine / classic:>15.2f}x{engine / compute:>15.2f}x")


if __name__ == "__main__":
    main()
