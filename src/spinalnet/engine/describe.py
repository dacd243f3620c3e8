"""What a run (or a comparison) will do, in a few lines printed when it starts: the data and its splits, the
input the model sees and how it gets there, the classes, the model and its size."""

from __future__ import annotations

from typing import Any

from torch import nn

from spinalnet.data import DataSplits
from spinalnet.data.folders import IMAGENET_MEAN, IMAGENET_STD
from spinalnet.engine.config import TrainConfig
from spinalnet.engine.module import data_facts, model_input, model_normalisation
from spinalnet.models.pretrained import backbone_preprocessing

#: Class names shown at the start (all of them are in result.json and the checkpoint).
SHOWN_CLASSES = 6
TRANSFER_RECIPE = "the transfer recipe (resize, rotation 15, random crop, horizontal flip)"


def _stats(values: Any) -> str:
    return "/".join(f"{v:.3f}" for v in values)


def start_lines(config: TrainConfig, splits: DataSplits, model: nn.Module | None = None,
                facts: dict[str, Any] | None = None, head_name: str | None = None) -> list[str]:
    """The lines a run prints before it trains (``model``: the run's, for its parameter count; ``head_name``:
    the name of the head ``model`` has, default ``config.head``)."""
    facts = facts or data_facts(splits)
    sizes = facts["sizes"]
    channels, size = model_input(config, facts)
    shape = f"{facts['channels']} x {facts['image_size'][0]} x {facts['image_size'][1]}"
    lines = [f"data: {config.dataset}: {sizes['train']:,} training / {sizes['val']:,} validation / "
             f"{sizes['test']:,} test images of {shape}"]
    classes = facts["classes"]
    more = f", ... ({len(classes)} in all)" if len(classes) > SHOWN_CLASSES else ""
    lines.append(f"  classes ({len(classes)}): {', '.join(classes[:SHOWN_CLASSES])}{more}")
    if tuple(size) != tuple(facts["image_size"]) or channels != facts["channels"]:
        how = "on the device" if facts["in_memory"] else "by the loader"
        lines.append(f"  input: resized {how} to {channels} x {size[0]} x {size[1]}")
    mean, std = model_normalisation(config, facts)
    backbone = backbone_preprocessing(config.model, config.pretrained)
    if backbone is not None:
        whose = "the pretrained backbone's own"
    elif (tuple(mean), tuple(std)) == (IMAGENET_MEAN, IMAGENET_STD):
        whose = "ImageNet's"
    else:
        whose = "the training split's"
    lines.append(f"  normalisation: {whose} mean {_stats(mean)}, std {_stats(std)}")
    lines.append(f"  augmentation: {_augmentation(config, facts)}")
    if model is not None:
        head = model.get_submodule(model.head_path)
        total = getattr(model, "total_params", None) or sum(p.numel() for p in model.parameters())
        lines.append(f"model: {config.model}, head {head_name or config.head}: {total:,} parameters, "
                     f"{sum(p.numel() for p in head.parameters()):,} in the head")
    return lines


def _augmentation(config: TrainConfig, facts: dict[str, Any]) -> str:
    if facts.get("features"):
        return "none (cached features)"
    name = config.augment or facts["augment"]
    return TRANSFER_RECIPE if name == "transfer" else name
