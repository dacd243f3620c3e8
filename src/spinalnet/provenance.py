"""Where a result comes from: library versions, the git commit of this package, the hardware."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def versions() -> dict[str, str | None]:
    """Versions of the libraries that decide the numbers, and the git commit of this package."""
    import lightning
    import numpy
    import torch
    import torchvision

    from spinalnet.version import __version__

    return {"spinalnet": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "lightning": lightning.__version__, "numpy": numpy.__version__,
            "git_commit": git_commit()}


def git_commit() -> str | None:
    """The commit of the checkout this package runs from, ``-dirty`` if the package source differs from it."""
    import subprocess

    package = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=package, capture_output=True, text=True, timeout=10)
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--", str(package))
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("-dirty" if dirty else "")) or None


def hardware() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
