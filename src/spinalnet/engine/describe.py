"""What a run (or a comparison) will do, in a few lines printed when it starts: the data and its splits, the
input the model sees and how it gets there, the augmentation that will run, the classes, the model and its size."""

from __future__ import annotations

from typing import Any

from torch import nn

from spinalnet.data import DataSplits, augment_spec
from spinalnet.data.input_spec import InputSpec
from spinalnet.engine.config import TrainConfig
from spinalnet.engine.module import data_facts

#: Class names shown at the start (all of them are in result.json and the checkpoint).
SHOWN_CLASSES = 6


def start_lines(config: TrainConfig, splits: DataSplits, model: nn.Module | None = None,
                facts: dict[str, Any] | None = None, head_name: str | None = None,
                cached: bool = False, views: int = 0) -> list[str]:
    """The lines a run prints before it trains (``model``: the run's, for its parameter count; ``head_name``:
    the name of the head ``model`` has, default ``config.head``; ``cached``: the heads will train on cached
    backbone features, ``views`` of them augmented)."""
    facts = facts or data_facts(splits, config)
    sizes = facts["sizes"]
    spec = InputSpec.from_dict(facts["input"])
    shape = f"{facts['channels']} x {facts['image_size'][0]} x {facts['image_size'][1]}"
    source = " (decoded from image files)" if facts.get("source") == "files" else ""
    lines = [f"data: {config.dataset}: {sizes['train']:,} training / {sizes['val']:,} validation / "
             f"{sizes['test']:,} test images of {shape}{source}"]
    classes = facts["classes"]
    more = f", ... ({len(classes)} in all)" if len(classes) > SHOWN_CLASSES else ""
    lines.append(f"  classes ({len(classes)}): {', '.join(classes[:SHOWN_CLASSES])}{more}")
    lines += spec.describe()
    lines.append(f"  augmentation: {augmentation(config, facts, cached, views)}")
    if model is not None:
        head = model.get_submodule(model.head_path)
        total = getattr(model, "total_params", None) or sum(p.numel() for p in model.parameters())
        lines.append(f"model: {config.model}, head {head_name or config.head}: {total:,} parameters, "
                     f"{sum(p.numel() for p in head.parameters()):,} in the head")
    return lines


def augmentation(config: TrainConfig, facts: dict[str, Any], cached: bool = False, views: int = 0) -> str:
    """The augmentation that will actually run, in words."""
    name = config.augment or facts["augment"]
    recipe = f"{name} ({augment_spec(name).describe()})" if name != "none" else "none"
    if facts.get("features") or cached:
        return f"{views} cached augmented view(s) by {recipe}, one per epoch in turn" if views else \
            "none: the heads train on cached backbone features of the un-augmented images (--feature-views K " \
            "caches K augmented views)"
    return recipe
