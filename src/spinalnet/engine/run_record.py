"""``result.json``: the record of one finished run, :class:`RunResult`; written and read here only.

Format 3 (this version) adds ``best_epoch`` (the epoch validation picked, 1-based) and ``stopped_early`` (training
stopped by ``--patience``). Format 2 added ``format``, the head's layers, dropout and initialisation
(``head_info``), the class names, whether the test split was read (``tested``) and the ``versions`` and
``hardware``. Older files are migrated step by step (:func:`spinalnet.files.migrate`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from spinalnet.engine.config import TrainConfig, result_options
from spinalnet.errors import UsageError
from spinalnet.files import read_record, write_record

RESULT_FILE = "result.json"
FORMAT = 3


@dataclass
class RunResult:
    """One run: its test and validation accuracy, curves, size, time, checkpoint, options and provenance."""

    head: str
    seed: int
    val_acc: float | None
    val_acc_curve: list[float]
    epochs: int
    params: int
    head_params: int
    train_seconds: float
    images_per_second: float
    best_checkpoint: str
    config: dict[str, Any]
    test_acc: float | None = None
    test_loss: float | None = None
    tested: bool = False
    lr_curve: list[float] = field(default_factory=list)
    head_info: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    classes: list[str] | None = None
    versions: dict[str, Any] | None = None
    hardware: dict[str, Any] | None = None
    best_epoch: int | None = None
    stopped_early: bool = False
    trained: str | None = None  # "together with N other run(s)" on cached features
    #: not stored: this result was read back from a run finished earlier (``--resume`` on a finished run)
    resumed: bool = field(default=False, metadata={"stored": False})

    def describe(self) -> str:
        """``test accuracy 86.39% (val 88.19%, best epoch 7 of 10, 12.3 s training)``."""
        test = f"test accuracy {self.test_acc:.2f}% " if self.test_acc is not None else ""
        stopped = ", stopped early" if self.stopped_early else ""
        best = f"best epoch {self.best_epoch} of {self.epochs}{stopped}, " if self.best_epoch else ""
        val = "-" if self.val_acc is None else f"{self.val_acc:.2f}%"
        return f"{test}(val {val}, {best}{self.train_seconds:.1f} s training)"

    def finished(self, epochs: int) -> bool:
        """Whether the run is done for a budget of ``epochs``: it trained them all, or ``--patience`` stopped it."""
        return self.epochs >= epochs or self.stopped_early

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if self.__dataclass_fields__[k].metadata.get("stored", True)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunResult":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def write(self, path: Path) -> None:
        write_record(path, self.to_dict(), FORMAT)

    @classmethod
    def read(cls, path: Path) -> "RunResult":
        """A run's result, migrated to this format; a file spinalnet did not write is one line naming it."""
        data = read_record(path, "a run result", FORMAT, MIGRATIONS, required=("epochs", "config"),
                           types={"epochs": int, "config": dict})
        return cls.from_dict(data)


def _from_1(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "head_info": None, "classes": None, "versions": None, "hardware": None,
            "tested": data.get("test_acc") is not None}


def _from_2(data: dict[str, Any]) -> dict[str, Any]:
    curve = [v for v in data.get("val_acc_curve") or []]
    best = curve.index(max(curve)) + 1 if curve else None  # the first best epoch: what the checkpoint kept
    return {**data, "best_epoch": best, "stopped_early": False}


MIGRATIONS = {1: _from_1, 2: _from_2}


def check_same_run(saved: dict[str, Any], config: TrainConfig, source: Path,
                   same_head: Callable[[str, str], bool] | None = None) -> None:
    """Continuing ``source`` is refused when any option that changes the result differs; name the first.

    ``same_head(saved, current)``: whether two head specs build the same head (``spinal`` and its every option
    written out do); by default, when they are equal.
    """
    defaults = TrainConfig().to_dict()
    current = config.to_dict()
    keys = result_options(TrainConfig)
    if config.schedule in ("cosine", "onecycle"):  # their LR curve is laid out over --epochs
        keys = (*keys, "epochs")
    for key in keys:
        before = saved.get(key, defaults[key])
        if key == "head" and same_head is not None and same_head(before, current[key]):
            continue
        if before != current[key]:
            raise UsageError(f"cannot resume from {source}: it was trained with {key}={before!r}, "
                             f"this run has {key}={current[key]!r}; use another --output or --force")
