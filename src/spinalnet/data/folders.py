"""Image-folder datasets (ImageFolder layout), read per sample through PIL transforms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from spinalnet.data.arrays import split_fraction
from spinalnet.data.download import download, other_ways
from spinalnet.data.locate import DataOptions, not_found, search
from spinalnet.errors import UsageError, require_directory

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TRAIN_DIRS = ("train", "Training")
TEST_DIRS = ("test", "Test", "val", "valid")
FOLDER_DATASETS = {"cinic10", "bird225", "fruits360", "hymenoptera", "imagenet"}
DOWNLOADS = {"hymenoptera": "https://download.pytorch.org/tutorial/hymenoptera_data.zip"}


#: A pretrained backbone's images are resized to 8/7 of their crop (ImageNet's 256 for 224) and centre-cropped.
PRETRAINED_MARGIN = 8 / 7
#: Images whose statistics a model trained from scratch is normalised with (a seeded sample of the training split).
STATS_SAMPLE = 1000


def image_transforms(size: int, train: bool, mean: tuple[float, ...] = IMAGENET_MEAN,
                     std: tuple[float, ...] = IMAGENET_STD, margin: float = PRETRAINED_MARGIN,
                     normalise: bool = True) -> v2.Compose:
    """The paper's transfer-learning recipe when ``train``: resize, rotation 15, crop, flip; otherwise resize and
    centre crop. ``margin``: the resize before the crop, as a share of ``size`` (1: the crop is the whole image)."""
    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), *([v2.Normalize(mean, std)] if normalise else [])]
    resize = v2.Resize(int(round(size * margin)), antialias=True)
    if train:
        return v2.Compose([resize, v2.RandomRotation(15), v2.RandomCrop(size), v2.RandomHorizontalFlip(), *tail])
    return v2.Compose([resize, v2.CenterCrop(size), *tail])


class TransformedSubset(Dataset):
    """``base[indices]`` with images converted to RGB and passed through ``transform``."""

    def __init__(self, base: Dataset, indices: Tensor, transform, labels: np.ndarray) -> None:
        self.base, self.indices, self.transform, self.all_labels = base, indices, transform, labels

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def labels(self) -> np.ndarray:
        return self.all_labels[self.indices.numpy()]

    def subset(self, index: Tensor, transform=None) -> "TransformedSubset":
        return TransformedSubset(self.base, self.indices[index], transform or self.transform, self.all_labels)

    def with_transform(self, transform) -> "TransformedSubset":
        return TransformedSubset(self.base, self.indices, transform, self.all_labels)

    def image_size(self) -> int:
        """The shorter side of the first image (a folder trained from scratch keeps its images' size)."""
        image, _ = self.base[int(self.indices[0])]
        return min(image.size) if hasattr(image, "size") and not callable(image.size) else int(min(image.shape[-2:]))

    def channel_stats(self, size: int, seed: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std, in [0, 1] units, of up to :data:`STATS_SAMPLE` images (seeded) at ``size``."""
        plain = self.with_transform(image_transforms(size, False, margin=1.0, normalise=False))
        count = min(len(plain), STATS_SAMPLE)
        order = torch.randperm(len(plain), generator=torch.Generator().manual_seed(seed))[:count]
        total, square, pixels = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), 0
        for i in order.tolist():
            x = plain[i][0].double()
            total += x.sum((1, 2))
            square += x.pow(2).sum((1, 2))
            pixels += x.shape[1] * x.shape[2]
        mean = total / pixels
        std = (square / pixels - mean.pow(2)).clamp_min(1e-12).sqrt()
        return tuple(mean.tolist()), tuple(std.tolist())

    def __getitem__(self, i: int):
        image, label = self.base[int(self.indices[i])]
        if hasattr(image, "convert"):
            image = image.convert("RGB")
        return self.transform(image), int(label)


#: Folders up to this many images are checked file by file when loaded (a bad file is named at once,
#: not deep inside a data-loading worker); larger ones are trusted.
VERIFY_LIMIT = 50_000


def verify_images(paths: list[str]) -> None:
    from PIL import Image

    for path in paths:
        try:
            with Image.open(path) as image:
                image.verify()
        except Exception as err:  # PIL raises many types for a damaged file
            raise UsageError(f"{path}: not a readable image ({type(err).__name__}: {err})") from None


def _image_folder(path: Path) -> torchvision.datasets.ImageFolder:
    try:
        folder = torchvision.datasets.ImageFolder(str(path))
    except (FileNotFoundError, OSError) as err:
        raise UsageError(f"{path}: not an image folder with one sub-folder per class ({err})") from None
    if len(folder.samples) <= VERIFY_LIMIT:
        verify_images([p for p, _ in folder.samples])
    return folder


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


def load_folder(root: Path, options: DataOptions) -> tuple[TransformedSubset, TransformedSubset, int, list[str]]:
    """Train and test subsets from ``root/train`` + ``root/test`` (or val), or one folder split 80/20; their
    transforms are set later (:func:`spinalnet.data.registry.load_dataset`)."""
    require_directory(root, "folder dataset")
    train_dir = _subdir(root, TRAIN_DIRS)
    train_tf = eval_tf = None
    if train_dir is None:
        pool = _image_folder(root)
        labels = np.asarray(pool.targets)
        train_idx, test_idx = split_fraction(len(pool), 0.2, options.split_seed, "test")
        return (TransformedSubset(pool, train_idx, train_tf, labels),
                TransformedSubset(pool, test_idx, eval_tf, labels), len(pool.classes), pool.classes)
    test_dir = _subdir(root, TEST_DIRS)
    if test_dir is None:
        raise UsageError(f"{root} has {train_dir.name}/ but no test/ (or val/) folder")
    train, test = _image_folder(train_dir), _image_folder(test_dir)
    if train.classes != test.classes:
        raise UsageError(f"{train_dir} and {test_dir} have different class folders")
    return (TransformedSubset(train, torch.arange(len(train)), train_tf, np.asarray(train.targets)),
            TransformedSubset(test, torch.arange(len(test)), eval_tf, np.asarray(test.targets)),
            len(train.classes), train.classes)
