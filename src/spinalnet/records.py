"""What every on-disk record shares (no framework import): one ``format`` version per record, refusing a file a
newer spinalnet wrote, and migrating an older one step by step. Each record's module (``result.json``,
``comparison.json``, ``results.json``, the feature cache's and the study's) defines its dataclass and its one
``read``/``write`` pair on top of these two functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from spinalnet.errors import UsageError
from spinalnet.files import read_json, write_json

Migration = Callable[[dict[str, Any]], dict[str, Any]]


def migrate(data: dict[str, Any], current: int, steps: Mapping[int, Migration], path: Path | str) -> dict[str, Any]:
    """``data`` (format ``data["format"]``, 1 when absent) brought to ``current`` by ``steps[v]`` (v -> v + 1); a
    file of a newer format is refused in one line naming it."""
    version = data.get("format", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UsageError(f"{path}: its format {version!r} is not one spinalnet writes; restore the file or move it "
                         "away, then run again")
    if version > current:
        raise UsageError(f"{path}: written by a newer spinalnet (format {version}); upgrade to read it")
    while version < current:
        data = {**steps[version](data), "format": version + 1}
        version += 1
    return data


def read_record(path: Path, what: str, current: int, steps: Mapping[int, Migration],
                required: tuple[str, ...] = (), types: Mapping[str, type] | None = None,
                expecting: str = "") -> dict[str, Any]:
    """A record file as a dict of the ``current`` format; one line naming the file when it is not ``what`` (it lacks
    a ``required`` key, or a key of ``types`` holds another type)."""
    types = types or {}
    data = read_json(path)
    if not isinstance(data, dict) or any(key not in data for key in required) or \
            any(not isinstance(data[key], kind) for key, kind in types.items()):
        expected = f" (expected {expecting})" if expecting else ""
        raise UsageError(f"{path}: not {what} written by spinalnet{expected}; restore it or move it away, then run "
                         "again")
    return migrate(data, current, steps, path)


def write_record(path: Path, data: dict[str, Any], current: int) -> None:
    """``data`` as the record of format ``current``, written atomically."""
    write_json(path, {"format": current, **{k: v for k, v in data.items() if k != "format"}})
