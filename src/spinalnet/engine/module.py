"""The LightningModule shared by every run: model, device-side data transform, loss, metrics, optimiser."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from spinalnet.data import DeviceTransform, augment_spec
from spinalnet.data.arrays import FeatureArrays
from spinalnet.data.augment import Renormalize
from spinalnet.errors import TrainingError
from spinalnet.models import SpinalOptions, create_model, external_input
from spinalnet.models.pretrained import backbone_preprocessing
from spinalnet.engine.config import TrainConfig
from spinalnet.engine.optimisers import make_optimizer, make_schedule
from spinalnet.engine.predictions import interleave_shards, predictions_from


def data_facts(splits) -> dict[str, Any]:
    """What the module needs to know about the data; stored in the checkpoint with the config.

    ``features`` is the shape of one cached backbone output when the splits hold features, not images.
    ``data_sha256`` fingerprints the data (``eval`` on changed data warns); ``sizes``: examples per split.
    """
    features = list(splits.train.images.shape[1:]) if isinstance(splits.train, FeatureArrays) else None
    return {"num_classes": splits.num_classes, "channels": splits.channels, "image_size": list(splits.image_size),
            "mean": list(splits.mean), "std": list(splits.std), "augment": splits.augment,
            "in_memory": splits.in_memory, "classes": list(splits.classes), "features": features,
            "data_sha256": splits.fingerprint, "backbone": splits.backbone,
            "sizes": {name: len(getattr(splits, name)) for name in ("train", "val", "test")}}


def model_input(config: TrainConfig, facts: dict[str, Any]) -> tuple[int, tuple[int, int]]:
    """Channels and size the model sees: tv:/timm: backbones get 3 channels and at least 32 pixels;
    a pretrained one gets its own input size unless --image-size says otherwise."""
    size = tuple(facts["image_size"])
    backbone = backbone_preprocessing(config.model, config.pretrained)
    if config.image_size is not None:
        size = (config.image_size, config.image_size)
    elif backbone is not None:
        size = (backbone.input_size, backbone.input_size)
    channels = facts["channels"]
    if external_input(config.model):
        channels = 3
        size = (max(size[0], 32), max(size[1], 32))
    return channels, size


def model_normalisation(config: TrainConfig, facts: dict[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std the model's inputs are normalised with: a pretrained backbone's own (as in its
    training), otherwise the training set's."""
    backbone = backbone_preprocessing(config.model, config.pretrained)
    if backbone is not None:
        return backbone.mean, backbone.std
    return tuple(facts["mean"]), tuple(facts["std"])


class FeatureHead(torch.nn.Module):
    """The head of a model with a frozen backbone, reading the backbone's cached outputs.

    Built from the whole model, so the head's initialisation is the one a run through the backbone gets, and
    with the dropout the model applies to the head's input (timm's ``drop_rate``). ``total_params`` still
    counts the backbone, so results report the same model size either way.
    """

    head_path = "head"

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.head = model.get_submodule(model.head_path)
        self.input_dropout = torch.nn.Dropout(getattr(model, "head_input_dropout", 0.0))
        self.total_params = sum(p.numel() for p in model.parameters())
        self.head_arm, self.head_info = model.head_arm, model.head_info

    def forward(self, features: Tensor) -> Tensor:
        return self.head(self.input_dropout(features))


def weight_decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters in two groups: weights (2+ dimensions) decay, biases and norm parameters do not.

    The rule of timm's ``param_groups_weight_decay`` and of nanoGPT: only weight matrices and kernels
    are regularised. Empty groups are left out.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def build_model(config: TrainConfig, facts: dict[str, Any]) -> torch.nn.Module:
    """The run's whole model (backbone and head) for the data ``facts`` describe."""
    channels, size = model_input(config, facts)
    options = SpinalOptions(config.layer_width, config.num_layers, config.num_splits, config.spinal_dropout)
    return create_model(config.model, facts["num_classes"], in_channels=channels, image_size=size, head=config.head,
                        spinal_options=options, pretrained=config.pretrained, freeze_backbone=config.freeze_backbone,
                        head_seed=config.head_seed)


class Classifier(L.LightningModule):
    """A run's model with its data transform, loss, metrics and optimiser; built from a typed config (checked
    once, where the run starts) and the facts of its data."""

    def __init__(self, config: TrainConfig, facts: dict[str, Any], model: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config.to_dict(), "facts": facts})
        self.config = cfg = config
        channels, size = model_input(cfg, facts)
        self.model = model if model is not None else build_model(cfg, facts)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        mean, std = model_normalisation(cfg, facts)
        self.transform: torch.nn.Module | None = None
        if facts.get("features"):  # cached backbone outputs: only the head is here, and it reads them as they are
            self.model = FeatureHead(self.model)
        elif facts["in_memory"]:
            augment = augment_spec(cfg.augment or facts["augment"])
            self.transform = DeviceTransform(mean, std, augment, size=size, channels=channels)
        elif (mean, std) != (tuple(facts["mean"]), tuple(facts["std"])):
            self.transform = Renormalize(tuple(facts["mean"]), tuple(facts["std"]), mean, std)
        self.generator: torch.Generator | None = None
        self._sums = torch.zeros(3)  # training loss sum, correct predictions, samples (this epoch)
        self._test_batches: list[tuple[Tensor, Tensor]] = []
        #: y_true, y_pred and logits of the last test pass, whole test split, on every rank
        self.test_predictions: dict[str, Any] | None = None
        self.train()  # Lightning does not call train() itself when fitting starts

    def train(self, mode: bool = True) -> "Classifier":
        """A frozen backbone stays in eval mode: its BatchNorm statistics and dropout do not change."""
        super().train(mode)
        if self.config.freeze_backbone:
            self.model.eval()
            self.model.get_submodule(self.model.head_path).train(mode)
        return self

    # ------------------------------------------------------------------ steps
    def on_train_epoch_start(self) -> None:
        self.train()  # whatever mode a validation or a callback left, a frozen backbone trains in eval mode
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(self.current_epoch)
        # Same augmentation for every head with the same seed; distinct per epoch and rank.
        self._sums = torch.zeros(3, device=self.device)
        # Every epoch's randomness (augmentation, dropout) depends only on (seed, epoch, rank), so a
        # run resumed from an epoch-end checkpoint repeats an uninterrupted run exactly.
        epoch_seed = (self.config.seed * 1_000_003 + self.current_epoch) * 4099 + self.global_rank
        torch.manual_seed(epoch_seed)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(epoch_seed)

    def _inputs(self, x: Tensor, train: bool) -> Tensor:
        if isinstance(self.transform, DeviceTransform):
            x = self.transform(x, self.generator if train else None)
        elif self.transform is not None:
            x = self.transform(x)
        return x.contiguous(memory_format=self.memory_format) if x.ndim == 4 else x

    def forward(self, x: Tensor) -> Tensor:
        return self.model(self._inputs(x, False))

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        logits = self.model(self._inputs(x, False))
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean() * 100
        self.log(f"{stage}_loss", loss, on_epoch=True, prog_bar=stage != "test", batch_size=len(y), sync_dist=True)
        self.log(f"{stage}_acc", acc, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        return logits

    def training_step(self, batch, batch_idx: int) -> Tensor:
        # Training metrics are summed here and logged once per epoch: self.log on every step costs
        # more than a whole step of a small model on a CPU (benchmarks/train_throughput.py).
        x, y = batch
        logits = self.model(self._inputs(x, True))
        loss = F.cross_entropy(logits, y, label_smoothing=self.config.label_smoothing)
        if not torch.isfinite(loss):
            raise TrainingError(f"the training loss became {loss.item()} at epoch {self.current_epoch}, "
                                f"batch {batch_idx}; try a lower --lr")
        with torch.no_grad():
            self._sums += torch.stack([loss.detach() * len(y), (logits.argmax(1) == y).sum().float(),
                                       torch.tensor(float(len(y)), device=loss.device)])
        if batch_idx % 25 == 0 and self.trainer.progress_bar_callback is not None:
            self.log("loss", self._sums[0] / self._sums[2], prog_bar=True, logger=False)
        return loss

    def epoch_train_loss(self) -> float | None:
        """Mean training loss of the epoch so far on this process (None before its first step)."""
        total, _, count = self._sums.tolist()
        return total / count if count else None

    def on_train_epoch_end(self) -> None:
        total, correct, count = self._sums.tolist()
        if count:
            self.log("train_loss", total / count, sync_dist=True)
            self.log("train_acc", 100.0 * correct / count, prog_bar=True, sync_dist=True)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def on_test_epoch_start(self) -> None:
        self._test_batches = []

    def test_step(self, batch, batch_idx: int) -> None:
        logits = self._step(batch, "test")
        self._test_batches.append((logits.detach().float(), batch[1]))

    def on_test_epoch_end(self) -> None:
        """Collect the whole test split's predictions; a sharded (DDP) test pass is gathered from every rank."""
        logits = torch.cat([b[0] for b in self._test_batches])
        labels = torch.cat([b[1] for b in self._test_batches])
        self._test_batches = []
        loaders = self.trainer.test_dataloaders
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        sampler = getattr(loader, "sampler", None)
        if self.trainer.world_size > 1 and isinstance(sampler, torch.utils.data.DistributedSampler):
            total = len(loader.dataset)
            logits = interleave_shards(self.all_gather(logits), total)
            labels = interleave_shards(self.all_gather(labels), total)
        self.test_predictions = predictions_from(logits, labels)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        optimizer = make_optimizer(self.config, weight_decay_groups(self.model, self.config.weight_decay))
        schedule = make_schedule(self.config, optimizer, int(self.trainer.estimated_stepping_batches)
                                 if self.config.schedule == "onecycle" else 0)
        if schedule is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule[0], "interval": schedule[1]}}
