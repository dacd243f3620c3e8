"""Small datasets held in memory as tensors, split and served in whole batches (no per-sample work)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from spinalnet.errors import UsageError


@dataclass
class ImageArrays:
    """Images ``(N, C, H, W)`` (uint8 0..255, or float) and integer labels ``(N,)``."""

    images: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise UsageError(f"images must be N x C x H x W, got shape {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise UsageError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: Tensor) -> "ImageArrays":
        return ImageArrays(self.images[index], self.labels[index])

    def epoch_images(self, epoch: int) -> Tensor:
        """The inputs served in ``epoch`` (always the same images here)."""
        return self.images


@dataclass
class FeatureArrays(ImageArrays):
    """A frozen backbone's outputs ``(N, ...)`` for a split, or ``views`` ``(K, N, ...)`` of an augmented
    training split, served one view per epoch in turn."""

    views: Tensor | None = None

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise UsageError(f"{len(self.images)} feature rows but {len(self.labels)} labels")

    def subset(self, index: Tensor) -> "FeatureArrays":
        views = None if self.views is None else self.views[:, index]
        return FeatureArrays(self.images[index], self.labels[index], views)

    def epoch_images(self, epoch: int) -> Tensor:
        return self.images if self.views is None else self.views[epoch % len(self.views)]


#: Channel counts of grey, RGB and RGBA images, to recognise channels-last arrays.
CHANNEL_COUNTS = (1, 3, 4)


def as_image_arrays(images: np.ndarray, labels: np.ndarray, source: str) -> ImageArrays:
    """Validate and convert arrays: N x H x W or N x C x H x W images, N integer labels, no NaN/inf."""
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise UsageError(f"{source}: images must be N x H x W or N x C x H x W, got shape {images.shape}")
    if images.shape[3] in CHANNEL_COUNTS and images.shape[1] not in CHANNEL_COUNTS:
        raise UsageError(f"{source}: images of shape {images.shape} look channels-last (N x H x W x C); give "
                         "N x C x H x W, e.g. x.transpose(0, 3, 1, 2)")
    if labels.ndim != 1 or len(labels) != len(images):
        raise UsageError(f"{source}: expected {len(images)} labels in a 1-D array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.issubdtype(labels.dtype, np.floating) or not np.all(np.mod(labels, 1) == 0):
            raise UsageError(f"{source}: labels must be integers, got dtype {labels.dtype}")
    if len(labels) and labels.min() < 0:
        raise UsageError(f"{source}: labels must be >= 0, found {labels.min()}")
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.number):
            raise UsageError(f"{source}: images must be numeric, got dtype {images.dtype}")
        if np.iscomplexobj(images):
            raise UsageError(f"{source}: images must be real numbers, got complex dtype {images.dtype}")
        images = images.astype(np.float32)
        if not np.isfinite(images).all():
            raise UsageError(f"{source}: images contain NaN or inf")
    return ImageArrays(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels.astype(np.int64)))


def split_fraction(n: int, fraction: float, seed: int, what: str = "validation") -> tuple[Tensor, Tensor]:
    """Seeded random split of ``range(n)`` into (rest, part) with ``len(part) = round(n * fraction)``."""
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"{what} fraction must be between 0 and 1 (exclusive), got {fraction}")
    size = round(n * fraction)
    if size < 1 or size >= n:
        raise UsageError(f"a {what} fraction of {fraction} of {n} samples leaves an empty split")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[size:].sort().values, perm[:size].sort().values


def stratified_split(labels: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(rest, part) indices, ``part`` holding ``round(fraction * n_k)`` of each class k, drawn with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    rest, part = [], []
    for k in torch.unique(labels).tolist():
        members = torch.nonzero(labels == k).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        take = round(fraction * len(members))
        part.append(members[:take])
        rest.append(members[take:])
    return torch.cat(rest).sort().values, torch.cat(part).sort().values


class ArrayLoader:
    """Iterates over whole batches of an :class:`ImageArrays`, shuffled by (seed, epoch), sharded by rank.

    Every (head, seed) run with the same seed sees exactly the same batches in the same order.
    """

    def __init__(self, data: ImageArrays, batch_size: int, *, shuffle: bool, seed: int = 0,
                 drop_last: bool = False, rank: int = 0, world_size: int = 1) -> None:
        self.data, self.batch_size, self.shuffle, self.seed = data, batch_size, shuffle, seed
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> Tensor:
        n = len(self.data)
        order = epoch_order(n, self.seed, self.epoch) if self.shuffle else torch.arange(n)
        per_rank = n // self.world_size  # equal shards; the remainder is dropped as DistributedSampler does
        return order[self.rank * per_rank : (self.rank + 1) * per_rank]

    def __len__(self) -> int:
        n = len(self.data) // self.world_size
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def batches(self) -> list[Tensor]:
        """The example indices of every batch of this epoch, in order (what iterating serves)."""
        order = self._indices()
        return [order[b * self.batch_size : (b + 1) * self.batch_size] for b in range(len(self))]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """(images, labels, the examples' indices in the split): the indices pick each one's augmentation."""
        images = self.data.epoch_images(self.epoch)
        for idx in self.batches():
            yield images[idx], self.data.labels[idx], idx


def epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The order of ``n`` training examples in ``epoch`` of a run with ``seed``: in-memory and per-sample data
    take the same order, so where the images are read from changes nothing."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


class EpochSampler(torch.utils.data.Sampler):
    """:func:`epoch_order` for a DataLoader; Lightning calls ``set_epoch`` at every epoch, a resumed run too."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(epoch_order(self.n, self.seed, self.epoch).tolist())
