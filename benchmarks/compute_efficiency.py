"""Achieved FLOP/s of VGG-5 training against this machine's measured matmul peak, in one run.

FLOPs per training step come from PyTorch's FlopCounterMode (forward + backward of convolutions and
matrix multiplies); the peak is the best float32 square matmul rate measured here; the training rate
is forward + backward + SGD step on batches already in memory, channels-last as in the engine.

    python benchmarks/compute_efficiency.py           # batch 64 and 256
    python benchmarks/compute_efficiency.py --quick   # under a minute
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from spinalnet.models import create_model


def matmul_peak(sizes=(1024, 2048), repeats: int = 10) -> float:
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        for _ in range(3):
            a @ b
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - start))
    return best


def training_rate(model_name: str, batch: int, steps: int, head: str) -> tuple[float, float]:
    """(FLOPs per step, steps per second) of forward + backward + SGD step."""
    torch.manual_seed(0)
    model = create_model(model_name, 10, head=head).train().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return counter.get_total_flops(), steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default="vgg5")
    args = parser.parse_args()
    peak = matmul_peak(repeats=5 if args.quick else 10)
    print(f"# {args.model} training, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"measured float32 matmul peak: {peak / 1e9:.0f} GFLOP/s")
    print(f"{'head':<8}{'batch':>6}{'GFLOP/step':>12}{'img/s':>9}{'GFLOP/s':>9}{'of peak':>9}")
    for head in ("fc", "spinal"):
        for batch in (64,) if args.quick else (64, 256):
            flops, rate = training_rate(args.model, batch, 5 if args.quick else 15, head)
            achieved = flops * rate
            print(f"{head:<8}{batch:>6}{flops / 1e9:>12.2f}{rate * batch:>9.0f}{achieved / 1e9:>9.0f}"
                  f"{achieved / peak:>8.0%}")


if __name__ == "__main__":
    main()
