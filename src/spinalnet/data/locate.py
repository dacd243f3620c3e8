"""Where dataset files are looked for: everything under --data-dir first, then a system-wide copy, then
the download folder. A copy the user points at always wins over a system one."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence, TypeVar

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
    system_dirs: tuple[Path, ...] | None = None           # None: SYSTEM_DATA_DIRS
    #: per-sample (folder) data: whether the model is a pretrained backbone (its defaults: 224 px, ImageNet's
    #: statistics, the transfer recipe) or trains from scratch (the images' own size, the training split's
    #: statistics, no augmentation); ``augment``: "transfer" or "none" to choose the recipe yourself
    pretrained: bool = False
    augment: str | None = None

    def candidate_dirs(self, name: str, layouts: Sequence[str] = ()) -> list[Path]:
        """Directories that may hold dataset ``name``, in the order they are tried.

        ``layouts`` are sub-folders a copy may use (torchvision's ``FashionMNIST/raw``); every place
        under --data-dir (``DIR/name``, ``DIR``, and each layout under both) comes before any system
        copy, and the download folder comes last.
        """
        def with_layouts(roots: list[Path]) -> list[Path]:
            return [d for root in roots for d in (root, *(root / layout for layout in layouts))]

        user = with_layouts([self.data_dir / name, self.data_dir]) if self.data_dir is not None else []
        system = SYSTEM_DATA_DIRS if self.system_dirs is None else self.system_dirs
        dirs = user + [d / name for d in system] + with_layouts([self.download_root(name)])
        return list(dict.fromkeys(dirs))  # in order, without repeats

    def download_root(self, name: str) -> Path:
        return (self.data_dir or DEFAULT_DOWNLOAD_DIR) / name


def not_found(name: str, options: DataOptions, looked: list[Path], how: str) -> DataNotFoundError:
    where = ", ".join(str(p) for p in looked) or "(nowhere: no --data-dir given)"
    return DataNotFoundError(f"dataset {name!r} not found; looked in {where}. {how}")


T = TypeVar("T")


def search(name: str, options: DataOptions, found: Callable[[Path], T | None],
           layouts: Sequence[str] = ()) -> T | None:
    """The first ``found(dir)`` that is not None over the candidate directories, in their order."""
    for directory in options.candidate_dirs(name, layouts):
        if directory.is_dir() and (result := found(directory)) is not None:
            if options.data_dir is not None and not directory.is_relative_to(options.data_dir):
                print(f"spinalnet: note: dataset {name!r} is not under --data-dir {options.data_dir}; "
                      f"using {directory}", file=sys.stderr)
            return result
    return None
