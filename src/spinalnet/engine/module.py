"""The LightningModule shared by every run: model, device-side data transform, loss, metrics, optimiser."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from spinalnet.data import DeviceTransform, augment_spec
from spinalnet.data.arrays import FeatureArrays
from spinalnet.data.augment import epoch_draws
from spinalnet.data.registry import reads_image_files
from spinalnet.data.input_spec import InputSpec
from spinalnet.engine.config import TrainConfig
from spinalnet.errors import TrainingError, UsageError
from spinalnet.models import SpinalOptions, create_model
from spinalnet.models.pretrained import backbone_preprocessing
from spinalnet.models.registry import external_input
from spinalnet.engine.optimisers import make_optimizer, make_schedule
from spinalnet.engine.predictions import interleave_shards, predictions_from


# ---------------------------------------------------------------------------------------------- the input
# The run's InputSpec (spinalnet.data.input_spec): decided here once, from the data and the model's pretrained
# weights, when a run starts; recorded in its checkpoint; read back (and, for checkpoints written before it was
# recorded, reconstructed where that is exact) by everything that feeds the model later.

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


def recorded_input(config: TrainConfig, facts: dict[str, Any], source: str = "this checkpoint") -> InputSpec:
    """The input a checkpoint's model was trained on. A checkpoint written before the input was recorded is
    reconstructed from its data facts when its images were arrays (npz, the MNIST family, CIFAR, ...: exact);
    one trained on image files read them through a pipeline that no longer exists, and is refused."""
    if facts.get("input") is not None:
        return InputSpec.from_dict(facts["input"])
    if reads_image_files(config.dataset):  # an older checkpoint of image files cannot be rebuilt
        raise UsageError(f"{source} was written by an older spinalnet that did not record how its image files were "
                         "turned into model inputs, so they cannot be fed to it the same way; train it again with "
                         "this version (its own accuracy figures stay valid)")
    return decide_input(config, facts["channels"], tuple(facts["image_size"]), tuple(facts["mean"]),
                        tuple(facts["std"]), 1.0, tuple(facts.get("classes") or ()))


def data_facts(splits, config: TrainConfig) -> dict[str, Any]:
    """What the module needs to know about the data; stored in the checkpoint with the config.

    ``input`` is the run's :class:`~spinalnet.data.input_spec.InputSpec`, decided here once. ``features`` is the
    shape of one cached backbone output when the splits hold features, not images. ``data_sha256`` fingerprints
    the data (``eval`` on changed data warns); ``sizes``: examples per split.
    """
    features = list(splits.train.images.shape[1:]) if isinstance(splits.train, FeatureArrays) else None
    spec = decide_input(config, splits.channels, tuple(splits.image_size), tuple(splits.mean), tuple(splits.std),
                        splits.crop, tuple(splits.classes))
    return {"num_classes": splits.num_classes, "channels": splits.channels, "image_size": list(splits.image_size),
            "mean": list(splits.mean), "std": list(splits.std), "augment": splits.augment, "source": splits.source,
            "classes": list(splits.classes), "features": features, "input": spec.to_dict(),
            "data_sha256": splits.fingerprint, "backbone": splits.backbone,
            "sizes": {name: len(getattr(splits, name)) for name in ("train", "val", "test")}}


def augment_seed(seed: int, epoch: int) -> int:
    """The seed of a run's randomness in an epoch (the batched path's dropout generators use it too)."""
    return (seed * 1_000_003 + epoch) * 4099


class FeatureHead(torch.nn.Module):
    """The head of a model with a frozen backbone, reading the backbone's cached outputs.

    Built from the whole model, so the head's initialisation is the one a run through the backbone gets, and
    with the dropout the model applies to the head's input (timm's ``drop_rate``). ``total_params`` still
    counts the backbone, so results report the same model size either way.
    """

    head_path = "head"

    def __init__(self, head: torch.nn.Module, input_dropout: float, total_params: int, head_arm: Any = None,
                 head_info: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.head, self.input_dropout = head, torch.nn.Dropout(input_dropout)
        self.total_params, self.head_arm, self.head_info = total_params, head_arm, head_info

    @classmethod
    def of(cls, model: torch.nn.Module) -> "FeatureHead":
        """The head of a whole model (backbone and head)."""
        return cls(model.get_submodule(model.head_path), getattr(model, "head_input_dropout", 0.0),
                   sum(p.numel() for p in model.parameters()), model.head_arm, model.head_info)

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
    spec = recorded_input(config, facts)
    options = SpinalOptions(config.layer_width, config.num_layers, config.num_splits, config.spinal_dropout)
    return create_model(config.model, facts["num_classes"], in_channels=spec.model_channels,
                        image_size=spec.model_size, head=config.head, spinal_options=options,
                        pretrained=config.pretrained, freeze_backbone=config.freeze_backbone,
                        head_seed=config.head_seed)


class Classifier(L.LightningModule):
    """A run's model with its data transform, loss, metrics and optimiser; built from a typed config (checked
    once, where the run starts) and the facts of its data."""

    def __init__(self, config: TrainConfig, facts: dict[str, Any], model: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config.to_dict(), "facts": facts})
        self.config = cfg = config
        #: how an image becomes this model's input (recorded in the checkpoint; what eval, export and load read)
        self.input_spec = recorded_input(cfg, facts)
        self.model = model if model is not None else build_model(cfg, facts)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.transform: DeviceTransform | None = None
        if facts.get("features"):  # cached backbone outputs: only the head is here, and it reads them as they are
            self.model = self.model if isinstance(self.model, FeatureHead) else FeatureHead.of(self.model)
        else:
            self.transform = self.input_spec.transform(augment_spec(cfg.augment or facts["augment"]))
        self.train_size = int(facts.get("sizes", {}).get("train", 0))
        self.draws: Tensor | None = None  # this epoch's augmentation numbers, one row per training sample
        self.batched_state: dict[str, Any] | None = None
        self._sums = torch.zeros(3)  # training loss sum, correct predictions, samples (this epoch)
        self._test_batches: list[tuple[Tensor, Tensor]] = []
        #: y_true, y_pred and logits of the last test pass, whole test split, on every rank
        self.test_predictions: dict[str, Any] | None = None
        self.train()  # Lightning does not call train() itself when fitting starts

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Heads trained together add what their group restarts from (:mod:`spinalnet.engine.batched`)."""
        if self.batched_state is not None:
            checkpoint["batched"] = self.batched_state

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
        self._sums = torch.zeros(3, device=self.device)
        # Every epoch's randomness depends only on (seed, epoch): a sample's augmentation on its index
        # (augment.epoch_draws), dropout on (seed, epoch, rank); so a run resumed from an epoch-end checkpoint
        # repeats an uninterrupted run exactly, whatever the batches or data-loading workers.
        torch.manual_seed(augment_seed(self.config.seed, self.current_epoch) + self.global_rank)
        if self.transform is not None and self.transform.augment.active:
            self.draws = epoch_draws(self.train_size, augment_seed(self.config.seed, self.current_epoch))

    def model_inputs(self, x: Tensor, draws: Tensor | None = None) -> Tensor:
        """A batch of stored images (or cached features) as the model reads them; augmented by ``draws``."""
        if self.transform is not None:
            x = self.transform(x, draws)
        return x.contiguous(memory_format=self.memory_format) if x.ndim == 4 else x

    def forward(self, x: Tensor) -> Tensor:
        return self.model(self.model_inputs(x))

    def _step(self, batch: tuple[Tensor, ...], stage: str) -> Tensor:
        x, y = batch[0], batch[1]
        logits = self.model(self.model_inputs(x))
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean() * 100
        self.log(f"{stage}_loss", loss, on_epoch=True, prog_bar=stage != "test", batch_size=len(y), sync_dist=True)
        self.log(f"{stage}_acc", acc, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        return logits

    def training_step(self, batch, batch_idx: int) -> Tensor:
        # Training metrics are summed here and logged once per epoch: self.log on every step costs
        # more than a whole step of a small model on a CPU (benchmarks/train_throughput.py).
        x, y = batch[0], batch[1]
        draws = self.draws[batch[2].cpu()] if self.draws is not None else None
        logits = self.model(self.model_inputs(x, draws))
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
