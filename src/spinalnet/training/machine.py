"""Machine options checked against this machine before anything is written or any process is started.

Lightning would raise its own exceptions much later (or, for CPU, start as many processes as asked:
``--devices 99 --accelerator cpu`` once used up a machine's memory), so the limits are checked here.
"""

from __future__ import annotations

import os

from spinalnet.errors import UsageError


def parse_devices(devices: str | int) -> int | str:
    """``"auto"`` or a whole number >= 1."""
    text = str(devices).strip()
    if text == "auto":
        return "auto"
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise UsageError(f"--devices must be auto or a whole number >= 1, got {devices!r}")


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def mps_available() -> bool:
    import torch

    return torch.backends.mps.is_available()


def check_machine(accelerator: str, devices: str | int, strategy: str) -> int | str:
    """Refuse an accelerator this machine lacks and device counts it cannot serve; return the device count."""
    count = parse_devices(devices)
    if accelerator in ("gpu", "cuda"):
        gpus = gpu_count()
        if gpus == 0:
            raise UsageError(f"--accelerator {accelerator}: no CUDA GPU is visible on this machine; "
                             "use --accelerator cpu (or auto)")
        if count != "auto" and count > gpus:
            raise UsageError(f"--devices {count}: this machine has {gpus} GPU(s)")
    elif accelerator == "mps":
        if not mps_available():
            raise UsageError("--accelerator mps: Apple's MPS is not available on this machine")
        if count != "auto" and count > 1:
            raise UsageError(f"--devices {count}: MPS has one device")
    elif count != "auto":
        gpus = gpu_count() if accelerator == "auto" else 0
        if gpus and count > gpus:
            raise UsageError(f"--devices {count}: this machine has {gpus} GPU(s)")
        cores = os.cpu_count() or 1
        if not gpus and count > cores:
            raise UsageError(f"--devices {count} would start {count} CPU processes; this machine has {cores} "
                             f"cores, so at most --devices {cores} (each process holds a copy of model and data)")
    return count
