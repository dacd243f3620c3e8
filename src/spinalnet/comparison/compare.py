"""``spinalnet compare``: the fc head against the Spinal head, same data, order, augmentation and schedule
(except under random-restart, below).

Runs with the same seed are paired (same split, order, augmentation, backbone initialisation); the
statistics in ``results.json`` are those of :mod:`spinalnet.stats` on the per-seed differences.
Under ``--schedule random-restart`` each run restarts its learning rate on its own validation
accuracy, so the two heads' schedules differ by design; compare says so and records each ``lr_curve``.
"""

from __future__ import annotations

import csv
import io
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from lightning.fabric.utilities.rank_zero import rank_zero_only

from spinalnet.comparison.summary import HEADS, SCHEDULES_DIFFER, format_table, summarize
from spinalnet.data import load_dataset
from spinalnet.errors import UsageError
from spinalnet.comparison.feature_cache import cache_plan, check_cache_dir, check_views, feature_splits
from spinalnet.comparison.plots import plot_curves, plot_summary
from spinalnet.files import atomic_write_text, read_json, write_json
from spinalnet.provenance import hardware, versions
from spinalnet.rundir import open_run_dir, timestamped
from spinalnet.comparison.shards import check_grid, check_shards, grid, parse_shard, read_record, record_grid, share
from spinalnet.comparison.config import CompareConfig
from spinalnet.engine.config import TrainConfig
from spinalnet.engine.machine import gpu_count
from spinalnet.engine.module import Classifier, data_facts
from spinalnet.engine.predictions import PREDICTIONS_FILE, read_predictions
from spinalnet.engine.train import RESULT_FILE, check_same_run, data_options, rank_zero_print, train
from spinalnet.comparison.workers import check_jobs, train_in_workers

CSV_COLUMNS = ("head", "seed", "test_acc", "val_acc", "params", "head_params", "epochs", "train_seconds",
               "images_per_second")


def load_run_predictions(out: Path, heads_seeds: list[tuple[str, int]]) -> dict[tuple[str, int], dict | None]:
    return {(h, s): read_predictions(run_path(out, h, s) / PREDICTIONS_FILE) for h, s in heads_seeds}


def run_path(out: Path, head: str, seed: int) -> Path:
    """Where a comparison keeps its (head, seed) run."""
    return Path(out) / "runs" / f"{head}-seed{seed}"


def write_csv(runs: list[dict[str, Any]], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for run in sorted(runs, key=lambda r: (r["seed"], r["head"])):
        writer.writerow(run)
    atomic_write_text(path, buffer.getvalue())


def compare(config: CompareConfig, log: Callable[[str], None] = rank_zero_print,
            experiment: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train both heads for every seed (or this ``--shard``'s share of them, in ``--jobs`` processes);
    write results.json, results.csv, curves.png and summary.png once every run of the grid is finished."""
    config.validate()
    shard = parse_shard(config.shard)
    run = open_run_dir(config.output, "compare", lambda: timestamped("runs", Path(config.dataset).name, config.model),
                       resume=config.resume, force=config.force, shared=shard is not None)
    title = f"{config.dataset} / {config.model}: {config.seeds} seed(s) x {config.epochs} epoch(s)"
    everything = grid(HEADS, config.seed, config.seeds)
    check_shards(shard, len(everything))
    mine = share(everything, shard)
    gpus = gpu_count() if config.accelerator in ("auto", "gpu", "cuda") else 0
    jobs = check_jobs(config.jobs, config.accelerator, config.devices, config.num_nodes, gpus)
    recorded = check_grid(run.path, config, shard) if run.resume else None
    if run.resume and run.finished:  # report it; more seeds or epochs continue it
        stored = read_json(run.path / "results.json")
        if not isinstance(stored, dict) or not isinstance(stored.get("config"), dict) \
                or not {"seeds", "epochs"} <= stored["config"].keys():
            raise UsageError(f"{run.path / 'results.json'}: not a comparison summary written by spinalnet; restore "
                             "it or move it away, then run again")
        check_same_run(stored["config"], config, run.path / "results.json")
        if (stored["config"]["seeds"], stored["config"]["epochs"]) == (config.seeds, config.epochs):
            log(f"finished earlier, stored result: {run.path / 'results.json'}")
            log(format_table(stored, title, config.schedule))
            return stored
    # earlier runs' results, read once; a cut-off result.json is named now, not after training
    earlier = stored_results(run.path, everything) if run.resume else {}
    splits = load_dataset(config.dataset, data_options(config))  # loaded once, shared by every run
    base = {k: v for k, v in config.to_dict().items() if k in TrainConfig.__dataclass_fields__}
    for head in HEADS:  # impossible model options fail here, before anything is written
        Classifier({**base, "head": head}, data_facts(splits))
    cache_dir, no_cache = cache_plan(config)
    if cache_dir is not None:
        check_views(config, splits)
        check_cache_dir(cache_dir)
    kept, todo = runs_to_train(run.path, base, mine, run, earlier, log)  # checks earlier runs' options; writes nothing
    out = run.create()
    record_grid(out, config, shard, experiment=experiment, recorded=recorded)
    feature_cache: dict[str, Any] = {"used": False, "hit": False, "extract_seconds": None, "images": None,
                                     "key": None}
    if no_cache and config.freeze_backbone:
        log(no_cache)
    if cache_dir is not None:  # every run below trains only its head, on the backbone's cached outputs
        splits, feature_cache = feature_splits(config, splits, cache_dir, log)
    if shard is not None:
        log(f"shard {shard[0]}/{shard[1]}: {len(mine)} of the {len(everything)} runs")
    workers = min(jobs, len(todo))
    if workers <= 1:
        for run_config in todo:
            log(f"[{run_config.head} seed {run_config.seed}] training {config.model} on {config.dataset} "
                f"for {config.epochs} epoch(s)")
            result = train(run_config, splits)
            log(result_line(result))
            kept[(run_config.head, run_config.seed)] = result
    else:
        for run_config in todo:  # one progress bar per worker would garble the terminal: one line per epoch
            run_config.progress = False
        results = train_in_workers(todo, splits, workers, gpus, log, on_done=lambda r: log(result_line(r)))
        for run_config, result in zip(todo, results):
            kept[(run_config.head, run_config.seed)] = result
    if shard is not None:
        kept = finished_runs(out, everything, config.epochs)  # the other shards' runs too
        if len(kept) < len(everything):
            log(f"shard {shard[0]}/{shard[1]} finished its runs; {len(kept)} of the {len(everything)} runs of the "
                "comparison are done. The last shard to finish writes the summary (or compare --resume, or report "
                "on this directory, once all are done).")
            return {"shard": list(shard), "finished_runs": len(kept), "runs": len(everything)}
    runs = [kept[key] for key in everything]
    return write_comparison(out, runs, config, log, experiment, feature_cache)


def result_line(result: dict[str, Any]) -> str:
    return (f"[{result['head']} seed {result['seed']}] test accuracy {result['test_acc']:.2f}% "
            f"(val {result['val_acc']:.2f}%, {result['train_seconds']:.1f} s)")


def runs_to_train(out: Path, base: dict[str, Any], runs: list[tuple[str, int]], run: Any,
                  earlier: dict[tuple[str, int], dict[str, Any]],
                  log: Callable[[str], None]) -> tuple[dict, list[TrainConfig]]:
    """Split ``runs`` into those finished earlier (kept, with their results) and the configs still to train;
    ``earlier`` holds the results already on disk (:func:`stored_results`).

    A (head, seed) run killed before its first checkpoint starts over; a later one continues.
    """
    kept: dict[tuple[str, int], dict[str, Any]] = {}
    todo: list[TrainConfig] = []
    for head, seed in runs:
        run_dir = run_path(out, head, seed)
        run_config = TrainConfig.from_dict({**base, "head": head, "seed": seed, "output": str(run_dir)})
        stored = earlier.get((head, seed))
        if stored is not None:
            check_same_run(stored["config"], run_config, run_dir / RESULT_FILE)
            if stored["epochs"] >= run_config.epochs:
                log(f"[{head} seed {seed}] finished earlier, kept: {run_dir}")
                kept[(head, seed)] = stored
                continue
        started = (run_dir / "checkpoints" / "last.ckpt").is_file()
        run_config.resume = run.resume and started
        run_config.force = run.force or (run.resume and not started and run_dir.exists())
        todo.append(run_config)
    return kept, todo


def stored_results(out: Path, runs: list[tuple[str, int]]) -> dict[tuple[str, int], dict]:
    """The result.json of each run of ``runs`` that has one (trained by any shard, for any epochs)."""
    found = {}
    for head, seed in runs:
        done = run_path(out, head, seed) / RESULT_FILE
        if done.is_file():
            stored = read_json(done)
            if not isinstance(stored, dict) or not isinstance(stored.get("epochs"), int) \
                    or not isinstance(stored.get("config"), dict):
                raise UsageError(f"{done}: not a run result written by spinalnet; restore it or move the run "
                                 "directory away, then run again")
            found[(head, seed)] = stored
    return found


def finished_runs(out: Path, runs: list[tuple[str, int]], epochs: int) -> dict[tuple[str, int], dict]:
    """The runs of ``runs`` trained for at least ``epochs`` epochs."""
    return {key: r for key, r in stored_results(out, runs).items() if r["epochs"] >= epochs}


def write_comparison(out: Path, runs: list[dict[str, Any]], config: CompareConfig, log: Callable[[str], None],
                     experiment: dict[str, Any] | None, feature_cache: dict[str, Any] | None) -> dict[str, Any]:
    """Summarise finished runs into results.json, results.csv, curves.png and summary.png, and print the table."""
    summary = summarize(runs, load_run_predictions(out, [(r["head"], r["seed"]) for r in runs]))
    seeds = len(summary.get("spinal", {}).get("seeds", []))
    title = f"{config.dataset} / {config.model}: {seeds} seed(s) x {config.epochs} epoch(s)"
    results = {
        "dataset": config.dataset, "model": config.model, **summary,
        "feature_cache": feature_cache,
        "schedules_differ": SCHEDULES_DIFFER if config.schedule == "random-restart" else None,
        "config": config.to_dict(), "versions": versions(), "hardware": hardware(),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
        "experiment": experiment,
    }
    if rank_zero_only.rank == 0:  # with DDP every process runs this loop; one writes the summary
        write_json(out / "results.json", results)
        write_csv(runs, out / "results.csv")
        plot_curves(runs, out / "curves.png", title)
        plot_summary(summary, out / "summary.png", title)
    log("")
    log(format_table(summary, title, config.schedule))
    log(f"wrote {out}/results.json, results.csv, curves.png, summary.png")
    return results


def finish_comparison(out: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write the summary of a comparison whose runs were all trained, by any shards, from its record
    (``report`` on a sharded directory whose last shard did not write it, e.g. one killed at the end)."""
    out = Path(out)
    record = read_record(out)
    config = CompareConfig.from_dict({**record["options"], "output": str(out)})
    everything = grid(HEADS, config.seed, config.seeds)
    kept = finished_runs(out, everything, config.epochs)
    if len(kept) < len(everything):
        raise UsageError(f"{out}: {len(kept)} of the {len(everything)} runs of this comparison are finished and it "
                         "has no results.json yet; run the remaining shards (or compare --resume) first")
    return write_comparison(out, [kept[key] for key in everything], config, log, record.get("experiment"), None)
