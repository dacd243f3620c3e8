"""torchvision datasets: the MNIST family and small colour sets in memory, larger ones per sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision

from spinalnet.data.arrays import ImageArrays, as_image_arrays, split_fraction
from spinalnet.data.folders import TransformedSubset
from spinalnet.data.idx import read_idx
from spinalnet.data.locate import DataOptions, not_found
from spinalnet.errors import UsageError

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# name -> torchvision class (download and its folder layout root/<Class>/raw)
IDX_DATASETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}


def _find_idx_dir(name: str, options: DataOptions) -> Path | None:
    cls = IDX_DATASETS[name]
    dirs = options.candidate_dirs(name)
    if options.data_dir is not None:
        dirs.append(options.data_dir / cls / "raw")
    dirs.append(options.download_root(name) / cls / "raw")
    for d in dirs:
        if all(_idx_path(d, f) for pair in IDX_FILES.values() for f in pair):
            return d
    return None


def _idx_path(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def load_idx_dataset(name: str, options: DataOptions) -> tuple[ImageArrays, ImageArrays]:
    """MNIST, Fashion-MNIST or KMNIST from IDX files, downloading through torchvision if allowed."""
    found = _find_idx_dir(name, options)
    if found is None and options.download:
        getattr(torchvision.datasets, IDX_DATASETS[name])(str(options.download_root(name)), download=True)
        found = _find_idx_dir(name, options)
    if found is None:
        hint = ("Pass --download, or --data-dir DIR with the four IDX files in DIR/" + name)
        if name == "fashion-mnist":
            hint += ", or install Debian's dataset-fashion-mnist package"
        raise not_found(name, options, options.candidate_dirs(name), hint + ".")
    splits = []
    for split in ("train", "test"):
        img_path, lbl_path = (_idx_path(found, f) for f in IDX_FILES[split])
        images, labels = read_idx(img_path), read_idx(lbl_path)
        if images.ndim != 3:
            raise UsageError(f"{img_path}: expected N x H x W images, got shape {images.shape}")
        splits.append(as_image_arrays(images, labels, str(img_path)))
    return splits[0], splits[1]


def _torchvision_root(name: str, options: DataOptions, make, hint: str):
    """Try each candidate root with download=False, then download if allowed."""
    looked = options.candidate_dirs(name) + [options.download_root(name)]
    for root in looked:
        if root.is_dir():
            try:
                return make(str(root), False)
            except (RuntimeError, FileNotFoundError):
                continue
    if options.download:
        return make(str(options.download_root(name)), True)
    raise not_found(name, options, looked, hint)


def load_emnist(name: str, options: DataOptions) -> tuple[ImageArrays, ImageArrays]:
    split = name.split("-", 1)[1]
    out = []
    for train in (True, False):
        ds = _torchvision_root(name, options, lambda r, d: torchvision.datasets.EMNIST(r, split=split, train=train, download=d),
                               "Pass --download or --data-dir containing EMNIST/raw.")
        images = ds.data.numpy().transpose(0, 2, 1)  # EMNIST stores images transposed
        labels = ds.targets.numpy() - (1 if split == "letters" else 0)  # letters are 1..26
        out.append(as_image_arrays(images, labels, f"EMNIST {split}"))
    return out[0], out[1]


def load_qmnist(name: str, options: DataOptions) -> tuple[ImageArrays, ImageArrays]:
    out = []
    for what in ("train", "test"):
        ds = _torchvision_root(name, options, lambda r, d: torchvision.datasets.QMNIST(r, what=what, download=d),
                               "Pass --download or --data-dir containing QMNIST/raw.")
        out.append(as_image_arrays(ds.data.numpy(), ds.targets[:, 0].numpy(), f"QMNIST {what}"))
    return out[0], out[1]


def load_cifar(name: str, options: DataOptions) -> tuple[ImageArrays, ImageArrays]:
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    out = []
    for train in (True, False):
        ds = _torchvision_root(name, options, lambda r, d: cls(r, train=train, download=d),
                               f"Pass --download or --data-dir containing the {cls.base_folder} folder.")
        out.append(as_image_arrays(ds.data.transpose(0, 3, 1, 2), np.asarray(ds.targets), name))
    return out[0], out[1]


def load_svhn_stl(name: str, options: DataOptions) -> tuple[ImageArrays, ImageArrays]:
    cls = torchvision.datasets.SVHN if name == "svhn" else torchvision.datasets.STL10
    out = []
    for split in ("train", "test"):
        ds = _torchvision_root(name, options, lambda r, d: cls(r, split=split, download=d),
                               f"Pass --download or --data-dir containing the {name} files.")
        out.append(as_image_arrays(ds.data, np.asarray(ds.labels), name))
    return out[0], out[1]


def load_per_sample(name: str, options: DataOptions, train_tf, eval_tf):
    """Caltech-101 (seeded 80/20 split), Stanford Cars, Flowers-102: PIL images through transforms."""
    hint = f"Pass --download or --data-dir containing the torchvision layout of {name}."
    if name == "caltech101":
        ds = _torchvision_root(name, options, lambda r, d: torchvision.datasets.Caltech101(r, download=d), hint)
        labels = np.asarray(ds.y)
        train_idx, test_idx = split_fraction(len(ds), 0.2, options.split_seed, "test")
        return (TransformedSubset(ds, train_idx, train_tf, labels), TransformedSubset(ds, test_idx, eval_tf, labels),
                len(ds.categories))
    if name == "stanford-cars":
        make = lambda split: (lambda r, d: torchvision.datasets.StanfordCars(r, split=split, download=d))
    else:
        make = lambda split: (lambda r, d: torchvision.datasets.Flowers102(r, split=split, download=d))
    train = _torchvision_root(name, options, make("train"), hint)
    test = _torchvision_root(name, options, make("test"), hint)
    parts = [train]
    if name == "flowers102":  # its official train split has 10 images per class: use train+val
        parts.append(_torchvision_root(name, options, make("val"), hint))
    pool = torch.utils.data.ConcatDataset(parts)
    train_labels = np.concatenate([_labels_of(p) for p in parts])
    classes = int(train_labels.max()) + 1
    return (TransformedSubset(pool, torch.arange(len(pool)), train_tf, train_labels),
            TransformedSubset(test, torch.arange(len(test)), eval_tf, _labels_of(test)), classes)


def _labels_of(ds) -> np.ndarray:
    if hasattr(ds, "_labels"):
        return np.asarray(ds._labels)
    return np.asarray([ds._samples[i][1] for i in range(len(ds))])
