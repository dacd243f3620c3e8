"""One plain-data config for a run: it builds the CLI options, reads YAML, and is stored with every run."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from spinalnet.errors import UsageError, unknown_name

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "step", "cosine", "onecycle", "random-restart")


def option(default: Any, help: str, **extra: Any) -> Any:
    meta = {"help": help, **extra}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


class ConfigBase:
    """Plain-data options: to and from dicts (YAML, checkpoints), unknown keys rejected with a hint."""

    def validate(self):
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        names = {f.name for f in fields(cls)}
        clean = {k.replace("-", "_"): v for k, v in data.items()}
        for key in clean:
            if key not in names:
                raise unknown_name("option", key, names)
        return cls(**clean)


@dataclass
class TrainConfig(ConfigBase):
    # data
    dataset: str = option("fashion-mnist", "dataset name, folder:PATH or npz:PATH (see README)")
    data_dir: str | None = option(None, "directory searched first for dataset files")
    download: bool = option(False, "download the dataset when it is not found on disk")
    val_fraction: float = option(0.1, "fraction of the training set held out for validation")
    split_seed: int = option(0, "seed of the validation (and generated test) split; fixed across --seeds")
    augment: str | None = option(None, "augmentation: none, rotate, perspective-rotate, crop, crop-flip, crop2-flip "
                                     "(default: the dataset's)")
    image_size: int | None = option(None, "resize images to this size (default: native; 224 for folders)")
    categories: list[str] = option([], "Quick Draw categories, comma-separated (default: 24 built-in)")
    samples_per_class: int = option(10_000, "Quick Draw drawings per category")
    num_workers: int = option(2, "data-loading processes for per-sample (folder) datasets")
    # model
    model: str = option("default-cnn", "model name, tv:NAME or timm:NAME (see README)")
    head: str = option("spinal", "classifier head: fc or spinal", choices=("fc", "spinal"))
    layer_width: int | None = option(None, "Spinal hidden width (default: the model's paper setting)")
    num_layers: int | None = option(None, "Spinal hidden layers (default: the model's)")
    num_splits: int | None = option(None, "Spinal input splits (default: the model's)")
    spinal_dropout: float | None = option(None, "dropout inside the Spinal head (default: the model's)")
    pretrained: str | None = option(None, "imagenet (download the official weights) or PATH to a weights file")
    freeze_backbone: bool = option(False, "train only the head (default: train everything)")
    # optimisation
    epochs: int = option(5, "training epochs")
    batch_size: int = option(64, "batch size")
    optimizer: str = option("sgd", "sgd, adam or adamw", choices=OPTIMIZERS)
    lr: float = option(0.01, "learning rate")
    momentum: float = option(0.9, "SGD momentum")
    weight_decay: float = option(0.0, "weight decay")
    schedule: str = option("none", "LR schedule: none, step, cosine, onecycle, random-restart "
                                 "(the paper's random LR resets, driven by validation accuracy)", choices=SCHEDULES)
    step_size: int = option(7, "epochs between LR drops for --schedule step")
    gamma: float = option(0.1, "LR factor for --schedule step")
    restart_exponent: float = option(3.0, "--schedule random-restart sets LR = lr * U(0,1)^this when validation "
                                          "accuracy stalls (the paper's scripts: 3; its ResNet scripts: 5)")
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy loss")
    # machine
    seed: int = option(0, "seed of initialisation, data order and augmentation")
    precision: str = option("32-true", "Lightning precision: 32-true, bf16-mixed, 16-mixed, ...")
    accelerator: str = option("auto", "cpu, gpu, mps or auto")
    devices: str = option("auto", "number of devices, or auto")
    strategy: str = option("auto", "Lightning strategy, e.g. ddp")
    deterministic: bool = option(False, "use deterministic algorithms only")
    channels_last: bool = option(True, "channels-last images and convolutions (1.1x to 1.5x faster on "
                                       "CPU for the zoo models, see docs/BENCHMARKS.md)")
    progress: bool | None = option(None, "show a progress bar (default: when stderr is a terminal)")
    limit_batches: float = option(1.0, "fraction (or count, if > 1) of training batches per epoch, for quick or budget runs; "
                                         "validation and test always use their whole split")
    # output
    output: str | None = option(None, "run directory (default: runs/<dataset>-<model>-<time>)")
    resume: bool = option(False, "continue from the last checkpoint in the run directory")
    force: bool = option(False, "overwrite a finished run (or comparison) in --output")

    def validate(self) -> "TrainConfig":
        for name in ("epochs", "batch_size", "samples_per_class"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise UsageError(f"--num-workers must be >= 0, got {self.num_workers}")
        if self.lr <= 0:
            raise UsageError(f"--lr must be > 0, got {self.lr}")
        if not 0.0 < self.val_fraction < 1.0:
            raise UsageError(f"--val-fraction must be between 0 and 1, got {self.val_fraction}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UsageError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.image_size is not None and self.image_size < 8:
            raise UsageError(f"--image-size must be >= 8, got {self.image_size}")
        if self.limit_batches <= 0:
            raise UsageError(f"--limit-batches must be > 0, got {self.limit_batches}")
        from spinalnet.data import augment_spec
        from spinalnet.data.registry import check_dataset_name
        from spinalnet.models.registry import check_model_name

        check_dataset_name(self.dataset)
        check_model_name(self.model)
        if self.augment is not None:
            augment_spec(self.augment)
        return self



@dataclass
class CompareConfig(TrainConfig):
    seeds: int = option(3, "number of seeds per head (seeds are --seed, --seed + 1, ...)")
    feature_cache: str | None = option(None, "with --freeze-backbone and pretrained weights: run the backbone once "
                                             "per split and train the heads on its cached features, stored in "
                                             "DIR (default: the user's cache directory, e.g. "
                                             "~/.cache/spinalnet/features); off: run the backbone in every step")
    feature_views: int = option(0, "cached features: 0 = the training images without augmentation; K >= 1 = "
                                   "K augmented views of the training set, one per epoch in turn")

    def validate(self) -> "CompareConfig":
        super().validate()
        if self.seeds < 1:
            raise UsageError(f"--seeds must be >= 1, got {self.seeds}")
        if self.feature_views < 0:
            raise UsageError(f"--feature-views must be >= 0, got {self.feature_views}")
        return self


def _base_type(tp: Any) -> Any:
    args = [a for a in get_args(tp) if a is not type(None)]
    return args[0] if args and get_origin(tp) is not list else tp


def _comma_list(item: type):
    def parse(text: str) -> list:
        try:
            return [item(c.strip()) for c in text.split(",") if c.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {item.__name__}, got {text!r}")

    return parse


def add_config_arguments(parser: argparse.ArgumentParser, cls: type = TrainConfig, skip: tuple[str, ...] = ()) -> None:
    """One ``--option`` per config field; defaults stay ``None`` so YAML and dataclass defaults apply."""
    hints = get_type_hints(cls)
    parser.add_argument("--config", metavar="YAML", help="read options from a YAML file (command-line options win)")
    for f in fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        tp = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f"{f.metadata.get('help', '')} (default: {default})"
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif get_origin(hints[f.name]) is list:
            parser.add_argument(flag, type=_comma_list(get_args(hints[f.name])[0]), default=None,
                                metavar="A,B,...", help=help_text)
        else:
            parser.add_argument(flag, type=tp, default=None, choices=f.metadata.get("choices"), help=help_text,
                                metavar=f.name.upper() if not f.metadata.get("choices") else None)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist") from None
    except (OSError, yaml.YAMLError) as err:
        raise UsageError(f"{path}: not a readable YAML file ({str(err).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of option: value, got {type(data).__name__}")
    return data


def config_from_args(args: argparse.Namespace, cls: type = TrainConfig, extra: dict[str, Any] | None = None):
    """Dataclass defaults < YAML file < command line."""
    values: dict[str, Any] = dict(extra or {})
    if getattr(args, "config", None):
        values.update(read_yaml(args.config))
    names = {f.name for f in fields(cls)}
    values.update({k: v for k, v in vars(args).items() if k in names and v is not None})
    return cls.from_dict(values).validate()
