"""Checkpoints written atomically: a temporary file in the same directory, fsync, then rename.

A kill at any moment leaves either the previous checkpoint or the new one, never a truncated file.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from spinalnet.rundir import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        atomic_write(path, lambda handle: torch.save(checkpoint, handle))
