"""Run directories: named, checked before anything is written, never overwritten without ``--force``.

Every command that writes a directory of results (train, compare, regress, reproduce) goes through
:func:`open_run_dir` once its options are validated, and :meth:`RunDir.create` only when the work is
about to start. A directory records its kind in ``spinalnet-run.json``, so a compare directory given to
``train --resume`` is refused instead of being mixed with a training run. Single output files
(``export``, ``convert-weights``, ``report --output``) follow :func:`check_output`.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from spinalnet.errors import RunExists, UsageError
from spinalnet.files import read_json, write_json

MARKER = "spinalnet-run.json"
FINISHED = {"train": "result.json", "compare": "results.json", "regress": "results.json", "study": "study.md"}
# What a forced start-over removes before the new run writes anything (the files of that kind only).
OWN_FILES = {"train": ("result.json", "metrics.csv", "hparams.yaml", "checkpoints", "predictions.npz"),
             "compare": ("results.json", "results.csv", "curves.png", "summary.png", "contrasts.png", "runs",
                         "comparison.json", "labels.npz", "feature_cache.json"),
             "regress": ("results.json", "results.csv", "regression.png", "predictions.npz"),
             "study": ("study.json", "study.csv", "study.md", "figures", "settings")}


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


def check_output(output: Path, force: bool, source: Path, example: str = "model.onnx") -> None:
    """Refuse a directory, the ``source`` file itself (even with ``force``: it would be lost), or an existing file
    without ``force``, before anything is exported or converted."""
    if output.is_dir():
        raise UsageError(f"--output {output} is a directory; give a file name such as {output / example}")
    if output.resolve() == Path(source).resolve():
        raise UsageError(f"--output {output} is the file being read; choose another file")
    if output.exists() and not force:
        raise UsageError(f"{output} exists; pass --force to overwrite it")
    if output.parent.exists() and not output.parent.is_dir():
        raise UsageError(f"--output {output}: {output.parent} is not a directory")


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
            message = f"{path} already holds {what} {kind} run; {advice}"
            raise RunExists(message, path) if resumable else UsageError(message)
        force = True  # an unfinished run with nothing to continue is started over
    return RunDir(path, kind, False, force and found == kind)


