"""``comparison.json``, :class:`ComparisonRecord`: what a comparison directory holds, decided by the plan and
written when the directory is created; read by every shard, ``--resume``, the summary and ``report``. The one
module that writes and reads it.

It records the grid once, in the arms' normalised names (``spinal:layer_width=16``, whatever spelling the command
line used, ``layer-width`` or spaces): the arms, the reference arm, the tuning values, the seeds and epochs, and
every other option that changes a run's result; the number of shards, the paper experiment it runs and the command
that started it. Shards, which may start at the same moment, change it under a lock (:func:`locked`).

Format 3 (this version) stores ``arms`` (normalised names) and no feature-cache record (that is
:mod:`spinalnet.comparison.feature_record`'s file). Format 2 added ``heads``, ``reference`` and ``tune``; a
format 1 record (no ``format`` key) is read as the two heads fc and spinal.
"""

from __future__ import annotations

import fcntl
import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from spinalnet.comparison.grid import GridRun, Shard, grid
from spinalnet.engine.config import TrainConfig, result_options
from spinalnet.errors import UsageError
from spinalnet.heads.spec import parse_arms
from spinalnet.files import read_record, write_record

RECORD = "comparison.json"
LOCK = ".comparison.lock"
FORMAT = 3
#: Options that decide which runs make up the grid (and the last epoch of each): every shard of one comparison
#: shares them; a plain ``--resume`` may extend them (more seeds, epochs or arms).
GRID_OPTIONS = ("seeds", "epochs", "feature_views", "heads", "reference", "tune")
#: A comparison made before its arms were recorded compared these two.
FORMAT_1_HEADS = ["fc", "spinal"]


@dataclass
class ComparisonRecord:
    """The grid of a comparison and the options every run of it shares."""

    options: dict[str, Any]  # every option that changes a run's result, and the grid's (heads: normalised names)
    shards: int | None = None
    experiment: dict[str, Any] | None = None
    command: str = ""
    created: str = ""

    @property
    def arms(self) -> list[str]:
        return list(self.options["heads"])

    @property
    def reference(self) -> str:
        return self.options["reference"]

    @property
    def tune(self) -> dict[str, list[Any]]:
        return self.options.get("tune") or {}

    @property
    def epochs(self) -> int:
        return self.options["epochs"]

    def grid(self) -> list[GridRun]:
        """Every run of the comparison, in grid order."""
        return grid(self.arms, self.tune, self.options["seed"], self.options["seeds"])

    @classmethod
    def of(cls, config: Any, shard: Shard | None, experiment: dict[str, Any] | None = None) -> "ComparisonRecord":
        """The record of a checked compare config (its arms already normalised by ``validate``)."""
        return cls(grid_options(config), shard[1] if shard else None, experiment, " ".join(sys.argv),
                   datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def write(self, out: Path) -> None:
        write_record(Path(out) / RECORD, asdict(self), FORMAT)

    @classmethod
    def read(cls, out: Path) -> "ComparisonRecord | None":
        """The record in ``out`` (migrated to this format); None if it has none; one line if it is not one
        spinalnet wrote."""
        path = Path(out) / RECORD
        if not path.is_file():
            return None
        data = read_record(path, "a comparison record", FORMAT, MIGRATIONS, required=("options",),
                           types={"options": dict}, expecting="an object with 'options'")
        return cls(data["options"], data.get("shards"), data.get("experiment"), data.get("command", ""),
                   data.get("created", ""))


def grid_options(config: Any) -> dict[str, Any]:
    """The options recorded for the directory: those that change a run's result (its head excepted: the arms
    stand for it), and the grid's own."""
    values = config.to_dict()
    return {key: values[key] for key in (*result_options(TrainConfig), *GRID_OPTIONS) if key != "head"}


def _from_1(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "options": {"heads": FORMAT_1_HEADS, "reference": "spinal", "tune": {}, **data["options"]}}


def _from_2(data: dict[str, Any]) -> dict[str, Any]:
    """Arms in their normalised names (a record of format 2 kept the spelling of the command line)."""
    options = dict(data["options"])
    try:
        options["heads"] = [arm.name for arm in parse_arms(options.get("heads") or FORMAT_1_HEADS)]
    except UsageError:
        pass  # an arm this version does not know: its runs are checked one by one
    return {k: v for k, v in {**data, "options": options}.items() if k != "feature_cache"}


MIGRATIONS = {1: _from_1, 2: _from_2}


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """An exclusive lock on the comparison's record, held while it is read, checked and written (shards that start
    together take turns; a lock file, as the ``filelock`` package does, released when its process ends)."""
    Path(out).mkdir(parents=True, exist_ok=True)
    with open(Path(out) / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_grid(out: Path, config: Any, shard: Shard | None) -> ComparisonRecord | None:
    """Refuse to add runs with other options to the comparison in ``out``; a shard must also have its grid
    and the same number of shards (another split would leave runs that no shard trains).

    A plain ``--resume`` may extend the grid (more seeds, epochs or arms), so it is held to the run options only.
    Returns the record (None if there is none).
    """
    record = ComparisonRecord.read(out)
    if record is None:
        return None  # a new directory, or one written before comparisons were recorded (each run is checked alone)
    sharded = shard is not None
    saved, current = record.options, grid_options(config)
    if sharded and record.shards not in (None, shard[1]):
        raise UsageError(f"cannot add shard {shard[0]}/{shard[1]} to the comparison in {out}: it is split into "
                         f"{record.shards} shards; use K/{record.shards}, or another --output")
    keys = current if sharded else [k for k in current if k not in GRID_OPTIONS]
    for key in keys:
        if key in saved and saved[key] != current[key]:
            if sharded:
                raise UsageError(f"cannot add this shard to the comparison in {out}: it was started with "
                                 f"{key}={saved[key]!r}, this shard has {key}={current[key]!r}; every shard needs "
                                 "the same options (or use another --output)")
            raise UsageError(f"cannot resume {out}: it was trained with {key}={saved[key]!r}, this run has "
                             f"{key}={current[key]!r}; use another --output or --force")
    if not sharded:
        _check_not_smaller(out, saved, current)
    return record


def _check_not_smaller(out: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """``--resume`` continues a grid with as many or more seeds, epochs and arms: fewer would rewrite the
    finished summary as a smaller comparison than the runs on disk."""
    for key in ("seeds", "epochs"):
        if isinstance(saved.get(key), int) and current[key] < saved[key]:
            raise UsageError(f"cannot resume {out} with --{key} {current[key]}: it has {saved[key]} {key}; --resume "
                             f"continues a comparison with as many or more (use another --output for fewer)")
    missing = [arm for arm in saved.get("heads") or [] if arm not in current["heads"]]
    if missing:
        raise UsageError(f"cannot resume {out} without its arm(s) {', '.join(missing)}: --resume continues a "
                         f"comparison with the same or more --heads (use another --output for fewer)")


def record_grid(out: Path, config: Any, shard: Shard | None, experiment: dict[str, Any] | None = None) -> None:
    """Record the comparison's grid, under the lock. A shard records it when no other shard has (and checks
    against the one that did); a plain run (or ``--resume``, which may extend the grid) replaces it, keeping the
    number of shards it had."""
    current = ComparisonRecord.of(config, shard, experiment)
    with locked(out):
        recorded = check_grid(out, config, shard)
        if shard is not None:
            if recorded is None:
                current.write(out)
            elif recorded.shards is None:  # started unsharded: from now on, shards must agree on N
                recorded.shards = shard[1]
                recorded.write(out)
            return
        if recorded is not None and recorded.shards is not None:
            current.shards = recorded.shards
        current.write(out)
