"""The run's :class:`~spinalnet.data.input_spec.InputSpec`: decided here once, from the data and the model's
pretrained weights, when a run starts; recorded in its checkpoint; read back (and, for checkpoints written before
it was recorded, reconstructed where that is exact) by everything that feeds the model later."""

from __future__ import annotations

from typing import Any

from spinalnet.data.input_spec import InputSpec
from spinalnet.engine.config import TrainConfig
from spinalnet.errors import UsageError
from spinalnet.models.pretrained import backbone_preprocessing
from spinalnet.models.registry import external_input

#: tv: and timm: backbones are not built for inputs below this side.
MIN_EXTERNAL_SIZE = 32


def decide_input(config: TrainConfig, channels: int, size: tuple[int, int], mean: tuple[float, ...],
                 std: tuple[float, ...], crop: float = 1.0, classes: list[str] | tuple[str, ...] = ()) -> InputSpec:
    """What the model reads of images stored as ``channels`` x ``size``: tv:/timm: backbones 3 channels of at
    least 32 pixels; a pretrained one its own normalisation and input size (``--image-size`` wins); a model
    trained from scratch the training split's statistics (``mean``, ``std``) at the stored size."""
    backbone = backbone_preprocessing(config.model, config.pretrained)
    model_size = tuple(size)
    if config.image_size is not None:
        model_size = (config.image_size, config.image_size)
    elif backbone is not None:
        model_size = (backbone.input_size, backbone.input_size)
    model_channels = channels
    if external_input(config.model):
        model_channels = 3
        model_size = (max(model_size[0], MIN_EXTERNAL_SIZE), max(model_size[1], MIN_EXTERNAL_SIZE))
    if backbone is not None:
        mean, std, whose = backbone.mean, backbone.std, "the pretrained backbone's own"
    else:
        whose = "the training split's"
    return InputSpec(int(channels), tuple(size), model_channels, model_size, tuple(mean), tuple(std), float(crop),
                     tuple(classes), whose)


#: Registry datasets read from image files (their checkpoints from before the recorded input cannot be rebuilt).
FILE_DATASETS = ("caltech101", "stanford-cars", "flowers102", "cinic10", "bird225", "fruits360", "hymenoptera",
                 "imagenet")


def recorded_input(config: TrainConfig, facts: dict[str, Any], source: str = "this checkpoint") -> InputSpec:
    """The input a checkpoint's model was trained on. A checkpoint written before the input was recorded is
    reconstructed from its data facts when its images were arrays (npz, the MNIST family, CIFAR, ...: exact);
    one trained on image files read them through a pipeline that no longer exists, and is refused."""
    if facts.get("input") is not None:
        return InputSpec.from_dict(facts["input"])
    if config.dataset.startswith("folder:") or config.dataset in FILE_DATASETS:
        raise UsageError(f"{source} was written by an older spinalnet that did not record how its image files were "
                         "turned into model inputs, so they cannot be fed to it the same way; train it again with "
                         "this version (its own accuracy figures stay valid)")
    return decide_input(config, facts["channels"], tuple(facts["image_size"]), tuple(facts["mean"]),
                        tuple(facts["std"]), 1.0, tuple(facts.get("classes") or ()))
