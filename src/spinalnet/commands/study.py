"""``spinalnet study``: one comparison per setting (backbones, datasets), pooled into one verdict with its spread."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="compare heads across settings and pool the verdict",
                       description="Run a study: one comparison per setting (model, dataset, weights, ...) with the "
                       "study's arms, reference and seeds, then pool every contrast over the settings (random "
                       "effects, with the interval a new setting would show), rank the arms and write study.json, "
                       "study.csv, study.md and the figures. CONFIG is a YAML file or the name of a shipped study "
                       "(--list).")
    p.add_argument("config", nargs="?", help="the study's YAML file, or a shipped study's name")
    p.add_argument("--output", help="study directory (default: runs/study-<name>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the study in --output (a finished setting is "
                   "never trained again; more settings or seeds continue it)")
    p.add_argument("--force", action="store_true", help="start the study in --output over")
    p.add_argument("--jobs", type=int, default=1, help="runs at once per setting, as compare --jobs (default: 1)")
    p.add_argument("--shard", metavar="K/N", help="train only the K-th of N shares of the study's runs (every "
                   "setting's); the last shard to finish writes the summary")
    p.add_argument("--dry-run", action="store_true", help="print what each setting would run, what is done or "
                   "cached already, the data and weights it needs and an estimate of its time here; write nothing")
    p.add_argument("--list", action="store_true", help="list the shipped studies")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from spinalnet.errors import UsageError
    from spinalnet.study.shipped import format_list, study_path

    if args.list:
        print(format_list())
        return
    if not args.config:
        raise UsageError("give a study's YAML file or a shipped study's name (spinalnet study --list)")
    if args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    from spinalnet.study.config import read_study
    from spinalnet.study.plan import make_study_plan

    study = read_study(study_path(args.config))
    plan = make_study_plan(study, args.output, resume=args.resume, force=args.force, shard=args.shard,
                           jobs=args.jobs, dry_run=args.dry_run)
    if args.dry_run:
        from spinalnet.study.dry_run import describe_plan

        print(describe_plan(plan))
        return
    from spinalnet.study.execute import run_study

    run_study(plan)
