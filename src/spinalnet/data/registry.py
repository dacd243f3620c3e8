"""Dataset names -> train / validation / test splits with their facts (classes, size, normalisation)."""

from __future__ import annotations

import functools
import hashlib
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import torch
from torch.utils.data import Dataset

from spinalnet.data import folders, npz
from spinalnet.data.arrays import ImageArrays, split_fraction, stratified_split
from spinalnet.data.augment import TRANSFER
from spinalnet.data.folders import FileImages
from spinalnet.data.locate import DataOptions
from spinalnet.errors import UsageError, unknown_name

Split = Union[ImageArrays, FileImages]
#: Images a per-sample dataset's normalisation statistics are computed from (a seeded sample of the training split).
STATS_SAMPLE = 1000


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
    #: the share of each side a model sees (centre; a random place under a random-crop augmentation)
    crop: float = 1.0
    #: where the images came from: "arrays" (npz, the registry's tensors) or "files" (decoded from image files)
    source: str = "arrays"
    #: the fingerprint of the images splits of cached features were computed from (what the run saw)
    known_fingerprint: str | None = None

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
        if self.known_fingerprint is not None:
            return self.known_fingerprint
        digest = hashlib.sha256()
        for split in (self.train, self.val, self.test):
            if isinstance(split, ImageArrays):
                digest.update(split.images.contiguous().numpy().tobytes())
                digest.update(split.labels.numpy().tobytes())
            else:
                digest.update(f"{split.root}:{split.channels}:{split.size}".encode())
                digest.update(split.indices.numpy().tobytes())
                digest.update(split.labels.tobytes())
                digest.update(split.file_stamp())
        return digest.hexdigest()


@dataclass(frozen=True)
class DatasetInfo:
    kind: str          # "idx", "emnist", "qmnist", "cifar", "svhn-stl", "per-sample", "folder", "quickdraw"
    augment: str       # default augmentation preset
    description: str
    #: (training, test) images, from the dataset's documentation: what a study's dry run estimates its cost with
    #: when the data is not on this machine (None: not fixed)
    sizes: tuple[int, int] | None = None

    @property
    def num_classes(self) -> int | None:
        """The class count its description states ("..., 10 classes"); None when it depends on the copy."""
        found = re.search(r"(\d+) classes", self.description)
        return int(found[1]) if found else None


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("idx", "none", "MNIST handwritten digits, 28x28 grey, 10 classes", sizes=(60000, 10000)),
    "fashion-mnist": DatasetInfo("idx", "none", "Fashion-MNIST clothing, 28x28 grey, 10 classes", sizes=(60000, 10000)),
    "kmnist": DatasetInfo("idx", "none", "Kuzushiji-MNIST, 28x28 grey, 10 classes", sizes=(60000, 10000)),
    "qmnist": DatasetInfo("qmnist", "none", "QMNIST digits (60k test), 28x28 grey, 10 classes", sizes=(60000, 60000)),
    "emnist-digits": DatasetInfo("emnist", "none", "EMNIST digits, 28x28 grey, 10 classes", sizes=(240000, 40000)),
    "emnist-letters": DatasetInfo("emnist", "none", "EMNIST letters, 28x28 grey, 26 classes", sizes=(124800, 20800)),
    "emnist-balanced": DatasetInfo("emnist", "none", "EMNIST balanced, 28x28 grey, 47 classes", sizes=(112800, 18800)),
    "cifar10": DatasetInfo("cifar", "crop-flip", "CIFAR-10, 32x32 colour, 10 classes", sizes=(50000, 10000)),
    "cifar100": DatasetInfo("cifar", "crop-flip", "CIFAR-100, 32x32 colour, 100 classes", sizes=(50000, 10000)),
    "svhn": DatasetInfo("svhn-stl", "crop", "SVHN house numbers, 32x32 colour, 10 classes", sizes=(73257, 26032)),
    "stl10": DatasetInfo("svhn-stl", "crop-flip", "STL-10, 96x96 colour, 10 classes", sizes=(5000, 8000)),
    "caltech101": DatasetInfo("per-sample", "transfer", "Caltech-101 (seeded 80/20 train/test split), 101 classes",
                    sizes=(6942, 1735)),
    "stanford-cars": DatasetInfo("per-sample", "transfer", "Stanford Cars, 196 classes", sizes=(8144, 8041)),
    "flowers102": DatasetInfo("per-sample", "transfer", "Oxford-102 Flowers (train+val for training), 102 classes",
                    sizes=(2040, 6149)),
    "cinic10": DatasetInfo("folder", "transfer", "CINIC-10 image folder, 10 classes", sizes=(90000, 90000)),
    "bird225": DatasetInfo("folder", "transfer", "Bird-225 image folder, 225 classes"),
    "fruits360": DatasetInfo("folder", "transfer", "Fruits-360 image folder (Training/ and Test/)"),
    "hymenoptera": DatasetInfo("folder", "transfer", "ants vs bees (PyTorch tutorial), 2 classes"),
    "imagenet": DatasetInfo("folder", "transfer", "ImageNet in ImageFolder layout (train/ and val/)"),
    "quickdraw": DatasetInfo("quickdraw", "none", "Google Quick Draw numpy bitmaps, 28x28 grey, 24 categories by default"),
    "digits": DatasetInfo("digits", "none", "scikit-learn's 8x8 handwritten digits (1,797 real images, 10 classes; "
                                            "ships with scikit-learn), stratified 1,295 / 143 / 359 split",
                    sizes=(1438, 359)),
}
DIGITS = [str(d) for d in range(10)]
#: Class names of the built-in datasets, in label order (from the datasets' own documentation); a dataset
#: without an entry names its classes by their labels ("0", "1", ...).
CLASS_NAMES: dict[str, list[str]] = {
    "mnist": DIGITS, "qmnist": DIGITS, "emnist-digits": DIGITS, "svhn": DIGITS, "digits": DIGITS,
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
#: Registry kinds whose images are files (decoded per sample or into memory), not arrays
FILE_KINDS = ("per-sample", "folder")


def reads_image_files(name: str) -> bool:
    """Whether dataset ``name`` is read from image files (``folder:PATH`` or a registry folder dataset)."""
    return name.startswith("folder:") or (name in DATASETS and DATASETS[name].kind in FILE_KINDS)


def dataset_names() -> list[str]:
    return list(DATASETS) + [f"{p}PATH" for p in PREFIXED]


def shadowed_folder(name: str) -> str | None:
    """A note when a registry name is also a directory here (``--dataset digits`` beside your ``./digits``)."""
    if name in DATASETS and Path(name).expanduser().is_dir():
        return (f"--dataset {name} is the registry's {name} ({DATASETS[name].description.split(',')[0]}); for the "
                f"image folder ./{name} give --dataset folder:{name}")
    return None


def check_dataset_name(name: str) -> None:
    """A registered name or ``folder:``/``npz:``; a bare name that is a directory or an .npz file is pointed at the
    prefix it needs."""
    prefix = next((p for p in PREFIXED if name.startswith(p)), None)
    if prefix is not None and not name[len(prefix):].strip():
        raise UsageError(f"--dataset {name}: give the path after {prefix!r}, e.g. {prefix}my-images")
    if prefix is not None or name in DATASETS:
        return
    path = Path(name).expanduser()
    if path.is_dir():
        raise UsageError(f"unknown dataset {name!r}; {path} is a directory: an image folder is --dataset folder:{name}")
    if path.is_file() and path.suffix == ".npz":
        raise UsageError(f"unknown dataset {name!r}; {path} is an .npz file: give it as --dataset npz:{name}")
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
               num_classes: int | None = None, classes: list[str] | None = None,
               stratified: bool = False) -> DataSplits:
    if train_pool.images.shape[1:] != test.images.shape[1:]:
        raise UsageError(f"{name}: training images are {tuple(train_pool.images.shape[1:])}, "
                         f"test images {tuple(test.images.shape[1:])}")
    num_classes = num_classes or infer_classes(name, train_pool, test)
    _check_labels(train_pool, test, num_classes, name)
    if stratified:
        train_idx, val_idx = stratified_split(train_pool.labels, options.val_fraction, options.split_seed)
    else:
        train_idx, val_idx = split_fraction(len(train_pool), options.val_fraction, options.split_seed)
    train = train_pool.subset(train_idx)
    mean, std = _channel_stats(train.images)
    _, c, h, w = train.images.shape
    return DataSplits(name, train, train_pool.subset(val_idx), test, num_classes, c, (h, w), mean, std,
                      augment, classes)


def _stored_size(train_pool: FileImages, test: FileImages, options: DataOptions) -> tuple[int, tuple[int, int], int | None]:
    """Channels and (H, W) the files are stored as: grey when all are grey; their own size when they share one,
    else a square of the model's size plus the pretrained crop's margin (scratch: the first image's shorter side).
    Also the model's side when the options decide it (``--image-size``; 224 for a pretrained backbone)."""
    target = options.image_size or (DEFAULT_FOLDER_SIZE if options.pretrained else None)
    crop = folders.PRETRAINED_CROP if options.pretrained else 1.0
    square = round(target / crop) if target else None
    if square is None:
        from spinalnet.data.images import open_image

        first = open_image(train_pool.source(0))
        square = min(first.height, first.width)
    channels, size = folders.stored_form([train_pool, test], options.split_seed, square)
    return channels, size, target


def _files(name: str, train_pool: FileImages, test: FileImages, options: DataOptions, classes: list[str] | None,
           photos: bool = False) -> DataSplits:
    """Image files, stored as grey or colour images of one size (:func:`_stored_size`) and held in memory when
    they fit (:data:`~spinalnet.data.folders.IN_MEMORY_BYTES`), else read per sample. Defaults follow the model:
    a pretrained backbone sees the centre 7/8 (its own training's crop) and trains with the transfer recipe
    (``transfer``: rotation 15, random crop, flip, for the photo datasets; ``rotate-crop``, without the flip,
    for your own folders, which may hold digits or text); a model trained from scratch sees whole images, without
    augmentation. ``--image-size`` and ``--augment`` choose for yourself."""
    num_classes = len(classes) if classes else int(max(train_pool.labels.max(), test.labels.max())) + 1
    check_class_count(name, num_classes)
    augment = options.augment or ((TRANSFER if photos else "rotate-crop") if options.pretrained else "none")
    channels, size, _ = _stored_size(train_pool, test, options)
    crop = folders.PRETRAINED_CROP if options.pretrained else 1.0
    train_pool, test = train_pool.stored_as(channels, size), test.stored_as(channels, size)
    if (len(train_pool) + len(test)) * channels * size[0] * size[1] <= folders.IN_MEMORY_BYTES:
        splits = _in_memory(name, train_pool.to_arrays(), test.to_arrays(), options, augment, num_classes, classes)
        splits.crop, splits.source = crop, "files"
        splits.mean, splits.std = _channel_stats(splits.train.images[_stats_sample(len(splits.train), options)])
        return splits
    train_idx, val_idx = split_fraction(len(train_pool), options.val_fraction, options.split_seed)
    train = train_pool.subset(train_idx)
    mean, std = _channel_stats(train.subset(_stats_sample(len(train), options)).to_arrays().images)
    return DataSplits(name, train, train_pool.subset(val_idx), test, num_classes, channels, size, mean, std, augment,
                      classes, crop=crop, source="files")


def _stats_sample(count: int, options: DataOptions) -> torch.Tensor:
    """The training images image files are normalised by (up to :data:`STATS_SAMPLE`, seeded, in index order): the
    same ones, summed in the same order, whether the folder is held in memory or read per sample."""
    chosen = torch.randperm(count, generator=torch.Generator().manual_seed(options.split_seed))[:STATS_SAMPLE]
    return chosen.sort().values


#: The loaders of the registry's in-memory kinds, as ``module:function``: imported when a dataset of that kind is
#: loaded, so a run loads only its own dataset's code (npz and image folders are loaded here, always).
ARRAY_LOADERS = {"idx": "spinalnet.data.vision_sets:load_idx_dataset",
                 "emnist": "spinalnet.data.vision_sets:load_emnist",
                 "qmnist": "spinalnet.data.vision_sets:load_qmnist",
                 "cifar": "spinalnet.data.vision_sets:load_cifar",
                 "svhn-stl": "spinalnet.data.vision_sets:load_svhn_stl"}


def _loader(path: str) -> Callable:
    module, _, function = path.partition(":")
    return getattr(importlib.import_module(module), function)


def load_dataset(name: str, options: DataOptions | None = None) -> DataSplits:
    """Resolve ``name`` (a registered name, ``folder:PATH`` or ``npz:PATH``) into train / val / test."""
    options = options or DataOptions()
    if name.startswith("npz:"):
        train, test = npz.load_npz(Path(name[4:]).expanduser(), options.split_seed)
        return _in_memory(name, train, test, options, "none")
    if name.startswith("folder:"):
        train, test, classes = folders.load_folder(Path(name[7:]).expanduser(), options)
        return _files(name, train, test, options, classes)
    check_dataset_name(name)
    info = DATASETS[name]
    if info.kind in ARRAY_LOADERS:
        train, test = _loader(ARRAY_LOADERS[info.kind])(name, options)
        fixed = {"emnist-letters": 26, "emnist-balanced": 47, "cifar100": 100}.get(name, 10)
        return _in_memory(name, train, test, options, info.augment, num_classes=fixed)
    if info.kind == "digits":
        train, test = _loader("spinalnet.data.digits:load_digits_arrays")(options.split_seed)
        return _in_memory(name, train, test, options, info.augment, 10, stratified=True)
    if info.kind == "quickdraw":
        train, test, categories = _loader("spinalnet.data.quickdraw:load_quickdraw")(options)
        return _in_memory(name, train, test, options, info.augment, len(categories), categories)
    if info.kind == "per-sample":
        train, test = _loader("spinalnet.data.vision_sets:load_per_sample")(name, options)
        return _files(name, train, test, options, None, photos=True)
    root = folders.find_folder_root(name, options)
    train, test, classes = folders.load_folder(root, options)
    return _files(name, train, test, options, classes, photos=True)
