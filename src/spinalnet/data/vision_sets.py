"""torchvision datasets: the MNIST family and small colour sets in memory, larger ones per sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision

from spinalnet.data.arrays import ImageArrays, as_image_arrays, split_fraction
from spinalnet.data.folders import DatasetReader, FileImages
from spinalnet.data.idx import read_idx
from spinalnet.data.download import DOWNLOAD_ERRORS, download, fetch, other_ways
from spinalnet.data.locate import DataOptions, not_found, search
from spinalnet.errors import UsageError

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# name -> torchvision class (download and its folder layout root/<Class>/raw)
IDX_DATASETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}


def _idx_layouts(name: str) -> tuple[str, ...]:
    """Sub-folders an IDX copy may use: torchvision's ``FashionMNIST/raw`` (also how --download stores it)."""
    return (f"{IDX_DATASETS[name]}/raw",)


def _find_idx_dir(name: str, options: DataOptions) -> Path | None:
    """The first directory with all four IDX files; a partial copy under --data-dir is an error, not skipped."""
    stems = [f for pair in IDX_FILES.values() for f in pair]

    def complete(d: Path) -> Path | None:
        present = [f for f in stems if _idx_path(d, f)]
        if present and len(present) < len(stems) and options.data_dir is not None and d.is_relative_to(options.data_dir):
            raise UsageError(f"{d} holds {', '.join(present)} but not {', '.join(f for f in stems if f not in present)} "
                             f"(plain or .gz); {name} needs all four IDX files")
        return d if len(present) == len(stems) else None

    return search(name, options, complete, _idx_layouts(name))


def _idx_path(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_layout_hint(name: str) -> str:
    return f"the four IDX files (train-images-idx3-ubyte.gz, ...) in DIR/{name} or DIR/{IDX_DATASETS[name]}/raw"


def _download_idx(name: str, options: DataOptions) -> None:
    """The four IDX files from torchvision's mirrors (checked against its md5 sums) into DIR/<Class>/raw."""
    cls = getattr(torchvision.datasets, IDX_DATASETS[name])
    root = options.download_root(name)
    raw = root / _idx_layouts(name)[0]

    def run() -> None:
        for filename, md5 in cls.resources:
            if (raw / filename).is_file():
                continue
            errors: list[BaseException] = []
            for mirror in cls.mirrors:
                try:
                    fetch(f"{mirror}{filename}", raw / filename, md5)
                    break
                except DOWNLOAD_ERRORS as err:
                    errors.append(err)
            else:
                raise errors[0]

    download(name, root, f"{cls.mirrors[0]}{cls.resources[0][0]}"
             + (f" (and {len(cls.mirrors) - 1} other mirror(s))" if len(cls.mirrors) > 1 else ""),
             _idx_layout_hint(name), run)


def load_idx_dataset(name: str, options: DataOptions) -> tuple[ImageArrays, ImageArrays]:
    """MNIST, Fashion-MNIST or KMNIST from IDX files, downloaded from torchvision's mirrors if allowed."""
    found = _find_idx_dir(name, options)
    if found is None and options.download:
        _download_idx(name, options)
        found = _find_idx_dir(name, options)
    if found is None:
        raise not_found(name, options, options.candidate_dirs(name, _idx_layouts(name)),
                        f"Ways to get it: {other_ways(name, _idx_layout_hint(name))}.")
    splits = []
    for split in ("train", "test"):
        img_path, lbl_path = (_idx_path(found, f) for f in IDX_FILES[split])
        images, labels = read_idx(img_path), read_idx(lbl_path)
        if images.ndim != 3:
            raise UsageError(f"{img_path}: expected N x H x W images, got shape {images.shape}")
        splits.append(as_image_arrays(images, labels, str(img_path)))
    return splits[0], splits[1]


def source_url(name: str) -> str:
    """Where torchvision downloads dataset ``name`` from (read from its classes, for error messages)."""
    d = torchvision.datasets
    urls = {"cifar10": lambda: d.CIFAR10.url, "cifar100": lambda: d.CIFAR100.url, "stl10": lambda: d.STL10.url,
            "svhn": lambda: d.SVHN.split_list["train"][0], "qmnist": lambda: d.QMNIST.resources["train"][0][0],
            "flowers102": lambda: d.Flowers102._download_url_prefix,
            "caltech101": lambda: "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip"}
    if name.startswith("emnist-"):
        return d.EMNIST.url
    try:
        return urls[name]()
    except (KeyError, AttributeError, IndexError, TypeError):
        return f"torchvision's source for {name}"


def _torchvision_root(name: str, options: DataOptions, make, hint: str):
    """The first candidate root that torchvision accepts without downloading, else a download if allowed."""
    def accepted(root: Path):
        try:
            return make(str(root), False)
        except (RuntimeError, FileNotFoundError):
            return None

    dataset = search(name, options, accepted)
    if dataset is not None:
        return dataset
    if options.download:
        root = options.download_root(name)
        made: list = []
        download(name, root, source_url(name), hint, lambda: made.append(make(str(root), True)))
        return made[0]
    raise not_found(name, options, options.candidate_dirs(name), f"Ways to get it: {other_ways(name, hint)}.")
def load_emnist(name: str, options: DataOptions) -> tuple[ImageArrays, ImageArrays]:
    split = name.split("-", 1)[1]
    out = []
    for train in (True, False):
        ds = _torchvision_root(name, options, lambda r, d: torchvision.datasets.EMNIST(r, split=split, train=train, download=d),
                               "DIR/EMNIST/raw (torchvision's layout)")
        images = ds.data.numpy().transpose(0, 2, 1)  # EMNIST stores images transposed
        labels = ds.targets.numpy() - (1 if split == "letters" else 0)  # letters are 1..26
        out.append(as_image_arrays(images, labels, f"EMNIST {split}"))
    return out[0], out[1]


def load_qmnist(name: str, options: DataOptions) -> tuple[ImageArrays, ImageArrays]:
    out = []
    for what in ("train", "test"):
        ds = _torchvision_root(name, options, lambda r, d: torchvision.datasets.QMNIST(r, what=what, download=d),
                               "DIR/QMNIST/raw (torchvision's layout)")
        out.append(as_image_arrays(ds.data.numpy(), ds.targets[:, 0].numpy(), f"QMNIST {what}"))
    return out[0], out[1]


def load_cifar(name: str, options: DataOptions) -> tuple[ImageArrays, ImageArrays]:
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    out = []
    for train in (True, False):
        ds = _torchvision_root(name, options, lambda r, d: cls(r, train=train, download=d),
                               f"DIR/{cls.base_folder}")
        out.append(as_image_arrays(ds.data.transpose(0, 3, 1, 2), np.asarray(ds.targets), name))
    return out[0], out[1]


def load_svhn_stl(name: str, options: DataOptions) -> tuple[ImageArrays, ImageArrays]:
    cls = torchvision.datasets.SVHN if name == "svhn" else torchvision.datasets.STL10
    out = []
    for split in ("train", "test"):
        ds = _torchvision_root(name, options, lambda r, d: cls(r, split=split, download=d),
                               f"the {name} files of torchvision's layout in DIR/{name}")
        out.append(as_image_arrays(ds.data, np.asarray(ds.labels), name))
    return out[0], out[1]


def load_per_sample(name: str, options: DataOptions) -> tuple[FileImages, FileImages]:
    """Caltech-101 (seeded 80/20 split), Stanford Cars, Flowers-102: images a torchvision dataset decodes; their
    stored form is set by :func:`spinalnet.data.registry.load_dataset`."""
    hint = f"torchvision's layout of {name} in DIR/{name}"
    if name == "caltech101":
        ds = _torchvision_root(name, options, lambda r, d: torchvision.datasets.Caltech101(r, download=d), hint)
        pool = FileImages(DatasetReader(ds), np.asarray(ds.y), torch.arange(len(ds)), root=ds.root)
        train_idx, test_idx = split_fraction(len(ds), 0.2, options.split_seed, "test")
        return pool.subset(train_idx), pool.subset(test_idx)
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
    return (FileImages(DatasetReader(pool), train_labels, torch.arange(len(pool)), root=f"{name}:train"),
            FileImages(DatasetReader(test), _labels_of(test), torch.arange(len(test)), root=f"{name}:test"))


def _labels_of(ds) -> np.ndarray:
    if hasattr(ds, "_labels"):
        return np.asarray(ds._labels)
    return np.asarray([ds._samples[i][1] for i in range(len(ds))])
