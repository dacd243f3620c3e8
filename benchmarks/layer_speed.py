"""SpinalLinear against the per-layer formulation of the paper's scripts, side by side in one run.

For every shape and batch: forward+backward time (median of interleaved repeats) of both, with the
same parameters, the memory the backward pass holds (bytes of the tensors autograd saves) and the
floating-point work of the step (``FlopCounterMode``: matrix products). Prints ratios (per-layer /
SpinalLinear for time and work: > 1 means SpinalLinear is faster or does less; SpinalLinear / per-layer
for memory). The work ratio is what the speedup would be if both ran their products equally fast.

    python benchmarks/layer_speed.py            # all shapes, batches 64 and 512, eager and torch.compile
    python benchmarks/layer_speed.py --quick    # under a minute
    python benchmarks/layer_speed.py --against autograd --device cuda   # the fused step against autograd

``--against autograd`` times SpinalLinear's one-node training step (``fused=True``) against its own autograd
path (``fused=False``), same parameters: the measurement that decides where the automatic mode takes the fused
step (``layers.spinal_linear.FUSED_DEVICES``).
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from reference import ReferenceSpinal  # noqa: E402  (the plain per-layer implementation)

from spinalnet import SpinalLinear  # noqa: E402

# (name, in_features, layer_width, num_layers, out_features, dropout, batch_norm): the paper's shapes
SHAPES = [
    ("vgg5-head 256/128x4 +drop+bn", 256, 128, 4, 10, 0.5, True),
    ("wide 2048/512x4 -> 100", 2048, 512, 4, 100, 0.0, False),
    ("mnist-cnn 320/8x6", 320, 8, 6, 10, 0.0, False),
    ("4096/128x4", 4096, 128, 4, 10, 0.0, False),
    ("deep 2048/64x16", 2048, 64, 16, 10, 0.0, False),
]


def step(module: torch.nn.Module, x: torch.Tensor) -> None:
    module.zero_grad(set_to_none=True)
    module(x).sum().backward()


CLOCK = time.perf_counter  # --clock cpu: time.process_time, CPU seconds of this process (steadier under load)


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = CLOCK()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return CLOCK() - start


def compare_times(a, b, x, device, repeats: int, inner: int) -> tuple[float, float]:
    """Median seconds per step of a and b, interleaved so drift hits both alike."""
    for _ in range(3):
        step(a, x), step(b, x)
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(timed(lambda: [step(a, x) for _ in range(inner)], device) / inner)
        tb.append(timed(lambda: [step(b, x) for _ in range(inner)], device) / inner)
    return statistics.median(ta), statistics.median(tb)


def saved_bytes(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of distinct storages autograd keeps for the backward pass (its activation memory)."""
    seen: dict[int, int] = {}
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}

    def pack(t: torch.Tensor):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and ptr != x.untyped_storage().data_ptr():
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module(x)
    out.sum().backward()
    return sum(seen.values())


def step_flops(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Floating-point operations of one forward+backward step, as PyTorch's FlopCounterMode counts them."""
    with FlopCounterMode(display=False) as counter:
        step(module, x)
    return counter.get_total_flops()


def pair(fast: SpinalLinear, against: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(baseline, measured) with the same parameters: the per-layer reference and SpinalLinear as it is, or
    SpinalLinear's autograd path and its fused step."""
    if against == "per-layer":
        return ReferenceSpinal.like(fast).to(fast.output.weight.device).train(), fast
    base, fused = copy.deepcopy(fast), fast
    base.fused, fused.fused = False, True
    return base, fused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no torch.compile (under a minute)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", default="64,512", help="comma-separated batch sizes (default: 64,512)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile measurements")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's); 1 is steadier on a loaded machine")
    parser.add_argument("--shapes", help="comma-separated shape names to run (default: all), e.g. mnist-cnn,vgg5-head")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall time (default) or this process's CPU time, steadier on a shared machine; use cpu "
                        "with --threads 1 (idle worker threads spin and would count)")
    parser.add_argument("--against", choices=["per-layer", "autograd"], default="per-layer",
                        help="the baseline: the paper's per-layer formulation (default) or SpinalLinear's autograd "
                        "path, timed against its fused step")
    args = parser.parse_args()
    if args.clock == "cpu":
        global CLOCK
        CLOCK = time.process_time
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = [s for s in SHAPES if not args.shapes or s[0].split()[0] in args.shapes.split(",")]
    device = torch.device(args.device)
    batches = [int(b) for b in args.batches.split(",")]
    repeats, inner = (5, 3) if args.quick else (15, 5)
    base_name, fast_name = ("per-layer", "spinal") if args.against == "per-layer" else ("autograd", "fused")
    print(f"# SpinalLinear vs {base_name}, forward+backward, {device.type}: "
          f"{torch.cuda.get_device_name(0) if device.type == 'cuda' else platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, {args.clock} clock, torch {torch.__version__}")
    print(f"{'shape':<30}{'batch':>6}{base_name + ' ms':>14}{fast_name + ' ms':>11}{'speedup':>9}{'mem ratio':>11}"
          f"{'work ratio':>12}")
    speedups, at_512 = [], []
    for name, in_f, width, layers, out_f, drop, bn in shapes:
        for batch in batches:
            torch.manual_seed(0)
            ref, fast = pair(SpinalLinear(in_f, out_f, layer_width=width, num_layers=layers, dropout=drop,
                                          batch_norm=bn).to(device).train(), args.against)
            x = torch.randn(batch, in_f, device=device)
            t_ref, t_fast = compare_times(ref, fast, x, device, repeats, inner)
            mem = saved_bytes(fast, x) / max(saved_bytes(ref, x), 1)
            work = step_flops(ref, x) / max(step_flops(fast, x), 1)
            speedups.append(t_ref / t_fast)
            if batch == 512:
                at_512.append(t_ref / t_fast)
            print(f"{name:<30}{batch:>6}{t_ref * 1e3:>14.3f}{t_fast * 1e3:>11.3f}{t_ref / t_fast:>8.2f}x{mem:>10.2f}x"
                  f"{work:>11.2f}x")
    geo = math.exp(statistics.fmean(math.log(s) for s in speedups))
    print(f"geometric mean speedup {geo:.2f}x; minimum {min(speedups):.2f}x"
          + (f"; minimum at batch 512 {min(at_512):.2f}x" if at_512 else ""))
    if args.quick or args.no_compile:
        return
    if args.against == "autograd":  # a compiled graph takes the autograd path: nothing to compare
        return
    print(f"\n# under torch.compile (both compiled), batch {max(batches)}")
    print(f"{'shape':<30}{'per-layer ms':>14}{'spinal ms':>11}{'speedup':>9}")
    compiled = []
    for name, in_f, width, layers, out_f, drop, bn in shapes:
        torch.manual_seed(0)
        fast = SpinalLinear(in_f, out_f, layer_width=width, num_layers=layers, dropout=drop,
                            batch_norm=bn).to(device).train()
        ref = ReferenceSpinal.like(fast).to(device).train()
        x = torch.randn(max(batches), in_f, device=device)
        t_ref, t_fast = compare_times(torch.compile(ref), torch.compile(fast), x, device, repeats, inner)
        compiled.append(t_ref / t_fast)
        print(f"{name:<30}{t_ref * 1e3:>14.3f}{t_fast * 1e3:>11.3f}{t_ref / t_fast:>8.2f}x")
    print(f"geometric mean speedup under torch.compile {math.exp(statistics.fmean(map(math.log, compiled))):.2f}x")


if __name__ == "__main__":
    main()
