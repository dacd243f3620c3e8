"""Errors that mean "the user asked for something that cannot work" (CLI: one line, exit code 2)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterable


class UsageError(ValueError):
    """Bad input from the user, reported as one line without a traceback."""


class OptionError(UsageError):
    """A config field with a value it cannot take: ``str()`` names the field (``lr must be > 0, got -1``), and
    the command line names its flag instead (:meth:`for_command_line`: ``--lr must be > 0, got -1``)."""

    def __init__(self, option: str, detail: str) -> None:
        super().__init__(f"{option} {detail}")
        self.option, self.detail = option, detail

    def for_command_line(self) -> str:
        return f"--{self.option.replace('_', '-')} {self.detail}"


class TrainingError(RuntimeError):
    """A run that cannot go on (e.g. a NaN loss); reported as one line, exit code 1."""


class Resumable(Exception):
    """Mixed into an error whose cure is ``--resume`` on ``directory``: the command line adds the exact command.
    Its subclasses take ``(message, directory)``; they cross process boundaries (a ``--jobs`` worker's error) with
    both."""

    directory: Path

    def __reduce__(self):
        return type(self), (str(self), self.directory)


class RunExists(UsageError, Resumable):
    """An ``--output`` that holds a run of this kind, which ``--resume`` would continue."""

    def __init__(self, message: str, directory: Path) -> None:
        super().__init__(message)
        self.directory = directory


class StoppedEarly(TrainingError, Resumable):
    """Training that stopped before its end (a worker process died); ``--resume`` continues it."""

    def __init__(self, message: str, directory: Path) -> None:
        super().__init__(message)
        self.directory = directory


class DataNotFoundError(UsageError):
    """A dataset is not on disk and may not be downloaded."""


#: Known names listed in full up to this many (every dataset and zoo model); beyond, the count and the closest few.
LISTED = 30
#: Closest names a long list suggests.
SUGGESTED = 5


def did_you_mean(name: str, known: Iterable[str], n: int = 1) -> str:
    """`` (did you mean 'fashion-mnist'?)`` for the closest known name (up to ``n`` of them), or nothing."""
    close = difflib.get_close_matches(name, list(known), n=n)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def unknown_name(kind: str, name: str, known: Iterable[str], where: str = "") -> UsageError:
    """``unknown dataset 'fasion-mnist' (did you mean 'fashion-mnist'?); known: ...``; a long list (timm's 1,000s of
    models) is not printed: its size, the closest few names and ``where`` to see them all."""
    known = sorted(known)
    if len(known) <= LISTED:
        return UsageError(f"unknown {kind} {name!r}{did_you_mean(name, known)}; known: {', '.join(known)}")
    see = f"; {where}" if where else ""
    return UsageError(f"unknown {kind} {name!r}{did_you_mean(name, known, SUGGESTED)}; {len(known):,} are known{see}")


def require_file(path: Path, what: str) -> None:
    """A missing path and a directory where a file belongs are different mistakes: say which one it is."""
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory, not a file")
    if not path.is_file():
        raise UsageError(f"{what} {path} does not exist")


def require_directory(path: Path, what: str) -> None:
    """As :func:`require_file`, for a path that must be a directory."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is a file, not a directory")
    if not path.is_dir():
        raise UsageError(f"{what} {path} does not exist")


#: How a bug in spinalnet is reported (the errors of our own failures say it).
REPORT_BUGS = "the spinalnet issue tracker, with the command, its output and `spinalnet --version`"


class ReproductionError(TrainingError):
    """A saved model that does not give the numbers its run reported: a bug in spinalnet, never the user's input."""
