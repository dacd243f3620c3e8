"""A planned comparison, carried out: the directory and its record, the feature cache, the runs (one after
another, in ``--jobs`` worker processes, or, on cached features, together), the tuned arms' test passes, and
the summary once every run of the grid is finished."""

from __future__ import annotations

from typing import Any, Callable

from lightning.fabric.utilities.rank_zero import rank_zero_only

from spinalnet.comparison.feature_cache import feature_splits
from spinalnet.comparison.grid import GridRun, run_path
from spinalnet.comparison.plan import Plan, PlannedRun
from spinalnet.comparison.records import note_feature_cache, read_record, record_grid
from spinalnet.comparison.summary import stored_runs, tuning_choice, write_summary
from spinalnet.comparison.workers import train_in_workers
from spinalnet.data import DataSplits
from spinalnet.engine.describe import start_lines
from spinalnet.engine.evaluate import test_run
from spinalnet.engine.train import fit


def execute(plan: Plan, log: Callable[[str], None], experiment: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the plan's runs and summarise the comparison (or, as a shard, say how far the grid is)."""
    config = plan.config
    out = plan.directory.create()
    record_grid(out, config, plan.shard, experiment=experiment, recorded=plan.recorded)
    log(f"comparison directory: {out}")
    reference = config.reference_arm()
    for line in start_lines(config, plan.splits, plan.model, head_name=reference):  # the plan's model has it
        log(line)
    log(f"arms: {', '.join(plan.arms)} (reference {reference})"
        + (f"; tuning {', '.join(f'{k}={v}' for k, v in config.tune.items())} on validation" if config.tune else ""))
    splits = plan.splits
    if plan.no_cache and config.freeze_backbone:
        log(plan.no_cache)
    record = {"used": False, "hit": False, "extract_seconds": None, "images": None, "key": None}
    if plan.cache_dir is not None:  # every run below trains only its head, on the backbone's cached outputs
        splits, record = feature_splits(config, plan.splits, plan.cache_dir, plan.model, log)
    note_feature_cache(out, record)
    if plan.shard is not None:
        log(f"shard {plan.shard[0]}/{plan.shard[1]}: {len(plan.kept) + len(plan.todo)} of the {len(plan.grid)} runs")
    for planned in plan.kept:
        log(f"[{planned.run.label()}] finished earlier, kept: {planned.path}")
    train_runs(plan, splits, log)
    everything, results = stored_runs(out, read_record(out))
    done = {run for run, r in results.items() if r["epochs"] >= config.epochs}
    if len(done) < len(everything):
        log(f"shard {plan.shard[0]}/{plan.shard[1]} finished its runs; {len(done)} of the {len(everything)} runs of the "
            "comparison are done. The last shard to finish writes the summary (or compare --resume, or report on this "
            "directory, once all are done).")
        return {"shard": list(plan.shard or ()), "finished_runs": len(done), "runs": len(everything)}
    if config.tune:
        test_chosen(plan, splits, everything, results, log)
    if rank_zero_only.rank != 0:  # with DDP every process runs the comparison; one writes the summary
        return {}
    return write_summary(out, log)


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
        log(result_line(planned, result))


def result_line(planned: PlannedRun, result: dict[str, Any]) -> str:
    test = f"test accuracy {result['test_acc']:.2f}% " if result.get("test_acc") is not None else ""
    return f"[{planned.run.label()}] {test}(val {result['val_acc']:.2f}%, {result['train_seconds']:.1f} s)"


def test_chosen(plan: Plan, splits: DataSplits, everything: list[GridRun], results: dict[GridRun, dict[str, Any]],
                log: Callable[[str], None]) -> None:
    """Read the test split for the tuning value each arm chose on validation, once per chosen run."""
    _, chosen = tuning_choice(everything, results, plan.config.tune)
    for run in everything:
        if run in chosen and not results[run].get("tested"):
            path = run_path(plan.directory.path, run)
            result = test_run(path, splits)
            log(f"[{run.label()}] chosen on validation; test accuracy {result['test_acc']:.2f}%")
