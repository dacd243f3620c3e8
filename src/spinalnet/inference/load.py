"""A trained checkpoint as a model for use: the training-time preprocessing (without augmentation) and the
network, in eval mode, taking [0, 1] images; its class names beside it.

    model = spinalnet.load("runs/.../checkpoints/best.ckpt")
    names = spinalnet.predict(model, images)      # images: (N, C, H, W) floats in [0, 1], or uint8
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from spinalnet.data import DeviceTransform
from spinalnet.engine.checkpoints import load_classifier
from spinalnet.engine.module import model_input, model_normalisation


class InferenceModel(nn.Module):
    """[0, 1] images -> the training-time preprocessing (without augmentation) -> logits.

    ``classes``: the class names, index by index; ``input_shape``: the (C, H, W) of the images it was trained on
    (other sizes are resized inside, as in training).
    """

    def __init__(self, model: nn.Module, preprocess: DeviceTransform, classes: list[str] | None = None,
                 input_shape: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        self.preprocess, self.model = preprocess, model
        self.classes = list(classes or [])
        self.input_shape = input_shape

    def forward(self, x: Tensor) -> Tensor:
        return self.model(self.preprocess(x))


def inference_model(checkpoint: Path) -> tuple[InferenceModel, tuple[int, int, int]]:
    """The checkpoint's model wrapped with its preprocessing, and the input shape (C, H, W) it takes."""
    module = load_classifier(checkpoint)
    facts = module.hparams["facts"]
    channels, size = model_input(module.config, facts)
    preprocess = DeviceTransform(*model_normalisation(module.config, facts), size=size, channels=channels)
    model = module.model.to(memory_format=torch.contiguous_format)
    shape = (facts["channels"], *facts["image_size"])
    classes = facts.get("classes") or [str(k) for k in range(facts["num_classes"])]
    return InferenceModel(model, preprocess, classes, shape).eval(), shape


def load(checkpoint: str | Path) -> InferenceModel:
    """A checkpoint of ``spinalnet train`` or ``compare`` as an ``nn.Module`` in eval mode: [0, 1] images in
    (N, C, H, W), logits out, the normalisation (and any resizing or channel repetition) inside, as ``export``
    writes it; ``model.classes`` names the logits. A head trained on cached features comes back on its backbone.
    Bad files are a :class:`~spinalnet.errors.UsageError` naming them."""
    return inference_model(Path(checkpoint))[0]


def predict(model: InferenceModel | str | Path, images: Any, batch_size: int = 256) -> list[str]:
    """The class name of each image: ``images`` as (N, C, H, W) or (N, H, W), floats in [0, 1] or uint8 (0..255),
    a tensor or a numpy array; ``model`` from :func:`load` or a checkpoint path."""
    if not isinstance(model, InferenceModel):
        model = load(model)
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W) or (N, H, W), got shape {tuple(x.shape)}")
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    device = next(model.parameters()).device
    with torch.no_grad():
        indices = torch.cat([model(part.to(device)).argmax(1).cpu() for part in x.split(batch_size)]) if len(x) \
            else torch.zeros(0, dtype=torch.long)
    return [model.classes[i] if i < len(model.classes) else str(i) for i in indices.tolist()]
