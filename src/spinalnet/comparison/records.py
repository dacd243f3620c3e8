"""``comparison.json``: what a comparison directory holds, written when it is created and read by every shard,
``--resume`` and ``report``; the one module that writes and reads it.

It records the options of the grid (every option that changes a run's result, the arms, the reference arm,
the tuning grid, seeds and epochs), the number of shards, the paper experiment it runs, the command that
started it, and the feature cache's record. Format 2 (this version) added ``format``, ``heads``,
``reference`` and ``tune``; a format 1 record (no ``format`` key) is read as the two heads fc and spinal.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from spinalnet.comparison.shards import Shard
from spinalnet.engine.config import TrainConfig, result_options
from spinalnet.errors import UsageError
from spinalnet.heads.spec import parse_arms
from spinalnet.files import create_json_once, read_json, write_json

RECORD = "comparison.json"
FORMAT = 2
#: Options that decide which runs make up the grid (and the last epoch of each): every shard of one comparison
#: shares them; a plain ``--resume`` may extend them (more seeds, epochs or arms).
GRID_OPTIONS = ("seeds", "epochs", "feature_views", "heads", "reference", "tune")
#: A comparison made before its arms were recorded compared these two.
FORMAT_1_HEADS = ["fc", "spinal"]


def grid_options(config: Any) -> dict[str, Any]:
    """The options recorded for the directory: those that change a run's result (its head excepted: the arms
    stand for it), and the grid's own."""
    values = config.to_dict()
    return {key: values[key] for key in (*result_options(TrainConfig), *GRID_OPTIONS) if key != "head"}


def _migrate(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("format", 1) == 1:
        options = {"heads": FORMAT_1_HEADS, "reference": "spinal", "tune": {}, **data["options"]}
        data = {**data, "format": FORMAT, "options": options}
    return data


def read_record(out: Path) -> dict[str, Any] | None:
    """The comparison's record in ``out`` (migrated to this format): None if it has none; one line if it is not
    one spinalnet wrote."""
    record = Path(out) / RECORD
    if not record.is_file():
        return None
    data = read_json(record)
    if not isinstance(data, dict) or not isinstance(data.get("options"), dict):
        raise UsageError(f"{record}: not a comparison record written by spinalnet (expected an object with "
                         "'options'); restore it or move it away, then run again")
    if data.get("format", 1) > FORMAT:
        raise UsageError(f"{record}: written by a newer spinalnet (format {data['format']}); upgrade to read it")
    return _migrate(data)


def check_grid(out: Path, config: Any, shard: Shard | None) -> dict[str, Any] | None:
    """Refuse to add runs with other options to the comparison in ``out``; a shard must also have its grid
    and the same number of shards (another split would leave runs that no shard trains).

    A plain ``--resume`` may extend the grid (more seeds, epochs or arms), so it is held to the run options only.
    Returns the record (None if there is none), for :func:`record_grid`.
    """
    data = read_record(out)
    if data is None:
        return None  # a new directory, or one written before comparisons were recorded (each run is checked alone)
    sharded = shard is not None
    saved, current = data["options"], grid_options(config)
    if sharded and data.get("shards") not in (None, shard[1]):
        raise UsageError(f"cannot add shard {shard[0]}/{shard[1]} to the comparison in {out}: it is split into "
                         f"{data['shards']} shards; use K/{data['shards']}, or another --output")
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
        _check_not_smaller(out, saved, current, [arm.name for arm in config.arms()])
    return data


def _check_not_smaller(out: Path, saved: dict[str, Any], current: dict[str, Any], arms: list[str]) -> None:
    """``--resume`` continues a grid with as many or more seeds, epochs and arms: fewer would rewrite the
    finished summary as a smaller comparison than the runs on disk."""
    for key in ("seeds", "epochs"):
        if isinstance(saved.get(key), int) and current[key] < saved[key]:
            raise UsageError(f"cannot resume {out} with --{key} {current[key]}: it has {saved[key]} {key}; --resume "
                             f"continues a comparison with as many or more (use another --output for fewer)")
    try:
        before = [arm.name for arm in parse_arms(saved.get("heads") or [])] if saved.get("heads") else []
    except UsageError:  # a record of another version: its runs are checked one by one
        before = []
    missing = [arm for arm in before if arm not in arms]
    if missing:
        raise UsageError(f"cannot resume {out} without its arm(s) {', '.join(missing)}: --resume continues a "
                         f"comparison with the same or more --heads (use another --output for fewer)")


def record_grid(out: Path, config: Any, shard: Shard | None, experiment: dict[str, Any] | None = None,
                recorded: dict[str, Any] | None = None) -> None:
    """Record the comparison's options, its number of shards and the paper experiment it runs, once; a
    concurrent shard that recorded first is checked instead. A plain run (or ``--resume``, which may extend
    the grid) replaces the record and keeps its number of shards. ``recorded``: the record
    :func:`check_grid` returned (None when there was none).
    """
    data = {"format": FORMAT, "options": grid_options(config), "shards": shard[1] if shard else None,
            "experiment": experiment, "command": " ".join(sys.argv),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "feature_cache": None}
    if shard is not None:
        if recorded is None and create_json_once(Path(out) / RECORD, data):
            return
        if recorded is None:  # another shard recorded it since check_grid: check against that one
            recorded = check_grid(out, config, shard)
        if recorded.get("shards") is None:  # started unsharded: from now on, shards must agree on N
            write_json(Path(out) / RECORD, {**recorded, "shards": shard[1]})
    else:
        kept = {k: (recorded or {}).get(k) for k in ("shards", "feature_cache")}
        write_json(Path(out) / RECORD, {**data, **{k: v for k, v in kept.items() if v is not None}})


def note_feature_cache(out: Path, feature_cache: dict[str, Any]) -> None:
    """The feature cache's record of this process (used, hit, extraction time, key), for results.json."""
    data = read_record(out)
    if data is not None:
        write_json(Path(out) / RECORD, {**data, "feature_cache": feature_cache})
