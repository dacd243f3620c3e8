"""Image files (or PIL images, or arrays) -> stored images: one rule for training, ``eval`` and ``predict``.

A stored image is a uint8 tensor ``(C, H, W)``: the picture decoded by PIL, converted to grey (C = 1) or RGB
(C = 3), and, when its size differs from the stored size, scaled to cover it (aspect kept) and centre-cropped.
Everything after that (the centre crop of a pretrained backbone, augmentation, normalisation, resizing to the
model's size) happens on tensors, in :class:`spinalnet.data.augment.DeviceTransform`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from spinalnet.errors import UsageError

#: PIL modes that hold one grey channel (with or without alpha, at any depth).
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "P;L"})
#: File name endings read as images (those of torchvision's ImageFolder).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def open_image(source: Any):
    """A PIL image from a path (opened and decoded now, EXIF orientation applied) or a PIL image; a file PIL
    cannot read is one UsageError naming it."""
    from PIL import Image, ImageOps

    if isinstance(source, Image.Image):
        return source
    path = Path(source)
    if not path.is_file():
        raise UsageError(f"{path}: no such image file" if not path.is_dir() else f"{path} is a directory, not an image")
    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image)
    except Exception as err:  # PIL raises many types for a truncated or foreign file
        detail = str(err).splitlines()[0] if str(err) else "truncated or damaged"
        raise UsageError(f"{path}: not a readable image ({detail})") from None


def is_grey(image) -> bool:
    return image.mode in GREY_MODES


def fit(image, size: tuple[int, int]):
    """``image`` scaled to cover ``size`` (H, W) with its aspect kept, then centre-cropped to it; as it is when
    it has that size already. PIL's bilinear resize (antialiased when shrinking)."""
    from PIL import Image

    height, width = size
    if (image.height, image.width) == (height, width):
        return image
    scale = max(height / image.height, width / image.width)
    new = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    image = image.resize(new, Image.BILINEAR)
    left, top = (new[0] - width) // 2, (new[1] - height) // 2
    return image.crop((left, top, left + width, top + height))


def decode(source: Any, channels: int, size: tuple[int, int]):
    """One stored image, a uint8 tensor ``(channels, H, W)``, from a path or a PIL image."""
    import torch

    image = open_image(source)
    if channels not in (1, 3):
        raise UsageError(f"images read from files have 1 (grey) or 3 (colour) channels; this model reads {channels}")
    image = image.convert("L" if channels == 1 else "RGB") if image.mode != ("L" if channels == 1 else "RGB") \
        else image
    array = np.array(fit(image, size), dtype=np.uint8)  # a writable copy: torch refuses to wrap a read-only one
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))


def decode_all(sources: Sequence[Any], channels: int, size: tuple[int, int]):
    """Every source decoded into one uint8 tensor ``(N, channels, H, W)``."""
    import torch

    out = torch.empty((len(sources), channels, *size), dtype=torch.uint8)
    for i, source in enumerate(sources):
        out[i] = decode(source, channels, size)
    return out


def probe(path: str) -> tuple[str, tuple[int, int]]:
    """The mode and (H, W) of an image file from its header (the pixels are not decoded)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.mode, (image.height, image.width)
    except Exception as err:  # PIL raises many types for a foreign file
        detail = str(err).splitlines()[0] if str(err) else "truncated or damaged"
        raise UsageError(f"{path}: not a readable image ({detail})") from None
