"""Read an .npz file with errors that name it (shared by image and tabular data; imports numpy only)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from spinalnet.errors import UsageError, require_file


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file; a missing or unreadable file is a UsageError naming it."""
    require_file(path, "npz file")
    if not zipfile.is_zipfile(path):  # np.load would read a .npy array or try to unpickle the file
        raise UsageError(f"{path}: not a readable .npz file (not a zip archive of arrays; write it with numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise UsageError(f"{path}: not a readable .npz file ({err})") from None
