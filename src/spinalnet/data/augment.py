"""Batched augmentation on the training device: one grid_sample per batch, no per-sample PIL work.

Rotation, perspective, pad-and-crop translation, a random crop and a horizontal flip are all projective maps,
so they compose into one 3x3 matrix per sample (output pixel -> input pixel) and one resampling.

The random numbers of a sample come from a table drawn once per epoch from a generator seeded by (seed, epoch)
and indexed by the sample's index in its split (:func:`epoch_draws`): what a sample looks like in an epoch
depends on nothing else, not on the batch it lands in, the number of data-loading workers, the number of
processes, nor on where a run was interrupted and resumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spinalnet.errors import unknown_name


@dataclass(frozen=True)
class AugmentSpec:
    rotate: float = 0.0        # max degrees, uniform in [-rotate, rotate] (RandomRotation)
    perspective: float = 0.0   # distortion scale (RandomPerspective), applied with probability 0.5
    translate: int = 0         # max pixels of zero-padded shift (pad-and-random-crop)
    hflip: bool = False        # horizontal flip with probability 0.5
    random_crop: bool = False  # the input's crop (InputSpec.crop) at a random place instead of the centre

    @property
    def active(self) -> bool:
        return bool(self.rotate or self.perspective or self.translate or self.hflip or self.random_crop)

    def describe(self) -> str:
        parts = [f"rotation {self.rotate:g}" if self.rotate else "", "perspective" if self.perspective else "",
                 f"shift {self.translate} px" if self.translate else "", "random crop" if self.random_crop else "",
                 "horizontal flip" if self.hflip else ""]
        return ", ".join(p for p in parts if p) or "none"


#: The paper's transfer-learning recipe (resize, rotation 15, random crop, flip), for photos.
TRANSFER = "transfer"
AUGMENTATIONS: dict[str, AugmentSpec] = {
    "none": AugmentSpec(),
    "rotate": AugmentSpec(rotate=10),
    "perspective-rotate": AugmentSpec(rotate=10, perspective=0.5),  # the paper's MNIST-family recipe
    "crop": AugmentSpec(translate=4),
    "crop-flip": AugmentSpec(translate=4, hflip=True),              # the paper's CIFAR recipe
    "crop2-flip": AugmentSpec(translate=2, hflip=True),             # milder, for 28x28 images
    TRANSFER: AugmentSpec(rotate=15, random_crop=True, hflip=True),
    # the transfer recipe without its flip: the default for your own folders, whose pictures may be digits or
    # text, which a mirror image changes
    "rotate-crop": AugmentSpec(rotate=15, random_crop=True),
}
#: Uniform numbers each sample draws per epoch: rotation 1, shift 2, flip 1, perspective 1 + 8, crop place 2.
DRAWS = 15


def augment_spec(name: str) -> AugmentSpec:
    if name not in AUGMENTATIONS:
        raise unknown_name("augmentation", name, AUGMENTATIONS)
    return AUGMENTATIONS[name]


def epoch_draws(samples: int, seed: int) -> Tensor:
    """``(samples, DRAWS)`` uniform numbers: row ``i`` is what sample ``i`` of the split draws with ``seed``."""
    return torch.rand(samples, DRAWS, generator=torch.Generator().manual_seed(seed))


def _homography(src: Tensor, dst: Tensor) -> Tensor:
    """Per-sample 3x3 H with H @ dst_i ~ src_i for 4 point pairs (B, 4, 2) each."""
    b = src.shape[0]
    x, y = dst[..., 0], dst[..., 1]
    u, v = src[..., 0], src[..., 1]
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, ones, zeros, zeros, zeros, -u * x, -u * y], -1)
    rows_v = torch.stack([zeros, zeros, zeros, x, y, ones, -v * x, -v * y], -1)
    a = torch.cat([rows_u, rows_v], 1)
    rhs = torch.cat([u, v], 1)
    h = torch.linalg.solve(a, rhs)
    return torch.cat([h, torch.ones(b, 1, dtype=h.dtype, device=h.device)], 1).view(b, 3, 3)


def random_transforms(spec: AugmentSpec, draws: Tensor, height: int, width: int, crop: float = 1.0) -> Tensor:
    """(n, 3, 3) maps from output to input pixel coordinates (origin at the image centre), from ``draws``
    (``(n, DRAWS)`` uniform numbers, one row per sample). ``crop``: the share of each side a random crop keeps."""
    n, device = draws.shape[0], draws.device
    m = torch.eye(3, device=device).repeat(n, 1, 1)
    if spec.hflip:
        sign = torch.where(draws[:, 3] < 0.5, -1.0, 1.0)
        m[:, 0, :] *= sign[:, None]
    if spec.random_crop and crop < 1.0:  # the output is a crop-sized window of the input, placed at random
        room = torch.tensor([width, height], device=device) - torch.tensor(crop_size(height, width, crop)[::-1],
                                                                            device=device)
        shift = torch.floor(draws[:, 13:15] * (room + 1)) - room / 2  # a whole-pixel offset, as RandomCrop's
        move = torch.eye(3, device=device).repeat(n, 1, 1)
        move[:, 0, 2], move[:, 1, 2] = shift[:, 0], shift[:, 1]
        m = move @ m
    if spec.rotate:
        angle = (draws[:, 0] * 2 - 1) * math.radians(spec.rotate)
        c, s = torch.cos(angle), torch.sin(angle)
        rot = torch.eye(3, device=device).repeat(n, 1, 1)
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = c, -s, s, c
        m = rot @ m
    if spec.translate:
        shift = torch.floor(draws[:, 1:3] * (2 * spec.translate + 1)) - spec.translate
        m[:, 0, 2] += shift[:, 0]
        m[:, 1, 2] += shift[:, 1]
    if spec.perspective:
        hw, hh = width / 2, height / 2
        corners = torch.tensor([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]], device=device).repeat(n, 1, 1)
        inward = -torch.sign(corners) * draws[:, 5:13].view(n, 4, 2) * spec.perspective * \
            torch.tensor([hw, hh], device=device)
        apply = (draws[:, 4] < 0.5).float()[:, None, None]
        moved = corners + inward * apply
        m = _homography(corners, moved) @ m  # output pixels at `moved` show input corners
    return m


def _resample(x: Tensor, m: Tensor, size: tuple[int, int]) -> Tensor:
    """``x`` seen through the per-sample maps ``m`` (output pixel -> input pixel, both centred, in pixels) as
    ``size`` (H, W) outputs, zeros outside."""
    n, _, h, w = x.shape
    oh, ow = size
    ys, xs = torch.meshgrid(torch.arange(oh, device=x.device) + 0.5 - oh / 2,
                            torch.arange(ow, device=x.device) + 0.5 - ow / 2, indexing="ij")
    pts = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, -1, 3)
    src = pts @ m.transpose(1, 2)
    src = src[..., :2] / src[..., 2:].clamp_min(1e-6)
    grid = (src / torch.tensor([w / 2, h / 2], device=x.device)).view(n, oh, ow, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def crop_size(height: int, width: int, crop: float) -> tuple[int, int]:
    """(H, W) of the ``crop`` share of each side."""
    return max(1, round(height * crop)), max(1, round(width * crop))


def centre_crop(x: Tensor, crop: float) -> Tensor:
    """The centre ``crop`` share of each side (``crop`` 7/8: ImageNet's centre 224 of 256)."""
    h, w = x.shape[-2:]
    ch, cw = crop_size(h, w, crop)
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top:top + ch, left:left + cw]


class DeviceTransform(nn.Module):
    """A batch of stored images (uint8, or floats in [0, 1]) -> the model's input: float, cropped (the centre, or
    a random place under a random-crop augmentation), augmented (training only, from per-sample ``draws``),
    normalised, resized and channel-expanded."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], augment: AugmentSpec = AugmentSpec(),
                 size: tuple[int, int] | None = None, channels: int | None = None, crop: float = 1.0) -> None:
        super().__init__()
        self.augment, self.size, self.channels, self.crop = augment, size, channels, crop
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor, draws: Tensor | None = None) -> Tensor:
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        augment = draws is not None and self.augment.active
        if self.crop < 1.0 and not (augment and self.augment.random_crop):
            x = centre_crop(x, self.crop)
        if augment:
            _, _, h, w = x.shape
            m = random_transforms(self.augment, draws.to(x.device), h, w, self.crop)
            x = _resample(x, m, crop_size(h, w, self.crop) if self.augment.random_crop else (h, w))
        x = (x - self.mean) / self.std
        if self.size is not None and tuple(x.shape[-2:]) != tuple(self.size):
            x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False)
        if self.channels is not None and x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
        return x
