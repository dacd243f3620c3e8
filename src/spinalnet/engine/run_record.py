"""``result.json``: the record of one finished run, written and read here only.

Format 2 (this version) adds ``format``, the head's layers, dropout and initialisation (``head_info``), the
class names, whether the test split was read (``tested``) and the ``versions`` and ``hardware`` the run was
trained with. Format 1 files (no ``format`` key) are read as format 2 with those fields unknown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from spinalnet.engine.config import TrainConfig, result_options
from spinalnet.errors import UsageError
from spinalnet.files import read_json, write_json

RESULT_FILE = "result.json"
FORMAT = 2


def write_result(path: Path, result: dict[str, Any]) -> None:
    write_json(path, {"format": FORMAT, **result})


def read_result(path: Path) -> dict[str, Any]:
    """A run's result (migrated to the current format); a file spinalnet did not write is one line naming it."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("epochs"), int) or not isinstance(data.get("config"), dict):
        raise UsageError(f"{path}: not a run result written by spinalnet; restore it or move the run directory away, "
                         "then run again")
    if data.get("format", 1) > FORMAT:
        raise UsageError(f"{path}: written by a newer spinalnet (format {data['format']}); upgrade to read it")
    if data.get("format", 1) == 1:
        data = {**data, "format": FORMAT, "head_info": None, "classes": None, "versions": None, "hardware": None,
                "tested": data.get("test_acc") is not None}
    return data


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
