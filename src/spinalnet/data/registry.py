"""Dataset names -> train / validation / test splits with their facts (classes, size, normalisation)."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import torch
from torch.utils.data import Dataset

from spinalnet.data import folders, npz, quickdraw, vision_sets
from spinalnet.data.arrays import ImageArrays, split_fraction
from spinalnet.data.augment import TRANSFER
from spinalnet.data.locate import DataOptions
from spinalnet.errors import UsageError, unknown_name

Split = Union[ImageArrays, "folders.TransformedSubset"]


@dataclass
class DataSplits:
    """Everything a run needs to know about its data. ``in_memory`` splits are :class:`ImageArrays`."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str
    classes: list[str] | None = None
    #: for splits of cached backbone features: the backbone that made them (model, weights file and digest)
    backbone: dict | None = None

    def __post_init__(self) -> None:
        if self.classes is None:  # every run knows its class names: the dataset's, or the labels themselves
            known = CLASS_NAMES.get(self.name)
            self.classes = list(known) if known and len(known) == self.num_classes else \
                [str(k) for k in range(self.num_classes)]

    @property
    def in_memory(self) -> bool:
        return isinstance(self.train, ImageArrays)

    @functools.cached_property
    def fingerprint(self) -> str:
        """SHA-256 of what the splits hold: every image and label (in memory), or which files in which order
        with which labels (per-sample data). The feature cache and the checkpoints compare it."""
        digest = hashlib.sha256()
        for split in (self.train, self.val, self.test):
            if isinstance(split, ImageArrays):
                digest.update(split.images.contiguous().numpy().tobytes())
                digest.update(split.labels.numpy().tobytes())
            else:
                digest.update(repr(getattr(split.base, "root", type(split.base).__name__)).encode())
                digest.update(split.indices.numpy().tobytes())
                digest.update(split.labels.tobytes())
        return digest.hexdigest()


@dataclass(frozen=True)
class DatasetInfo:
    kind: str          # "idx", "emnist", "qmnist", "cifar", "svhn-stl", "per-sample", "folder", "quickdraw"
    augment: str       # default augmentation preset
    description: str


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("idx", "none", "MNIST handwritten digits, 28x28 grey, 10 classes"),
    "fashion-mnist": DatasetInfo("idx", "none", "Fashion-MNIST clothing, 28x28 grey, 10 classes"),
    "kmnist": DatasetInfo("idx", "none", "Kuzushiji-MNIST, 28x28 grey, 10 classes"),
    "qmnist": DatasetInfo("qmnist", "none", "QMNIST digits (60k test), 28x28 grey, 10 classes"),
    "emnist-digits": DatasetInfo("emnist", "none", "EMNIST digits, 28x28 grey, 10 classes"),
    "emnist-letters": DatasetInfo("emnist", "none", "EMNIST letters, 28x28 grey, 26 classes"),
    "emnist-balanced": DatasetInfo("emnist", "none", "EMNIST balanced, 28x28 grey, 47 classes"),
    "cifar10": DatasetInfo("cifar", "crop-flip", "CIFAR-10, 32x32 colour, 10 classes"),
    "cifar100": DatasetInfo("cifar", "crop-flip", "CIFAR-100, 32x32 colour, 100 classes"),
    "svhn": DatasetInfo("svhn-stl", "crop", "SVHN house numbers, 32x32 colour, 10 classes"),
    "stl10": DatasetInfo("svhn-stl", "crop-flip", "STL-10, 96x96 colour, 10 classes"),
    "caltech101": DatasetInfo("per-sample", "transfer", "Caltech-101 (seeded 80/20 train/test split), 101 classes"),
    "stanford-cars": DatasetInfo("per-sample", "transfer", "Stanford Cars, 196 classes"),
    "flowers102": DatasetInfo("per-sample", "transfer", "Oxford-102 Flowers (train+val for training), 102 classes"),
    "cinic10": DatasetInfo("folder", "transfer", "CINIC-10 image folder, 10 classes"),
    "bird225": DatasetInfo("folder", "transfer", "Bird-225 image folder, 225 classes"),
    "fruits360": DatasetInfo("folder", "transfer", "Fruits-360 image folder (Training/ and Test/)"),
    "hymenoptera": DatasetInfo("folder", "transfer", "ants vs bees (PyTorch tutorial), 2 classes"),
    "imagenet": DatasetInfo("folder", "transfer", "ImageNet in ImageFolder layout (train/ and val/)"),
    "quickdraw": DatasetInfo("quickdraw", "none", "Google Quick Draw numpy bitmaps, 28x28 grey, 24 categories by default"),
}
DIGITS = [str(d) for d in range(10)]
#: Class names of the built-in datasets, in label order (from the datasets' own documentation); a dataset
#: without an entry names its classes by their labels ("0", "1", ...).
CLASS_NAMES: dict[str, list[str]] = {
    "mnist": DIGITS, "qmnist": DIGITS, "emnist-digits": DIGITS, "svhn": DIGITS,
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
    "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
    "emnist-letters": [chr(ord("a") + i) for i in range(26)],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    "stl10": ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"],
}
PREFIXED = {"folder:": "any ImageFolder tree: PATH/train + PATH/test, or one folder split 80/20",
            "npz:": "your arrays: x (N x H x W or N x C x H x W), y (N integer labels), optional x_test/y_test"}
DEFAULT_FOLDER_SIZE = 224


def dataset_names() -> list[str]:
    return list(DATASETS) + [f"{p}PATH" for p in PREFIXED]


def check_dataset_name(name: str) -> None:
    if not name.startswith(tuple(PREFIXED)) and name not in DATASETS:
        raise unknown_name("dataset", name, dataset_names())


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the training images, in [0, 1] units, in bounded memory."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    square = torch.zeros_like(total)
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    for chunk in images.split(4096):
        x = chunk.double() / scale
        total += x.sum((0, 2, 3))
        square += x.pow(2).sum((0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (square / count - mean.pow(2)).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def _check_labels(train: ImageArrays, test: ImageArrays, num_classes: int, name: str) -> None:
    for what, part in (("training", train), ("test", test)):
        if len(part) and int(part.labels.max()) >= num_classes:
            raise UsageError(f"{name}: {what} label {int(part.labels.max())} is out of range for {num_classes} classes")


def _preview(values: list[int], limit: int = 6) -> str:
    return ", ".join(map(str, values[:limit])) + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def check_class_count(name: str, num_classes: int) -> None:
    if num_classes < 2:
        raise UsageError(f"{name}: only {num_classes} class found; a classifier needs at least two "
                         "(its accuracy would be 100% by construction)")


def infer_classes(name: str, train: ImageArrays, test: ImageArrays) -> int:
    """The class count of the user's labels, which must be exactly 0..K-1 (K >= 2), each seen in training.

    Labels with gaps ({0, 5, 9}) would give a head with classes that never occur; they are refused
    rather than renumbered, so that a checkpoint's class k is always the user's label k.
    """
    if not len(train) or not len(test):
        raise UsageError(f"{name}: the {'training' if not len(train) else 'test'} set has no samples")
    present = torch.unique(torch.cat([train.labels, test.labels])).tolist()
    check_class_count(name, len(present))
    if len(present) != present[-1] + 1:
        # the first few gaps, never the whole range (a label of 10**9 must not build a billion-element set)
        seen, missing = set(present), []
        for label in range(present[-1] + 1):
            if label not in seen:
                missing.append(label)
                if len(missing) > 6:
                    break
        shown = _preview(missing[:6]) + (", ..." if len(missing) > 6 else "")
        raise UsageError(f"{name}: labels must be 0..K-1 without gaps; found {len(present)} distinct labels "
                         f"({_preview(present)}) with none for {shown}; renumber them, e.g. "
                         "y = numpy.unique(y, return_inverse=True)[1]")
    unseen = sorted(set(test.labels.tolist()) - set(train.labels.tolist()))
    if unseen:
        raise UsageError(f"{name}: test label(s) {_preview(unseen)} never appear in the training labels")
    return len(present)


def _in_memory(name: str, train_pool: ImageArrays, test: ImageArrays, options: DataOptions, augment: str,
               num_classes: int | None = None, classes: list[str] | None = None) -> DataSplits:
    if train_pool.images.shape[1:] != test.images.shape[1:]:
        raise UsageError(f"{name}: training images are {tuple(train_pool.images.shape[1:])}, "
                         f"test images {tuple(test.images.shape[1:])}")
    num_classes = num_classes or infer_classes(name, train_pool, test)
    _check_labels(train_pool, test, num_classes, name)
    train_idx, val_idx = split_fraction(len(train_pool), options.val_fraction, options.split_seed)
    train = train_pool.subset(train_idx)
    mean, std = _channel_stats(train.images)
    _, c, h, w = train.images.shape
    return DataSplits(name, train, train_pool.subset(val_idx), test, num_classes, c, (h, w), mean, std,
                      augment, classes)


def _per_sample(name: str, train_pool, test, num_classes: int, options: DataOptions,
                classes: list[str] | None = None) -> DataSplits:
    """Image files read per sample, with defaults that follow the model: for a pretrained backbone 224 px,
    ImageNet's statistics and the transfer recipe (resize, rotation 15, random crop, flip); for a model trained
    from scratch the images' own size, the training split's statistics and no augmentation. ``--image-size``
    and ``--augment transfer`` or ``none`` choose for yourself."""
    check_class_count(name, num_classes)
    recipe = options.augment or (TRANSFER if options.pretrained else "none")
    if recipe not in (TRANSFER, "none"):
        raise UsageError(f"{name}: image files are augmented per sample: --augment {TRANSFER} or none, not {recipe!r} "
                         "(the batched recipes are for in-memory datasets)")
    train_idx, val_idx = split_fraction(len(train_pool), options.val_fraction, options.split_seed)
    size = options.image_size or (DEFAULT_FOLDER_SIZE if options.pretrained else train_pool.image_size())
    margin = folders.PRETRAINED_MARGIN if options.pretrained else 1.0
    train = train_pool.subset(train_idx)
    if options.pretrained:
        mean, std = folders.IMAGENET_MEAN, folders.IMAGENET_STD
    else:
        mean, std = train.channel_stats(size, options.split_seed)
    transforms = {flag: folders.image_transforms(size, flag, mean, std, margin) for flag in (True, False)}
    return DataSplits(name, train.with_transform(transforms[recipe == TRANSFER]),
                      train_pool.subset(val_idx, transforms[False]), test.with_transform(transforms[False]),
                      num_classes, 3, (size, size), mean, std, recipe, classes)


def load_dataset(name: str, options: DataOptions | None = None) -> DataSplits:
    """Resolve ``name`` (a registered name, ``folder:PATH`` or ``npz:PATH``) into train / val / test."""
    options = options or DataOptions()
    if name.startswith("npz:"):
        train, test = npz.load_npz(Path(name[4:]).expanduser(), options.split_seed)
        return _in_memory(name, train, test, options, "none")
    if name.startswith("folder:"):
        train, test, n, classes = folders.load_folder(Path(name[7:]).expanduser(), options)
        return _per_sample(name, train, test, n, options, classes)
    check_dataset_name(name)
    info = DATASETS[name]
    loaders: dict[str, Callable] = {
        "idx": vision_sets.load_idx_dataset, "emnist": vision_sets.load_emnist,
        "qmnist": vision_sets.load_qmnist, "cifar": vision_sets.load_cifar, "svhn-stl": vision_sets.load_svhn_stl,
    }
    if info.kind in loaders:
        train, test = loaders[info.kind](name, options)
        fixed = {"emnist-letters": 26, "emnist-balanced": 47, "cifar100": 100}.get(name, 10)
        return _in_memory(name, train, test, options, info.augment, num_classes=fixed)
    if info.kind == "quickdraw":
        train, test, categories = quickdraw.load_quickdraw(options)
        return _in_memory(name, train, test, options, info.augment, len(categories), categories)
    if info.kind == "per-sample":
        train, test, n = vision_sets.load_per_sample(name, options)
        return _per_sample(name, train, test, n, options)
    root = folders.find_folder_root(name, options)
    train, test, n, classes = folders.load_folder(root, options)
    return _per_sample(name, train, test, n, options, classes)
