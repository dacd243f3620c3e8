"""Where a SpinalLinear training step spends its time, next to the per-layer form (docs/BENCHMARKS.md, section 1).

For one benchmark shape and batch: the floating-point work of a step (``FlopCounterMode``), the share
of the step the matrix products take under ``torch.profiler`` and the rate they run at, the most
expensive operations per step, and each of the step's product shapes timed alone.

    python benchmarks/layer_anatomy.py wide 512      # the 2048 / 512 x 4 head
    python benchmarks/layer_anatomy.py mnist-cnn 64  # the MNIST head
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from layer_speed import SHAPES, step  # noqa: E402
from reference import ReferenceSpinal  # noqa: E402

from spinalnet import SpinalLinear  # noqa: E402

PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def step_flops(module: torch.nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        step(module, x)
    return counter.get_total_flops()


def profile_steps(module: torch.nn.Module, x: torch.Tensor, steps: int) -> tuple[float, float, list]:
    """Seconds per step, seconds per step in products, and (name, calls per step, µs per step) by self time."""
    for _ in range(5):
        step(module, x)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step(module, x)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6 / steps
    products = sum(e.self_cpu_time_total for e in events if e.key in PRODUCTS) / 1e6 / steps
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]
    return total, products, [(e.key, e.count / steps, e.self_cpu_time_total / steps) for e in top]


def product_shapes(module: torch.nn.Module, x: torch.Tensor) -> Counter:
    """The (m, k, n) of every matrix product of one step, counted."""
    shapes: Counter = Counter()

    class Record(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.__name__.split(".")[0]
            if name in ("mm", "addmm"):
                a, b = (args[0], args[1]) if name == "mm" else (args[1], args[2])
                shapes[(a.shape[0], a.shape[1], b.shape[1])] += 1
            return func(*args, **(kwargs or {}))

    with Record():
        step(module, x)
    return shapes


def time_product(m: int, k: int, n: int, repeats: int) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(5):
        a.mm(b)
    start = time.perf_counter()
    for _ in range(repeats):
        a.mm(b)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shape", choices=[s[0].split()[0] for s in SHAPES])
    parser.add_argument("batch", type=int)
    parser.add_argument("--steps", type=int, default=20, help="profiled steps (default: 20)")
    args = parser.parse_args()
    name, in_f, width, layers, out_f, drop, bn = next(s for s in SHAPES if s[0].split()[0] == args.shape)
    torch.manual_seed(0)
    fast = SpinalLinear(in_f, out_f, layer_width=width, num_layers=layers, dropout=drop, batch_norm=bn).train()
    ref = ReferenceSpinal.like(fast).train()
    x = torch.randn(args.batch, in_f)
    print(f"# {name}, batch {args.batch}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    for label, module in (("SpinalLinear", fast), ("per-layer", ref)):
        flops = step_flops(module, x)
        total, products, top = profile_steps(module, x, args.steps)
        print(f"\n{label}: {flops / 1e9:.3f} GFLOP per step; under the profiler {total * 1e3:.3f} ms per step, "
              f"products {products * 1e3:.3f} ms ({100 * products / total:.0f}%, {flops / products / 1e9:.0f} GFLOP/s)")
        print(f"{'operation':<60}{'calls/step':>11}{'us/step':>10}")
        for key, calls, micros in top:
            print(f"{key[:58]:<60}{calls:>11.1f}{micros:>10.1f}")
        print(f"{'product (m x k by k x n), timed alone':<44}{'calls/step':>11}{'us':>10}{'GFLOP/s':>10}")
        for (m, k, n), count in sorted(product_shapes(module, x).items()):
            seconds = time_product(m, k, n, repeats=max(5, min(2000, int(2e8 / (m * k * n + 1)))))
            print(f"{f'{m} x {k} by {k} x {n}':<44}{count:>11}{seconds * 1e6:>10.1f}{2 * m * k * n / seconds / 1e9:>10.1f}")


if __name__ == "__main__":
    main()
