"""A trained checkpoint as a model for use: the recorded preprocessing (without augmentation) and the network, in
eval mode, taking [0, 1] images; its class names beside it; and ``predict`` on files, PIL images or arrays.

    model = spinalnet.load("runs/.../checkpoints/best.ckpt")
    names = spinalnet.predict(model, ["cat.png", "dog.jpg"])      # paths, PIL images or arrays
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from spinalnet.data.input_spec import InputSpec
from spinalnet.engine.checkpoints import load_classifier
from spinalnet.errors import UsageError


class InferenceModel(nn.Module):
    """[0, 1] images (stored images: ``input_spec.shape``) -> the recorded preprocessing (without augmentation)
    -> logits. ``classes``: the class names, index by index; ``input_spec``: how files become its input."""

    def __init__(self, model: nn.Module, spec: InputSpec) -> None:
        super().__init__()
        self.preprocess, self.model, self.input_spec = spec.transform(), model, spec
        self.classes = list(spec.classes)
        self.input_shape = spec.shape

    def forward(self, x: Tensor) -> Tensor:
        return self.model(self.preprocess(x))


def inference_model(checkpoint: Path) -> tuple[InferenceModel, tuple[int, int, int]]:
    """The checkpoint's model wrapped with its recorded preprocessing, and the stored shape (C, H, W) it takes."""
    module = load_classifier(checkpoint)
    spec = module.input_spec
    if not spec.classes:  # an older checkpoint: its class names from its facts, else the labels themselves
        facts = module.hparams["facts"]
        from dataclasses import replace

        spec = replace(spec, classes=tuple(facts.get("classes") or [str(k) for k in range(facts["num_classes"])]))
    model = module.model.to(memory_format=torch.contiguous_format)
    return InferenceModel(model, spec).eval(), spec.shape


def load(checkpoint: str | Path) -> InferenceModel:
    """A checkpoint of ``spinalnet train`` or ``compare`` as an ``nn.Module`` in eval mode: [0, 1] images in
    (N, C, H, W), logits out, the normalisation (and any cropping, resizing or channel repetition) inside, as
    ``export`` writes it; ``model.classes`` names the logits. A head trained on cached features comes back on its
    backbone. Bad files are a :class:`~spinalnet.errors.UsageError` naming them."""
    return inference_model(Path(checkpoint))[0]


def as_batch(images: Any, spec: InputSpec) -> Tensor:
    """Stored images ``(N, C, H, W)`` (uint8, or floats in [0, 1]) from what a user has: a path or a PIL image,
    a list of them, or an array/tensor ``(H, W)``, ``(H, W, C)``, ``(C, H, W)``, ``(N, H, W)``, ``(N, C, H, W)`` or
    ``(N, H, W, C)``. Files and PIL images are decoded as the run's own files were (:meth:`InputSpec.decode`);
    arrays of the stored size go in as they are, others are decoded through PIL the same way."""
    if isinstance(images, (str, Path)) or _is_pil(images):
        images = [images]
    if isinstance(images, (list, tuple)):
        if not images:
            return torch.zeros((0, *spec.shape), dtype=torch.uint8)
        if all(isinstance(i, (str, Path)) or _is_pil(i) for i in images):
            return torch.stack([spec.decode(i) for i in images])
        parts = [as_batch(i, spec) for i in images]
        if len({p.dtype for p in parts}) > 1:  # uint8 pixels beside [0, 1] floats: the same scale before joining
            parts = [p.float() / 255.0 if p.dtype == torch.uint8 else p for p in parts]
        return torch.cat(parts)
    if isinstance(images, Tensor):
        x = images.detach().cpu()
    elif isinstance(images, np.ndarray):
        x = torch.from_numpy(np.array(images, copy=True))  # a copy: the caller's array may be read-only
    else:
        raise UsageError(f"images must be paths, PIL images, arrays or tensors, got {type(images).__name__}")
    return _array_batch(x, spec)


def _is_pil(obj: Any) -> bool:
    return type(obj).__module__.startswith("PIL.")


def _array_batch(x: Tensor, spec: InputSpec) -> Tensor:
    """An array as stored images. A 3-D array is one ``(H, W, C)`` image when its last side is 1, 3 or 4 and its
    first is not, one ``(C, H, W)`` image when its first side is the model's channel count, else ``N`` grey images."""
    c, h, w = spec.shape
    if x.dtype == torch.bool or x.is_complex():
        raise UsageError(f"images must be real numbers, got dtype {x.dtype}")
    if x.is_floating_point() and x.numel() and not (0.0 <= float(x.min()) and float(x.max()) <= 1.0):
        raise UsageError(f"float images must hold values in [0, 1], found {float(x.min()):.4g}..{float(x.max()):.4g} "
                         "(pass 0..255 pixels as uint8, or divide them by 255)")
    if not x.is_floating_point() and x.dtype != torch.uint8:  # integer pixel values: 0..255
        if len(x) and (int(x.min()) < 0 or int(x.max()) > 255):
            raise UsageError(f"integer images must hold values 0..255, found {int(x.min())}..{int(x.max())}")
        x = x.to(torch.uint8)
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        if x.shape[-1] in (1, 3, 4) and x.shape[0] not in (1, 3, 4):
            x = x.permute(2, 0, 1)[None]
        else:
            x = x[None] if x.shape[0] == c else x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3, 4) and x.shape[-1] in (1, 3, 4):
        x = x.permute(0, 3, 1, 2)
    if x.ndim != 4:
        raise UsageError(f"images must be (H, W), (H, W, C), (N, H, W) or (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] == 4 and c != 4:
        x = x[:, :3]  # RGBA: the alpha channel is not part of the picture
    if x.shape[1] != c and not (x.shape[1] in (1, 3) and c in (1, 3)):
        raise UsageError(f"images have {x.shape[1]} channels; the model was trained on {c}")
    if tuple(x.shape[1:]) == (c, h, w):
        return x if x.dtype == torch.uint8 else x.float()
    from PIL import Image  # another size or channel count: decoded as a file would be

    pixels = x if x.dtype == torch.uint8 else (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
    pictures = [Image.fromarray(p[0].numpy() if p.shape[0] == 1 else p.permute(1, 2, 0).contiguous().numpy())
                for p in pixels]
    return torch.stack([spec.decode(p) for p in pictures])


def predict(model: InferenceModel | str | Path, images: Any, batch_size: int = 256, top: int = 1,
            probabilities: bool = False) -> list[Any]:
    """The class name of each image (``top=1``), or its ``top`` (name, probability) pairs (``probabilities`` or
    ``top > 1``). ``images``: paths, PIL images (one or a list), arrays or tensors (see :func:`as_batch`);
    ``model`` from :func:`load` or a checkpoint path."""
    if not isinstance(model, InferenceModel):
        model = load(model)
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise UsageError(f"top must be a whole number >= 1, got {top!r}")
    x = as_batch(images, model.input_spec)
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    device = next(model.parameters()).device
    with torch.no_grad():
        probs = torch.cat([model(part.to(device)).float().softmax(1).cpu() for part in x.split(batch_size)]) \
            if len(x) else torch.zeros((0, len(model.classes) or 1))
    names = model.classes
    name = lambda i: names[i] if i < len(names) else str(i)  # noqa: E731
    if top == 1 and not probabilities:
        return [name(i) for i in probs.argmax(1).tolist()]
    k = min(top, probs.shape[1])
    values, indices = probs.topk(k, dim=1)
    return [[(name(i), round(float(p), 6)) for i, p in zip(row_i, row_p)]
            for row_i, row_p in zip(indices.tolist(), values.tolist())]
