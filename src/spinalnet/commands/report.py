"""``spinalnet report``: results files rendered as one table (imports no torch)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="render results files into one table",
                       description="Render the results.json of compare, regress or reproduce runs into one table: "
                       "paper numbers, measured mean ± std, the paired difference, each comparison's own p-value "
                       "(Holm within it, as compare printed) and the correction across the table, budget, "
                       "convergence, hardware, commit and a verdict per experiment. A text table that fits 120 "
                       "columns, or Markdown (--markdown, --output).")
    p.add_argument("runs", nargs="+", type=Path, help="run directories (or results.json files)")
    p.add_argument("--all", action="store_true", help="add a row for every paper experiment without results")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table (what --output writes)")
    p.add_argument("--pool", action="store_true", help="pool the comparisons given (every contrast over them, with "
                   "its spread, as a study does) instead of a row each")
    p.add_argument("--output", type=Path, help="write the table into FILE: its text up to a line that is "
                   "exactly <!-- report --> is kept, the table replaces what follows")
    p.set_defaults(func=run)


MARKER = "<!-- report -->"


def run(args: argparse.Namespace) -> None:
    from spinalnet.comparison.report import render
    from spinalnet.errors import UsageError
    from spinalnet.files import atomic_write_text

    if args.output is not None:
        if args.output.is_dir():
            raise UsageError(f"--output {args.output} is a directory; give a file such as {args.output / 'RESULTS.md'}")
        from spinalnet.comparison.results_file import RESULTS

        sources = {(run / RESULTS if run.is_dir() else run).resolve() for run in args.runs}
        if args.output.resolve() in sources:
            raise UsageError(f"--output {args.output} is one of the results files being read; choose another file")
    from spinalnet.study.record import RECORD as STUDY

    studies = [run for run in args.runs if (run / STUDY).is_file()]
    if studies or args.pool:
        from spinalnet.study.report import pooled_report, study_report

        if studies and (args.pool or len(studies) < len(args.runs) or args.output is not None):
            raise UsageError("a study directory is reported on its own (spinalnet report STUDY_DIR); --pool and "
                             "--output are for comparison directories")
        print("\n\n".join(study_report(run) for run in studies) if studies else pooled_report(args.runs))
        return
    table = render(args.runs, include_missing=args.all, markdown=args.markdown or args.output is not None)
    if args.output is None:
        print(table)
        return
    lines = args.output.read_text().splitlines() if args.output.is_file() else []
    stripped = [line.strip() for line in lines]
    keep = lines[: max(i for i, line in enumerate(stripped) if line == MARKER)] if MARKER in stripped else lines
    head = "\n".join(keep) + "\n" if keep else ""
    atomic_write_text(args.output, f"{head}{MARKER}\n{table}\n")
    print(f"wrote {args.output}")
