"""Where dataset files are looked for: --data-dir, then a system-wide copy, then a download."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from spinalnet.errors import DataNotFoundError

SYSTEM_DATA_DIRS = (Path("/usr/share/datasets"),)
DEFAULT_DOWNLOAD_DIR = Path(os.environ.get("SPINALNET_DATA", Path.home() / ".cache" / "spinalnet" / "data"))


@dataclass
class DataOptions:
    """How to find and split a dataset. The validation split is seeded by ``split_seed``."""

    data_dir: Path | None = None
    download: bool = False
    val_fraction: float = 0.1
    split_seed: int = 0
    image_size: int | None = None             # resize for per-sample (folder) datasets
    categories: list[str] = field(default_factory=list)   # Quick Draw
    samples_per_class: int = 10_000                       # Quick Draw
    system_dirs: tuple[Path, ...] = SYSTEM_DATA_DIRS

    def candidate_dirs(self, name: str) -> list[Path]:
        """Directories that may hold dataset ``name``, in the order they are tried."""
        dirs: list[Path] = []
        if self.data_dir is not None:
            dirs += [self.data_dir / name, self.data_dir]
        dirs += [d / name for d in self.system_dirs]
        return dirs

    def download_root(self, name: str) -> Path:
        return (self.data_dir or DEFAULT_DOWNLOAD_DIR) / name


def not_found(name: str, options: DataOptions, looked: list[Path], how: str) -> DataNotFoundError:
    where = ", ".join(str(p) for p in looked) or "(nowhere: no --data-dir given)"
    return DataNotFoundError(f"dataset {name!r} not found; looked in {where}. {how}")
