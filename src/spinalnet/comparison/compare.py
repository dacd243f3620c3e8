"""``compare()``: the arms of a comparison trained alike over several seeds, then summarised with paired
statistics. Plan first (:mod:`.plan`: reads only), then execute (:mod:`.execute`); the summary is
:mod:`.summary`'s, from the files the runs left.

Runs with the same seed are paired (same split, order, augmentation, backbone initialisation). Under
``--schedule random-restart`` each run restarts its learning rate on its own validation accuracy, so the
arms' schedules differ by design; the summary says so and records each ``lr_curve``.
"""

from __future__ import annotations

from typing import Any, Callable

from spinalnet.comparison.config import CompareConfig
from spinalnet.comparison.execute import ShardProgress, execute
from spinalnet.comparison.plan import make_plan
from spinalnet.comparison.results_file import RESULTS, ComparisonSummary
from spinalnet.comparison.summary import format_table
from spinalnet.engine.trainer import rank_zero_print


def compare(config: CompareConfig, log: Callable[[str], None] = rank_zero_print,
            experiment: dict[str, Any] | None = None, only: set | None = None
            ) -> ComparisonSummary | ShardProgress | None:
    """Check ``config`` (once: this is where a comparison is entered), plan it and carry it out; return the
    summary (``results.json``), or, for a shard whose grid is not finished yet, how far it is. ``only``: the runs
    of the grid this process trains (a study's shard)."""
    config.validate()
    plan = make_plan(config, only)
    if plan.finished is not None:  # report it; more seeds, epochs or arms continue it
        log(f"finished earlier, stored result: {plan.directory.path / RESULTS}")
        log(format_table(plan.finished, config.schedule))
        return plan.finished
    return execute(plan, log, experiment)
