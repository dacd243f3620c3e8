"""Image-folder datasets (ImageFolder layout): found, scanned, and served as stored images.

A folder small enough (:data:`IN_MEMORY_BYTES` of decoded pixels) is decoded once into an in-memory uint8
array, as npz data is, and trained at the same speed; a larger one is decoded per sample by data-loading
workers (:class:`FileImages`). Either way a sample is the same stored image (:mod:`spinalnet.data.images`), and
augmentation happens afterwards on tensors, so the numbers do not depend on which way the data was read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from spinalnet.data.arrays import ImageArrays, split_fraction
from spinalnet.data.download import download, other_ways
from spinalnet.data.images import GREY_MODES, IMAGE_SUFFIXES, decode, decode_all, probe
from spinalnet.data.locate import DataOptions, not_found, search
from spinalnet.errors import UsageError, require_directory

TRAIN_DIRS = ("train", "Training")
TEST_DIRS = ("test", "Test", "val", "valid")
DOWNLOADS = {"hymenoptera": "https://download.pytorch.org/tutorial/hymenoptera_data.zip"}

#: A pretrained backbone sees the centre 7/8 of each side (ImageNet's 224 of 256), as in its own training.
PRETRAINED_CROP = 7 / 8
#: Folders whose decoded pixels fit in this many bytes are held in memory (2 GiB: CIFAR-10 as 32 px PNGs is
#: 184 MB, Caltech-101 at 256 px 1.8 GB; ImageNet or Bird-225 at 256 px are read per sample).
IN_MEMORY_BYTES = int(os.environ.get("SPINALNET_IN_MEMORY_BYTES", 2 << 30))
#: Images whose headers are read to decide grey or colour and the stored size (every file up to this many; a
#: seeded sample of this many beyond).
PROBE_LIMIT = 50_000
DECODED_PROBE_LIMIT = 1_000


class FileImages(Dataset):
    """Images read one by one (``reader(i)``: a path or a PIL image) and decoded into stored images of
    ``channels`` x ``size``; items are ``(image, label, index)``, the index within this split."""

    def __init__(self, reader: Callable[[int], Any], labels: np.ndarray, indices: Tensor,
                 channels: int = 3, size: tuple[int, int] | None = None, root: str = "") -> None:
        self.reader, self.all_labels, self.indices = reader, labels, indices
        self.channels, self.size, self.root = channels, size, root

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def labels(self) -> np.ndarray:
        return self.all_labels[self.indices.numpy()]

    def source(self, i: int) -> Any:
        return self.reader(int(self.indices[i]))

    def file_stamp(self) -> bytes:
        """Each file's path and size in bytes, in order (a stat per file, about 2 us): an added, removed or renamed
        file, or an image re-saved at another size, changes the data's fingerprint without reading every file. An
        edit that keeps a file's byte size (possible in uncompressed formats: .bmp, .ppm, .pgm, .tif) is not seen;
        nor is a modification time used, which a copied folder changes too. Empty for datasets whose reader gives
        PIL images (torchvision's), which are fixed releases."""
        if not isinstance(self.reader, PathReader):
            return b""
        paths = [self.reader(i) for i in self.indices.tolist()]
        return "\n".join(f"{path}:{os.stat(path).st_size}" for path in paths).encode()

    def subset(self, index: Tensor) -> "FileImages":
        return FileImages(self.reader, self.all_labels, self.indices[index], self.channels, self.size, self.root)

    def stored_as(self, channels: int, size: tuple[int, int]) -> "FileImages":
        return FileImages(self.reader, self.all_labels, self.indices, channels, size, self.root)

    def __getitem__(self, i: int) -> tuple[Tensor, int, int]:
        return decode(self.source(i), self.channels, self.size), int(self.labels[i]), i

    def to_arrays(self) -> ImageArrays:
        """Every image decoded now, into memory."""
        images = decode_all([self.source(i) for i in range(len(self))], self.channels, self.size)
        return ImageArrays(images, torch.as_tensor(self.labels, dtype=torch.int64))


class DatasetReader:
    """``reader(i)`` of a torchvision dataset: its i-th PIL image."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __call__(self, i: int) -> Any:
        return self.dataset[i][0]


class PathReader:
    """``reader(i)`` of a folder: the path of its i-th file (picklable, for data-loading workers)."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)

    def __call__(self, i: int) -> str:
        return self.paths[i]


def scan(path: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """The image files under ``path/<class>/``, their labels (sub-folders in sorted order) and the class names."""
    require_directory(path, "image folder")
    classes = sorted(entry.name for entry in os.scandir(path) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise UsageError(f"{path}: not an image folder with one sub-folder per class (it has no sub-folders)")
    paths, labels = [], []
    for label, name in enumerate(classes):
        for root, dirs, files in sorted(os.walk(path / name, followlinks=True)):
            dirs.sort()
            for file in sorted(files):
                if file.lower().endswith(IMAGE_SUFFIXES) and not file.startswith("."):
                    paths.append(os.path.join(root, file))
                    labels.append(label)
    empty = [name for k, name in enumerate(classes) if k not in set(labels)]
    if empty:
        raise UsageError(f"{path}: class folder(s) {', '.join(empty[:5])} hold no image files "
                         f"({', '.join(IMAGE_SUFFIXES)})")
    return paths, np.asarray(labels, dtype=np.int64), classes


def stored_form(pools: Sequence[FileImages], seed: int, square: int | None) -> tuple[int, tuple[int, int] | None]:
    """Grey (1 channel) when every probed image of ``pools`` is grey, else colour (3); their common (H, W), or
    ``square`` x ``square`` when sizes differ. Files are probed by their headers (up to :data:`PROBE_LIMIT`, a
    seeded sample beyond); images a dataset object has to decode, up to :data:`DECODED_PROBE_LIMIT`."""
    items = [(pool, i) for pool in pools for i in range(len(pool))]
    files = all(isinstance(pool.reader, PathReader) for pool in pools)
    limit = PROBE_LIMIT if files else DECODED_PROBE_LIMIT
    order = range(len(items)) if len(items) <= limit else \
        torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))[:limit].tolist()
    modes, sizes = set(), set()
    for k in order:
        pool, i = items[k]
        source = pool.source(i)
        mode, size = probe(source) if isinstance(source, (str, Path)) else (source.mode, (source.height, source.width))
        modes.add(mode)
        sizes.add(size)
    channels = 1 if modes <= GREY_MODES else 3
    return channels, next(iter(sizes)) if len(sizes) == 1 else (square, square)


def _subdir(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def find_folder_root(name: str, options: DataOptions) -> Path:
    has_train = lambda d: d if _subdir(d, TRAIN_DIRS) is not None else None  # noqa: E731
    found = search(name, options, has_train)
    layout = f"DIR/{name}/train/<class>/*.jpg and DIR/{name}/test/<class>/*.jpg"
    if found is None and options.download and name in DOWNLOADS:
        from torchvision.datasets.utils import download_and_extract_archive

        root = options.download_root(name)
        download(name, root, DOWNLOADS[name], layout, lambda: download_and_extract_archive(DOWNLOADS[name], str(root)))
        found = next((d for d in [root, *root.iterdir()] if _subdir(d, TRAIN_DIRS) is not None), None)
    if found is not None:
        return found
    how = (f"Ways to get it: {other_ways(name, layout)}." if name in DOWNLOADS
           else f"Put it in --data-dir DIR as {layout}; it cannot be downloaded automatically.")
    raise not_found(name, options, options.candidate_dirs(name), how)


def load_folder(root: Path, options: DataOptions) -> tuple[FileImages, FileImages, list[str]]:
    """Train and test images from ``root/train`` + ``root/test`` (or val), or one folder split 80/20 (seeded);
    their stored form is set by :func:`spinalnet.data.registry.load_dataset`."""
    require_directory(root, "folder dataset")
    train_dir = _subdir(root, TRAIN_DIRS)
    if train_dir is None:
        paths, labels, classes = scan(root)
        pool = FileImages(PathReader(paths), labels, torch.arange(len(paths)), root=str(root))
        train_idx, test_idx = split_fraction(len(paths), 0.2, options.split_seed, "test")
        return pool.subset(train_idx), pool.subset(test_idx), classes
    test_dir = _subdir(root, TEST_DIRS)
    if test_dir is None:
        raise UsageError(f"{root} has {train_dir.name}/ but no test/ (or val/) folder")
    (train_paths, train_labels, classes), (test_paths, test_labels, test_classes) = scan(train_dir), scan(test_dir)
    if classes != test_classes:
        raise UsageError(f"{train_dir} and {test_dir} have different class folders")
    return (FileImages(PathReader(train_paths), train_labels, torch.arange(len(train_paths)), root=str(train_dir)),
            FileImages(PathReader(test_paths), test_labels, torch.arange(len(test_paths)), root=str(test_dir)), classes)
