"""What a comparison will do, decided before anything is written: its directory, its grid of (arm, tuning
value, seed) runs and this shard's share of it, the head of every arm with each option written out, which
runs finished earlier and the config of every run still to train.

The plan builds exactly one model: the reference arm's, on the real data's shapes and with the pretrained
weights, which checks every model option and file once; the arms' heads are then resolved from it (an ``mlp``
gets the reference Spinal head's parameter count) and checked on the meta device. With the feature cache the
same model extracts the features (:mod:`spinalnet.comparison.execute`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spinalnet.comparison.config import CompareConfig
from spinalnet.comparison.feature_cache import cache_plan, check_cache_dir, check_views
from spinalnet.comparison.grid import GridRun, Shard, check_shards, parse_shard, run_path, share
from spinalnet.comparison.records import ComparisonRecord, check_grid
from spinalnet.comparison.results_file import RESULTS, ComparisonSummary, read_results
from spinalnet.comparison.workers import check_jobs
from spinalnet.data import DataSplits, load_dataset
from spinalnet.engine.checkpoints import read_checkpoint_state
from spinalnet.engine.config import TrainConfig
from spinalnet.engine.machine import gpu_count
from spinalnet.engine.module import build_model, data_facts
from spinalnet.engine.run_record import RESULT_FILE, RunResult, check_same_run
from spinalnet.errors import UsageError
from spinalnet.heads.arms import HeadContext, build, resolve
from spinalnet.heads.spec import ArmSpec, parse_arm
from spinalnet.rundir import RunDir, open_run_dir, timestamped


@dataclass
class PlannedRun:
    run: GridRun
    path: Path
    config: TrainConfig  # checked: the comparison's options with this run's head, seed, tuning values and output
    stored: RunResult | None = None  # its result.json, from an earlier invocation


@dataclass
class Plan:
    config: CompareConfig
    directory: RunDir
    shard: Shard | None
    arms: dict[str, ArmSpec]  # arm name -> its head with every option written out
    grid: list[GridRun]
    kept: list[PlannedRun] = field(default_factory=list)  # this shard's runs finished earlier
    todo: list[PlannedRun] = field(default_factory=list)  # this shard's runs to train (or to continue)
    splits: DataSplits | None = None
    model: nn.Module | None = None  # the one model the plan builds (the reference arm's)
    cache_dir: Path | None = None
    no_cache: str | None = None
    jobs: int = 1
    gpus: int = 0
    recorded: ComparisonRecord | None = None
    finished: ComparisonSummary | None = None  # results.json, when this very grid was finished earlier
    partial: bool = False  # this process trains a share of the grid (a shard, a study's shard)


def make_plan(config: CompareConfig, only: set[GridRun] | None = None) -> Plan:
    """Decide everything a comparison of a checked ``config`` does; writes nothing. ``only``: the runs of its grid
    this process trains (a study's shard), in a directory other processes may fill too; default: its ``--shard``
    share, or the whole grid."""
    shard = parse_shard(config.shard)
    directory = open_run_dir(config.output, "compare", lambda: timestamped("runs", Path(config.dataset).name,
                                                                           config.model),
                             resume=config.resume, force=config.force, shared=shard is not None or only is not None)
    arms = config.arms()
    everything = ComparisonRecord.of(config, shard).grid()  # the grid, decided once, in the arms' normalised names
    check_shards(shard, len(everything))
    gpus = gpu_count() if config.accelerator in ("auto", "gpu", "cuda") else 0
    jobs = check_jobs(config.jobs, config.accelerator, config.devices, config.num_nodes, gpus)
    recorded = check_grid(directory.path, config, shard) if directory.resume else None
    plan = Plan(config, directory, shard, {}, everything, jobs=jobs, gpus=gpus, recorded=recorded,
                partial=shard is not None or only is not None)
    if directory.resume and directory.finished:
        plan.finished = finished_earlier(directory.path, config)
        if plan.finished is not None:
            return plan
    mine = share(everything, shard) if only is None else [run for run in everything if run in only]
    # every run of the grid: another shard's cut-off result.json is named now, not after this shard trained
    earlier = stored_results(directory.path, everything)
    plan.splits = load_dataset(config.dataset, config.data_options())  # loaded once, shared by every run
    plan.model, context = reference_model(config, plan.splits)
    reference = resolve(parse_arm(config.reference), context)
    plan.arms = {arm.name: checked_head(arm, context, reference) for arm in arms}
    plan.cache_dir, plan.no_cache = cache_plan(config)
    if plan.cache_dir is not None:
        check_views(config, plan.splits)
        check_cache_dir(plan.cache_dir)
    base = config.run_config()
    same = same_head(context, reference)
    for run in mine:
        planned = planned_run(run, plan, base, earlier.get(run), same)
        (plan.kept if planned.stored is not None else plan.todo).append(planned)
    return plan


def finished_earlier(out: Path, config: CompareConfig) -> ComparisonSummary | None:
    """The stored summary when it holds this grid (same arms, tuning values, seeds and epochs), else None
    (more seeds, epochs or arms continue it)."""
    try:
        stored = read_results(out / RESULTS)
    except UsageError:
        stored = None
    if not isinstance(stored, ComparisonSummary) or not {"seeds", "epochs"} <= stored.config.keys():
        raise UsageError(f"{out / RESULTS}: not a comparison summary written by spinalnet; restore it or move it "
                         "away, then run again")
    saved = stored.config
    check_same_run(saved, config.run_config(), out / RESULTS, same_head=lambda a, b: True)
    same_grid = (saved["seeds"], saved["epochs"], list(stored.arms), saved.get("tune") or {}) == \
        (config.seeds, config.epochs, list(config.heads), config.tune)
    return stored if same_grid else None


def stored_results(out: Path, runs: list[GridRun]) -> dict[GridRun, RunResult]:
    """The result.json of each run of ``runs`` that has one (trained by any shard, for any epochs)."""
    found = {}
    for run in runs:
        path = run_path(out, run) / RESULT_FILE
        if path.is_file():
            found[run] = RunResult.read(path)
    return found


def reference_model(config: CompareConfig, splits: DataSplits) -> tuple[nn.Module, HeadContext]:
    """The one model a comparison builds before it trains: the reference arm's, from the first seed."""
    run = config.run_config(head=config.reference)
    with torch.random.fork_rng(devices=[]):  # the runs draw their own initialisations from their seeds
        torch.manual_seed(config.seed)
        try:
            model = build_model(run, data_facts(splits, run))
        except UsageError:
            raise
        except ValueError as err:  # the layer's own refusal of the reference arm's sizes
            raise UsageError(f"--heads {config.reference}: {err}") from None
    return model, model.head_context


def checked_head(arm: ArmSpec, context: HeadContext, reference: ArmSpec) -> ArmSpec:
    """``arm`` with every option written out; its head built on the meta device, so impossible sizes are refused
    now (the model's own head needs no check)."""
    resolved = resolve(arm, context, reference)
    if arm.kind != "fc":
        try:
            with torch.device("meta"):
                build(resolved, context)
        except ValueError as err:
            raise UsageError(f"--heads {arm.name}: {err}") from None
    return resolved


def same_head(context: HeadContext, reference: ArmSpec):
    """Whether a stored run's head spec builds the head of a resolved spec (``spinal`` then meant what
    ``spinal:layer_width=8,...`` spells out now)."""
    def same(saved: str, current: str) -> bool:
        try:
            return saved == current or resolve(parse_arm(saved), context, reference).text == current
        except UsageError:
            return False
    return same


def planned_run(run: GridRun, plan: Plan, base: TrainConfig, stored: RunResult | None, same) -> PlannedRun:
    """The run's config, and its stored result when it finished earlier (checked to be the same run). A run
    killed before its first checkpoint starts over; a later one continues."""
    path = run_path(plan.directory.path, run)
    head = plan.arms[run.arm].text
    last = path / "checkpoints" / "last.ckpt"
    if stored is None and plan.directory.resume and last.is_file():
        saved = read_checkpoint_state(last)[0].get("head")
        head = saved if isinstance(saved, str) and same(saved, head) else head  # a checkpoint of an earlier spelling
    config = replace(base, head=head, seed=run.seed, output=str(path), **dict(run.point))
    if plan.jobs > 1:  # one progress bar per worker would garble the terminal: one line per epoch
        config.progress = False
    if stored is not None:
        check_same_run(stored.config, config, path / RESULT_FILE, same_head=same)
        if stored.finished(config.epochs):
            return PlannedRun(run, path, config, stored)
    started = last.is_file()
    config.resume = plan.directory.resume and started
    config.force = plan.directory.force or (plan.directory.resume and not started and path.exists())
    return PlannedRun(run, path, config)
