"""The ``spinalnet`` command. Each sub-command lives in its own module and registers here.

Nothing heavy is imported at module level: a Ctrl-C that comes while torch is still being imported
gets the same one line and exit code 130 as one during training.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from spinalnet.commands.allocator import keep_freed_memory
from spinalnet.interrupts import CtrlC

RESUMABLE = ("train", "compare", "reproduce", "study")


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors as the single ``spinalnet: error:`` line every other error gets. Options are never
    abbreviated: ``compare --head fc`` would otherwise be read as ``--heads fc``, a one-arm comparison."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"spinalnet: error: {_suggest(message)}{self._closest_option(message)} (see {self.prog} --help)",
              file=sys.stderr)
        raise SystemExit(2)

    def _closest_option(self, message: str) -> str:
        """`` (did you mean '--heads'?)`` for an unrecognised option; nothing otherwise."""
        from spinalnet.errors import did_you_mean

        if not message.startswith("unrecognized arguments:"):
            return ""
        given = next((word.split("=")[0] for word in message.split()[2:] if word.startswith("--")), None)
        return did_you_mean(given, self._option_string_actions) if given else ""


def _suggest(message: str) -> str:
    """argparse's "invalid choice: 'evaluate' (choose from 'train', 'compare', ...)" with the closest choice
    (``did you mean 'eval'?``); other messages as they are."""
    import re

    from spinalnet.errors import did_you_mean

    match = re.match(r"argument (.+?): invalid choice: '(.*)' \(choose from (.*)\)$", message)
    if not match:
        return message
    what, given, choices = match[1], match[2], re.findall(r"'([^']*)'", match[3]) or match[3].split(", ")
    what = "command" if what in ("COMMAND", "command") else what
    return f"unknown {what} {given!r}{did_you_mean(given, choices)}; choose from {', '.join(choices)}"


#: What the command needs beyond the torch-free core (``pip install 'spinalnet[torch]'``).
TORCH_EXTRA = ("torch", "torchvision", "lightning", "matplotlib")


def build_parser() -> argparse.ArgumentParser:
    from spinalnet.version import __version__
    from spinalnet.commands import (compare, convert_weights, describe, evaluate, export, listing, predict, regress,
                                    report, reproduce, study, train)

    parser = OneLineParser(
        prog="spinalnet",
        description="SpinalNet: layers, model zoo and honest comparisons of classifier heads.",
    )
    parser.add_argument("--version", action="version", version=f"spinalnet {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in (train, compare, study, evaluate, predict, export, convert_weights, regress, reproduce, report,
                    listing, describe):
        command.add(sub)
    return parser


def interrupted_message(argv: Sequence[str]) -> str:
    """The Ctrl-C line: for a run or comparison whose directory exists, the exact command that continues it."""
    command = next((a for a in argv if not a.startswith("-")), "")
    if command not in RESUMABLE:
        return "spinalnet: interrupted"
    directory = run_directory(command)
    if directory is None or not Path(directory).is_dir():
        return "spinalnet: interrupted before anything was written; run the same command again"
    return f"spinalnet: interrupted; continue with: {resume_command(argv, directory)}"


RUN_DIRECTORIES = ("SPINALNET_TRAIN_DIR", "SPINALNET_COMPARE_DIR", "SPINALNET_STUDY_DIR")


def _forget_run_directories() -> None:
    """A command starts knowing no run directory (an earlier ``main`` in this process may have left one); DDP
    ranks launched by this process's rank zero inherit the one it decides, so only rank zero forgets."""
    from spinalnet.rundir import process_rank

    if process_rank() == 0:
        for name in RUN_DIRECTORIES:
            os.environ.pop(name, None)
            os.environ.pop(f"{name}_JOINED", None)


def run_directory(command: str) -> str | None:
    """The directory this process's run (``train``) or comparison (``compare``, ``reproduce``) writes, once decided
    (:func:`spinalnet.rundir.open_run_dir` records it)."""
    return os.environ.get({"train": RUN_DIRECTORIES[0], "study": RUN_DIRECTORIES[2]}.get(command, RUN_DIRECTORIES[1]))


def resume_command(argv: Sequence[str], directory: str | Path) -> str:
    """``argv`` as the command that continues ``directory``: its ``--output``, ``--resume`` and ``--force`` replaced
    by ``--output DIRECTORY --resume``."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--output", "--resume", "--force", "--no-resume", "--no-force") or arg.startswith("--output="):
            skip = arg == "--output"
        else:
            kept.append(arg)
    return shlex.join(["spinalnet", *kept, "--output", str(directory), "--resume"])


def main(argv: Sequence[str] | None = None) -> int:
    as_program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    _forget_run_directories()
    if as_program:
        CtrlC.install()
        keep_freed_memory()  # the process is ours: large tensors reuse freed memory (commands.allocator)
    try:
        code = _run(argv)
        _leave_process_group()
        CtrlC.settle()
        return code
    except BaseException as err:
        CtrlC.settle()
        if not _interrupted(err):
            raise
        print(interrupted_message(argv), file=sys.stderr)
        if as_program:
            # An import cut short (torch, Lightning) can make the interpreter's own shutdown die of the
            # same SIGINT (exit -2 instead of 130): leave now, with the streams flushed.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130


def _interrupted(err: BaseException) -> bool:
    """A KeyboardInterrupt, or an error raised while one was being handled: Ctrl-C just as Lightning starts
    its loop left it without a data iterator, and its clean-up then raised RuntimeError with a traceback."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return True
        seen.add(id(err))
        err = err.__context__
    return False


def _leave_process_group() -> None:
    """A DDP rank (torchrun, srun, Lightning's launcher) leaves its process group before the interpreter
    shuts down. Left to the shutdown, gloo's threads sometimes aborted a rank that had finished its run
    (SIGABRT, "terminate called without an active exception"), and torchrun's other node waited for it."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _run(argv: list[str]) -> int:
    from spinalnet.errors import REPORT_BUGS, OptionError, TrainingError, UsageError

    try:
        parser = build_parser()
    except ModuleNotFoundError as err:
        return _missing_extra(err)
    try:  # argparse leaves through SystemExit (its errors, --help, --version): an exit code for callers of main()
        args, extra = parser.parse_known_args(argv)
        if extra:  # named by the sub-command's parser, so the hint points at its --help
            commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
            command = next((a for a in argv if a in commands), None)
            commands.get(command, parser).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 0 if done.code is None else 2
    if not hasattr(args, "func"):
        parser.print_help()
        print("spinalnet: error: a command is required (see spinalnet --help)", file=sys.stderr)
        return 2
    try:
        args.func(args)
    except ModuleNotFoundError as err:
        return _missing_extra(err)
    except OptionError as err:  # a config field: named as the flag that sets it
        print(f"spinalnet: error: {err.for_command_line()}", file=sys.stderr)
        return 2
    except UsageError as err:  # the user's input: where it enters, a library's refusal becomes one
        print(f"spinalnet: error: {_one_line(err)}{_resume_hint(err, argv)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the output was piped into a command that stopped reading (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:  # a read-only or full output directory, a vanished file
        where = f" {err.filename}" if getattr(err, "filename", None) else ""
        print(f"spinalnet: error: cannot read or write{where}: {err.strerror or err}", file=sys.stderr)
        return 2
    except TrainingError as err:
        print(f"spinalnet: error: {err}{_resume_hint(err, argv)}", file=sys.stderr)
        return 1
    except Exception:  # anything else is ours to fix: the traceback says where, and the user is told so
        import traceback

        traceback.print_exc()
        print(f"spinalnet: internal error: this is a bug in spinalnet, not a mistake in your command; please report "
              f"it to {REPORT_BUGS}", file=sys.stderr)
        return 1
    return 0


def _one_line(err: BaseException) -> str:
    """The message of a usage error on one line (an error raised in a data-loading worker arrives with the
    worker's traceback appended: its last line is the message)."""
    import re

    lines = [line for line in str(err).splitlines() if line.strip()]
    if len(lines) > 1 and "Traceback" in str(err):
        last = lines[-1].strip()
        named = re.match(r"^[\w.]+(?:Error|Exception): (.*)$", last)  # the worker's "module.UsageError: ..."
        return named[1] if named else last
    return " ".join(line.strip() for line in lines)


def _resume_hint(err: BaseException, argv: list[str]) -> str:
    from spinalnet.errors import Resumable

    command = next((a for a in argv if not a.startswith("-")), "")
    if not isinstance(err, Resumable) or command not in RESUMABLE:
        return ""
    return f"; to continue it: {resume_command(argv, err.directory)}"


def _missing_extra(err: ModuleNotFoundError) -> int:
    """One line saying what to install when the torch extra is missing; any other missing module is a bug."""
    if (err.name or "").split(".")[0] not in TORCH_EXTRA:
        raise err
    print(f"spinalnet: error: the spinalnet command needs PyTorch (no module named {err.name!r}): "
          "pip install 'spinalnet[torch]'", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
