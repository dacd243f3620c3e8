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


def cpu_cores() -> int:
    """The cores this process may run on: its CPU affinity (``taskset``, cpusets), not the machine's count.
    A container's CPU quota (docker ``--cpus``, Kubernetes limits) is not seen here: pass --jobs to match it."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def mps_available() -> bool:
    import torch

    return torch.backends.mps.is_available()


#: Environment variables that say a multi-node launcher started this process: torchrun, SLURM, or
#: Lightning's own (NODE_RANK, with MASTER_ADDR and MASTER_PORT set on every node by hand).
LAUNCHER_VARIABLES = ("TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "NODE_RANK")


def check_num_nodes(num_nodes: int) -> None:
    """Without a launcher, a multi-node run would wait forever for nodes that nobody starts."""
    if num_nodes > 1 and not any(name in os.environ for name in LAUNCHER_VARIABLES):
        raise UsageError(f"--num-nodes {num_nodes} needs the same command started on every node by a launcher: "
                         "torchrun (--nnodes), SLURM (srun), or NODE_RANK, MASTER_ADDR and MASTER_PORT set on "
                         "each node (see README, Scale out)")


def check_machine(accelerator: str, devices: str | int, strategy: str, num_nodes: int = 1) -> int | str:
    """Refuse an accelerator this machine lacks and device counts it cannot serve; return the device count."""
    count = parse_devices(devices)
    check_num_nodes(num_nodes)
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
        cores = cpu_cores()
        if not gpus and count > cores:
            raise UsageError(f"--devices {count} would start {count} CPU processes; this machine has {cores} "
                             f"cores, so at most --devices {cores} (each process holds a copy of model and data)")
    return count
