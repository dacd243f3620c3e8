"""Files written atomically and read back with one-line errors: the only place that opens results for writing.

Files are written atomically (temporary file, fsync, rename) with the permissions the umask gives a new
file, or the permissions of the file they replace. A JSON or YAML file that cannot be read is one
UsageError naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping

import yaml

from spinalnet.errors import UsageError


def _umask() -> int:
    """The process's umask, read without changing it (``os.umask`` can only read it by setting it, which races
    with any thread creating files meanwhile): from ``/proc/self/status`` (Linux 4.7 and later); elsewhere the
    permissions a fresh file gets, which is what the umask decides."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    with tempfile.TemporaryDirectory() as tmp:  # a file made with mode 0o777 keeps what the umask allows
        probe = Path(tmp) / "probe"
        os.close(os.open(probe, os.O_CREAT | os.O_WRONLY, 0o777))
        return 0o777 & ~probe.stat().st_mode & 0o777


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temporary file next to ``path``, fsync it, then rename it over ``path``.

    A kill at any moment leaves either the old file or the new one, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()  # what open() would give; mkstemp's 0600 would hide results from others
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()))


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    """A JSON file spinalnet wrote; a cut-off or foreign one is a one-line error naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: not a readable JSON file ({err}); it may have been cut off: "
                         "restore it or move it away, then run again") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise UsageError(f"{path}: not a readable YAML file ({str(err).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of option: value, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------------------------------------- records
# What every on-disk record shares: one ``format`` version per record, refusing a file a newer spinalnet wrote, and
# migrating an older one step by step. Each record's module (result.json, comparison.json, results.json, the feature
# cache's and the study's) defines its dataclass and its one read/write pair on these.
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
