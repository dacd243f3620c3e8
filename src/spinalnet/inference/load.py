"""A trained checkpoint as a model for use: the training-time preprocessing (without augmentation) and the
network, in eval mode, taking [0, 1] images."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from spinalnet.data import DeviceTransform
from spinalnet.engine.checkpoints import load_classifier
from spinalnet.engine.module import model_input, model_normalisation


class InferenceModel(nn.Module):
    """[0, 1] images -> the training-time preprocessing (without augmentation) -> logits."""

    def __init__(self, model: nn.Module, preprocess: DeviceTransform) -> None:
        super().__init__()
        self.preprocess, self.model = preprocess, model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(self.preprocess(x))


def inference_model(checkpoint: Path) -> tuple[InferenceModel, tuple[int, int, int]]:
    """The checkpoint's model wrapped with its preprocessing, and the input shape (C, H, W) it takes."""
    module = load_classifier(checkpoint)
    facts = module.hparams["facts"]
    channels, size = model_input(module.config, facts)
    preprocess = DeviceTransform(*model_normalisation(module.config, facts), size=size, channels=channels)
    model = module.model.to(memory_format=torch.contiguous_format)
    wrapper = InferenceModel(model, preprocess).eval()
    return wrapper, (facts["channels"], *facts["image_size"])
