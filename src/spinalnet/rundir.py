"""Run directories: named, checked before anything is written, never overwritten without ``--force``.

Every command that writes a directory of results (train, compare, regress, reproduce) goes through
:func:`open_run_dir` once its options are validated, and :meth:`RunDir.create` only when the work is
about to start. A directory records its kind in ``spinalnet-run.json``, so a compare directory given to
``train --resume`` is refused instead of being mixed with a training run. Files are written
atomically (temporary file, fsync, rename) with the permissions the umask gives a new file, or the
permissions of the file they replace.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable

from spinalnet.errors import UsageError

MARKER = "spinalnet-run.json"
FINISHED = {"train": "result.json", "compare": "results.json", "regress": "results.json"}
# What a forced start-over removes before the new run writes anything (the files of that kind only).
OWN_FILES = {"train": ("result.json", "metrics.csv", "hparams.yaml", "checkpoints"),
             "compare": ("results.json", "results.csv", "curves.png", "summary.png", "runs", "comparison.json"),
             "regress": ("results.json", "results.csv", "regression.png")}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()))


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def create_json_once(path: Path, data: Any) -> bool:
    """Write ``path`` only if no file is there, atomically even against another process doing the same
    (the complete file is hard-linked into place); False when one was there first."""
    tmp = Path(path).with_name(f".{Path(path).name}.{uuid.uuid4().hex}.new")  # pods may share a pid
    write_json(tmp, data)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links (some FUSE mounts): exclusive creation instead
        try:
            with open(path, "x") as handle:
                handle.write(tmp.read_text())
            return True
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: Path) -> Any:
    """A JSON file spinalnet wrote; a cut-off or foreign one is a one-line error naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: not a readable JSON file ({err}); it may have been cut off: "
                         "restore it or move it away, then run again") from None


def timestamped(root: str | Path, *parts: str) -> Path:
    """``root/<parts>-YYYYmmdd-HHMMSS``, with ``-2``, ``-3``, ... if two runs start in the same second."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))
    base = Path(root) / f"{slug}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def kind_of(path: Path) -> str | None:
    """The kind of run ``path`` holds: from its marker, else from its files; None for an empty directory."""
    marker = path / MARKER
    if marker.is_file():
        try:
            return str(read_json(marker)["kind"])
        except (OSError, ValueError, KeyError, TypeError):
            return "unknown"
    if (path / "runs").is_dir() or (path / "results.json").is_file() and (path / "curves.png").exists():
        return "compare"
    if (path / "checkpoints").is_dir() or (path / "result.json").is_file():
        return "train"
    if (path / "regression.png").exists():
        return "regress"
    return None if not any(path.iterdir()) else "foreign"


@dataclass(frozen=True)
class RunDir:
    path: Path
    kind: str
    resume: bool  # continue what is in ``path``
    force: bool   # start over in ``path``

    @property
    def finished(self) -> bool:
        return (self.path / FINISHED[self.kind]).is_file()

    def create(self) -> Path:
        """Make the directory (after validation), clear a forced one's earlier files, record its kind."""
        if self.force and self.path.is_dir():
            for name in OWN_FILES[self.kind]:
                target = self.path / name
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
        self.path.mkdir(parents=True, exist_ok=True)
        if not os.access(self.path, os.W_OK):
            raise UsageError(f"output directory {self.path} is not writable")
        if not (self.path / MARKER).is_file():
            write_json(self.path / MARKER, {"kind": self.kind,
                                            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        return self.path


def process_rank() -> int:
    """This process's rank when launched for DDP (Lightning's workers, torchrun, SLURM), else 0."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def open_run_dir(path: str | Path | None, kind: str, default: Callable[[], Path], *, resume: bool = False,
                 force: bool = False, can_resume: Callable[[Path], bool] | None = None,
                 resumable: bool = True, shared: bool = False) -> RunDir:
    """Decide, writing nothing, whether this ``kind`` of run may use ``path`` (``default()`` if None).

    ``can_resume(path)`` says whether a same-kind directory holds something to continue (default: yes);
    a kind that is not ``resumable`` starts an unfinished directory over. A ``shared`` directory (one
    that several ``--shard`` processes fill) is joined when it holds this kind of run, created otherwise,
    and never cleared. With DDP every process runs
    the command: rank zero decides (and names a default directory, passed on in the environment);
    the other ranks follow it.
    """
    chosen = f"SPINALNET_{kind.upper()}_DIR"
    if process_rank() != 0:
        if shared:  # join as rank zero did (it passes its decision on to the ranks it launches)
            joined = os.environ.get(f"{chosen}_JOINED")
            resume = joined == "1" if joined is not None else resume or Path(path or ".").is_dir()
        return RunDir(Path(path or os.environ.get(chosen) or default()).expanduser(), kind, resume, False)
    if shared:
        if path is None:
            raise UsageError("--shard needs --output: the directory every shard of the comparison writes to")
        if force:
            raise UsageError("--force cannot be used with --shard: it would delete the other shards' runs; "
                             "empty the directory first, or choose another --output")
        where = Path(path).expanduser()
        resume = resume or (where.is_dir() and kind_of(where) == kind)
    run = _decide(path, kind, default, resume, force, can_resume, resumable)
    os.environ[chosen] = str(run.path)
    if shared:
        os.environ[f"{chosen}_JOINED"] = "1" if run.resume else "0"
    return run


def _decide(path: str | Path | None, kind: str, default: Callable[[], Path], resume: bool, force: bool,
            can_resume: Callable[[Path], bool] | None, resumable: bool) -> RunDir:
    if resume and force:
        raise UsageError("--resume and --force contradict each other: choose one")
    if path is None:
        if resume:
            raise UsageError("--resume needs --output: the run directory to continue")
        return RunDir(default(), kind, False, False)
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output {path} exists and is not a directory")
    found = kind_of(path) if path.is_dir() else None
    what = "a finished" if found in FINISHED and (path / FINISHED[found]).is_file() else "an unfinished"
    if found not in (None, kind):
        holds = "files that are not a spinalnet run" if found in ("foreign", "unknown") else f"{what} {found} run"
        raise UsageError(f"{path} holds {holds}, not a {kind} run; choose another --output")
    if resume:
        if found is None or (can_resume is not None and not can_resume(path)):
            raise UsageError(f"nothing to resume in {path}: no {kind} run was started there "
                             f"(no checkpoint); run without --resume")
        return RunDir(path, kind, True, False)
    if found == kind and not force:
        finished = what == "a finished"
        nothing_kept = can_resume is not None and not can_resume(path)  # e.g. stopped before its first checkpoint
        if finished or (resumable and not nothing_kept):
            advice = ("pass --resume to continue it, " if resumable else "pass ") + \
                     ("--force to overwrite it" if finished else "--force to start over") + ", or choose another --output"
            raise UsageError(f"{path} already holds {what} {kind} run; {advice}")
        force = True  # an unfinished run with nothing to continue is started over
    return RunDir(path, kind, False, force and found == kind)


def versions() -> dict[str, str | None]:
    """Versions of the libraries that decide the numbers, and the git commit of this package."""
    import lightning
    import numpy
    import torch
    import torchvision

    import spinalnet

    return {"spinalnet": spinalnet.__version__, "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "lightning": lightning.__version__, "numpy": numpy.__version__,
            "git_commit": git_commit()}


def git_commit() -> str | None:
    """The commit of the checkout this package runs from, ``-dirty`` if the package source differs from it."""
    import subprocess

    package = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=package, capture_output=True, text=True, timeout=10)
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--", str(package))
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("-dirty" if dirty else "")) or None


def hardware() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
