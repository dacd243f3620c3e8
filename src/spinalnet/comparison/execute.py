"""A planned comparison, carried out: the directory and its record, the feature cache, the runs (one after
another, in ``--jobs`` worker processes, or, on cached features, together), the tuned arms' test passes, and
the summary once every run of the grid is finished."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from lightning.fabric.utilities.rank_zero import rank_zero_only

from spinalnet.comparison.deploy_check import check_deploy, runs_to_check, tie_for
from spinalnet.comparison.feature_cache import feature_splits
from spinalnet.comparison.feature_record import FeatureCacheRecord
from spinalnet.comparison.grid import GridRun, run_path
from spinalnet.comparison.plan import Plan
from spinalnet.comparison.records import ComparisonRecord, record_grid
from spinalnet.comparison.results_file import ComparisonSummary
from spinalnet.comparison.summary import stored_runs, tuning_choice, write_summary
from spinalnet.comparison.workers import train_in_workers
from spinalnet.data import DataSplits
from spinalnet.engine.describe import start_lines
from spinalnet.engine.evaluate import test_run
from spinalnet.engine.predictions import write_labels
from spinalnet.engine.run_record import RunResult
from spinalnet.engine.train import fit
from spinalnet.errors import UsageError


@dataclass(frozen=True)
class ShardProgress:
    """What a shard returns when the comparison's grid is not finished yet."""

    shard: tuple[int, int]
    finished_runs: int
    runs: int


def execute(plan: Plan, log: Callable[[str], None], experiment: dict[str, Any] | None = None
            ) -> ComparisonSummary | ShardProgress | None:
    """Train the plan's runs and summarise the comparison (or, as a shard, say how far the grid is; None on a DDP
    rank other than zero, which writes nothing)."""
    config = plan.config
    out = plan.directory.create()
    record_grid(out, config, plan.shard, experiment=experiment)
    log(f"comparison directory: {out}")
    reference = config.reference
    for line in start_lines(config, plan.splits, plan.model, head_name=reference, cached=plan.cache_dir is not None,
                            views=config.feature_views):  # the plan's model has the reference's head
        log(line)
    log(f"arms: {', '.join(plan.arms)} (reference {reference})"
        + (f"; tuning {', '.join(f'{k}={v}' for k, v in config.tune.items())} on validation" if config.tune else ""))
    if rank_zero_only.rank == 0:
        write_labels(out, np.asarray(plan.splits.test.labels))  # once for every run: they share the test split
    splits = plan.splits
    if plan.no_cache and config.freeze_backbone:
        log(plan.no_cache)
    record = FeatureCacheRecord()
    if plan.cache_dir is not None:  # every run below trains only its head, on the backbone's cached outputs
        splits, record = feature_splits(config, plan.splits, plan.cache_dir, plan.model, log)
    if rank_zero_only.rank == 0:
        record.write(out)
    if plan.partial:
        which = f"shard {plan.shard[0]}/{plan.shard[1]}" if plan.shard else "this process"
        log(f"{which}: {len(plan.kept) + len(plan.todo)} of the {len(plan.grid)} runs")
    for planned in plan.kept:
        log(f"[{planned.run.label()}] finished earlier, kept: {planned.path}")
    train_runs(plan, splits, log)
    everything, results = stored_runs(out, ComparisonRecord.read(out))
    done = {run for run, r in results.items() if r.finished(config.epochs)}
    if len(done) < len(everything):
        if not plan.partial:  # every run of the grid was this process's to train
            missing = [run.label() for run in everything if run not in done]
            raise UsageError(f"{out}: {len(missing)} of the {len(everything)} runs of this comparison have no finished "
                             f"result ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); continue it "
                             "with compare --resume")
        which = f"shard {plan.shard[0]}/{plan.shard[1]}" if plan.shard else "this process"
        log(f"{which} finished its runs; {len(done)} of the {len(everything)} runs of the comparison are done. The "
            "last shard to finish writes the summary (or compare --resume, or report on this directory, once all "
            "are done).")
        return ShardProgress(plan.shard or (0, 0), len(done), len(everything))
    if config.tune:
        test_chosen(plan, splits, everything, results, log)
    if rank_zero_only.rank != 0:  # with DDP every process runs the comparison; one writes the summary
        return None
    deploy = None
    if config.deploy_check:
        _, chosen = tuning_choice(everything, results, config.tune)
        deploy = check_deploy(out, runs_to_check(everything, chosen), plan.splits, log, tie_for(config.precision))
    return write_summary(out, log, deploy_check=deploy)


def train_runs(plan: Plan, splits: DataSplits, log: Callable[[str], None]) -> None:
    """The plan's unfinished runs: together on cached features, else in workers or one after another."""
    if not plan.todo:
        return
    test = not plan.config.tune  # tuned runs are tested only once validation has chosen among them
    if plan.cache_dir is not None and plan.config.batch_heads:
        from spinalnet.engine.batched import train_together

        if plan.jobs > 1:
            log(f"--jobs {plan.jobs}: the runs on cached features train together in this process (--no-batch-heads "
                "trains them one by one, in worker processes)")
        train_together([p.config for p in plan.todo], splits, plan.model, log=log, test=test,
                       names={p.config.output: p.run.label() for p in plan.todo})
        return
    workers = min(plan.jobs, len(plan.todo))
    if workers > 1:
        train_in_workers([p.config for p in plan.todo], splits, workers, plan.gpus, log, test=test,
                         names=[p.run.label() for p in plan.todo], on_done=lambda r: None)
        return
    for planned in plan.todo:
        log(f"[{planned.run.label()}] training {plan.config.model} on {plan.config.dataset} for "
            f"{plan.config.epochs} epoch(s)")
        result = fit(planned.config, splits, test=test, announce=False)
        log(f"[{planned.run.label()}] {result.describe()}")


def test_chosen(plan: Plan, splits: DataSplits, everything: list[GridRun], results: dict[GridRun, RunResult],
                log: Callable[[str], None]) -> None:
    """Read the test split for the tuning value each arm chose on validation, once per chosen run."""
    _, chosen = tuning_choice(everything, results, plan.config.tune)
    for run in everything:
        if run in chosen and not results[run].tested:
            path = run_path(plan.directory.path, run)
            result = test_run(path, splits)
            log(f"[{run.label()}] chosen on validation; test accuracy {result.test_acc:.2f}%")
