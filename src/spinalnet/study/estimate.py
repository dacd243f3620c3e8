"""What a setting will cost on this machine, estimated without its data: FLOPs counted on the meta device, at rates
measured here in about a second (``--dry-run``). A lower bound: the per-step costs of training small heads (the
optimiser, batch assembly, Python) are not FLOPs: the offline study's frozen Fashion-MNIST settings, estimated at
100 to 103 s each, took 270 to 390 s (docs/BENCHMARKS.md, section 9).

- a backbone or whole model: its forward FLOPs per image (``torch.utils.flop_counter`` on meta tensors, so even a
  Wide-ResNet-101 at 224 px costs no memory), divided by the rate a small convolutional network reaches here;
  training costs three forward passes (forward, and a backward of about twice its FLOPs);
- heads on cached features: 2 x parameters FLOPs per example forward, three times that to train, at the rate of a
  (256 x 1280) @ (1280 x 512) product here;
- compare's deploy check: one test pass per arm through the whole model.

The images per split come from the data when it is on this machine, else from the dataset's documented sizes.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class Rates:
    conv: float    # FLOP/s of a small convolutional network's forward pass
    matmul: float  # FLOP/s of a head-sized matrix product


@dataclass(frozen=True)
class Cost:
    extract_seconds: float
    train_seconds: float

    @property
    def seconds(self) -> float:
        return self.extract_seconds + self.train_seconds


def _timed(work, repeats: int = 3) -> float:
    work()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


@functools.lru_cache(maxsize=1)
def machine_rates() -> Rates:
    """Measured once per process (about a second)."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 64, 3, padding=1),
                              torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1)).eval()
    x = torch.rand(32, 3, 64, 64)
    with torch.inference_mode():
        conv = forward_flops(net, tuple(x.shape)) / _timed(lambda: net(x))
    a, b = torch.rand(256, 1280), torch.rand(1280, 512)
    matmul = 2 * 256 * 1280 * 512 / _timed(lambda: a @ b, 10)
    return Rates(conv, matmul)


def forward_flops(model: torch.nn.Module, shape: tuple[int, ...]) -> float:
    """FLOPs of one forward pass of ``model`` on an input of ``shape``, counted on the meta device."""
    meta = model.to("meta") if next(model.parameters()).device.type != "meta" else model
    with torch.device("meta"), FlopCounterMode(display=False) as counter:
        meta(torch.empty(shape))
    return float(counter.get_total_flops())


def model_flops(config: Any, facts: dict[str, Any]) -> tuple[float, float]:
    """Forward FLOPs per image of a run's whole model and of its backbone alone (at its input size)."""
    from spinalnet.engine.module import build_model
    from spinalnet.engine.module import recorded_input

    spec = recorded_input(config, facts)
    blank = type(config)(**{**config.to_dict(), "pretrained": None, "freeze_backbone": False})
    with torch.device("meta"):
        model = build_model(blank, facts)
    shape = (1, spec.model_channels, *spec.model_size)
    total = forward_flops(model, shape)
    head = model.get_submodule(model.head_path)
    head_flops = 2.0 * sum(p.numel() for p in head.parameters())
    return total, max(total - head_flops, 0.0)


def estimate(config: Any, facts: dict[str, Any], arms: dict[str, int], runs: int, cached: bool) -> Cost:
    """Seconds of a setting: ``arms`` maps each arm to its head's parameters, ``runs`` is the number of runs of each
    arm (seeds x tuning values), ``cached``: the heads train on features extracted once."""
    rates = machine_rates()
    sizes = facts["sizes"]
    images = sizes["train"] + sizes["val"] + sizes["test"]
    total, backbone = model_flops(config, facts)
    epochs = config.epochs
    # the deploy check: one test pass per arm through the whole model, reading the images (not the features)
    check = total * sizes["test"] * len(arms) / rates.conv if getattr(config, "deploy_check", True) else 0.0
    if cached:
        extract = backbone * images / rates.conv
        heads = sum(2.0 * params * (3 * sizes["train"] + sizes["val"]) * epochs + 2.0 * params * sizes["test"]
                    for params in arms.values()) * runs
        return Cost(extract, heads / rates.matmul + check)
    train_factor = 1.0 if config.freeze_backbone else 3.0  # a frozen backbone runs forward only
    per_run = total * (train_factor * sizes["train"] + sizes["val"]) * epochs + total * sizes["test"]
    return Cost(0.0, per_run * runs * len(arms) / rates.conv + check)
