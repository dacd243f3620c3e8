"""Batched augmentation on the training device: one grid_sample per batch, no per-sample PIL work.

Rotation, perspective, pad-and-crop translation and horizontal flip are all projective maps, so
they compose into one 3x3 matrix per sample (output pixel -> input pixel) and one resampling.
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

    @property
    def active(self) -> bool:
        return bool(self.rotate or self.perspective or self.translate or self.hflip)


AUGMENTATIONS: dict[str, AugmentSpec] = {
    "none": AugmentSpec(),
    "rotate": AugmentSpec(rotate=10),
    "perspective-rotate": AugmentSpec(rotate=10, perspective=0.5),  # the paper's MNIST-family recipe
    "crop": AugmentSpec(translate=4),
    "crop-flip": AugmentSpec(translate=4, hflip=True),              # the paper's CIFAR recipe
    "crop2-flip": AugmentSpec(translate=2, hflip=True),             # milder, for 28x28 images
}


#: The per-sample datasets' (image folders') recipe: resize, rotation 15, random crop, flip (PIL transforms).
TRANSFER = "transfer"


def augment_spec(name: str) -> AugmentSpec:
    if name == TRANSFER:
        raise unknown_name("augmentation for in-memory data (transfer is the image folders' recipe)", name,
                           AUGMENTATIONS)
    if name not in AUGMENTATIONS:
        raise unknown_name("augmentation", name, [*AUGMENTATIONS, TRANSFER])
    return AUGMENTATIONS[name]


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


def random_transforms(spec: AugmentSpec, n: int, height: int, width: int, generator: torch.Generator,
                      device: torch.device) -> Tensor:
    """(n, 3, 3) maps from output to input pixel coordinates (origin at the image centre)."""
    def rand(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator, device=generator.device).to(device)

    m = torch.eye(3, device=device).repeat(n, 1, 1)
    if spec.rotate:
        angle = (rand(n) * 2 - 1) * math.radians(spec.rotate)
        c, s = torch.cos(angle), torch.sin(angle)
        rot = torch.eye(3, device=device).repeat(n, 1, 1)
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = c, -s, s, c
        m = rot @ m
    if spec.translate:
        shift = torch.floor(rand(n, 2) * (2 * spec.translate + 1)) - spec.translate
        m[:, 0, 2] += shift[:, 0]
        m[:, 1, 2] += shift[:, 1]
    if spec.hflip:
        sign = torch.where(rand(n) < 0.5, -1.0, 1.0)
        m[:, 0, :] *= sign[:, None]
    if spec.perspective:
        hw, hh = width / 2, height / 2
        corners = torch.tensor([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]], device=device).repeat(n, 1, 1)
        inward = -torch.sign(corners) * rand(n, 4, 2) * spec.perspective * torch.tensor([hw, hh], device=device)
        apply = (rand(n) < 0.5).float()[:, None, None]
        moved = corners + inward * apply
        m = _homography(corners, moved) @ m  # output pixels at `moved` show input corners
    return m


class DeviceTransform(nn.Module):
    """uint8 batch -> float, augmented (training only), resized, channel-expanded and normalised."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], augment: AugmentSpec = AugmentSpec(),
                 size: tuple[int, int] | None = None, channels: int | None = None) -> None:
        super().__init__()
        self.augment, self.size, self.channels = augment, size, channels
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if generator is not None and self.augment.active:
            n, _, h, w = x.shape
            m = random_transforms(self.augment, n, h, w, generator, x.device)
            ys, xs = torch.meshgrid(torch.arange(h, device=x.device) + 0.5 - h / 2,
                                    torch.arange(w, device=x.device) + 0.5 - w / 2, indexing="ij")
            pts = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, -1, 3)
            src = pts @ m.transpose(1, 2)
            src = src[..., :2] / src[..., 2:].clamp_min(1e-6)
            grid = (src / torch.tensor([w / 2, h / 2], device=x.device)).view(n, h, w, 2)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        x = (x - self.mean) / self.std
        if self.size is not None and tuple(x.shape[-2:]) != tuple(self.size):
            x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False)
        if self.channels is not None and x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
        return x


class Renormalize(nn.Module):
    """Images normalised with one mean/std (a folder dataset's loader) -> normalised with another (the backbone's)."""

    def __init__(self, old_mean: tuple[float, ...], old_std: tuple[float, ...], mean: tuple[float, ...],
                 std: tuple[float, ...]) -> None:
        super().__init__()
        def column(values: tuple[float, ...]) -> Tensor:
            return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)

        self.register_buffer("scale", column(old_std) / column(std), persistent=False)
        self.register_buffer("shift", (column(old_mean) - column(mean)) / column(std), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift
