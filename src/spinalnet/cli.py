"""The ``spinalnet`` command. Each sub-command lives in its own module and registers here."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import spinalnet
from spinalnet.commands import COMMANDS
from spinalnet.errors import TrainingError, UsageError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spinalnet",
        description="SpinalNet: layers, model zoo and honest comparisons of ordinary vs Spinal heads.",
    )
    parser.add_argument("--version", action="version", version=f"spinalnet {spinalnet.__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        args.func(args)
    except (UsageError, ValueError) as err:  # UsageError is a ValueError; both are the user's input
        print(f"spinalnet: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a read-only or full output directory, a vanished file
        where = f" {err.filename}" if getattr(err, "filename", None) else ""
        print(f"spinalnet: error: cannot read or write{where}: {err.strerror or err}", file=sys.stderr)
        return 2
    except TrainingError as err:
        print(f"spinalnet: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("spinalnet: interrupted; rerun the same command with --resume to continue", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
