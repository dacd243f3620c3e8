"""The deploy check: what a comparison reports is what its saved models give.

After the runs, one run per arm (its first seed's; under ``--tune`` the value validation chose) is evaluated again
the way a user would use it: its ``best.ckpt`` through :func:`spinalnet.engine.evaluate.evaluate` (the code of
``spinalnet eval``, which rebuilds a head trained on cached features on its backbone and reads the images, not the
features), on the test split. Its predictions must be the run's own, example by example; a difference is an error
naming the run, never a silent one. A prediction may differ only where the model's two best logits are within
:data:`TIE` of each other (float arithmetic in another order, e.g. a batched product, can then pick the other).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from spinalnet.comparison.grid import GridRun, run_path
from spinalnet.data import DataSplits
from spinalnet.engine.evaluate import evaluate
from spinalnet.engine.predictions import PREDICTIONS_FILE, read_predictions
from spinalnet.engine.run_record import RESULT_FILE, RunResult
from spinalnet.errors import REPORT_BUGS, ReproductionError

@dataclass(frozen=True)
class Tie:
    """Two best logits count as tied when their gap is under ``absolute`` or under ``relative`` times the larger's
    magnitude (a rounding step grows with the value it rounds)."""

    absolute: float
    relative: float = 0.0

    def of(self, best: np.ndarray) -> np.ndarray:
        return np.maximum(self.absolute, self.relative * np.abs(best))


#: float32 and float64: the round-off of a sum of a few thousand products in another order.
TIE = Tie(1e-3)
#: 16-bit precisions (``--precision bf16-mixed`` etc.): bfloat16 keeps 8 significant bits, so one rounding step is
#: 2^-8 to 2^-7 of a value (0.0625 for logits of 8 to 16); two passes may differ by a few steps: 4 steps, 2^-5.
LOW_PRECISION_TIE = Tie(0.1, 2.0 ** -5)


def tie_for(precision: str) -> Tie:
    """What counts as a tie for a run trained and tested in ``precision`` (Lightning's name)."""
    return TIE if str(precision).split("-")[0] in ("32", "64") else LOW_PRECISION_TIE


def runs_to_check(everything: list[GridRun], chosen: set[GridRun]) -> list[GridRun]:
    """One run per arm: the first (lowest seed) of the runs that stand for it."""
    first: dict[str, GridRun] = {}
    for run in everything:
        if run in chosen and (run.arm not in first or run.seed < first[run.arm].seed):
            first[run.arm] = run
    return list(first.values())


def check_deploy(out: Path, runs: list[GridRun], splits: DataSplits, log: Callable[[str], None],
                 tie: Tie = TIE) -> dict[str, Any]:
    """Evaluate each run's best checkpoint as ``spinalnet eval`` does on ``splits`` (the images) and compare its
    test predictions with the run's; raise :class:`ReproductionError` on a difference (two best logits within
    ``tie`` of each other excepted). Returns what was checked."""
    started = time.perf_counter()
    checked, skipped = [], []
    for run in runs:
        directory = run_path(out, run)
        stored = read_predictions(directory / PREDICTIONS_FILE)
        best = Path(RunResult.read(directory / RESULT_FILE).best_checkpoint)
        if stored is None or not best.is_file():  # a run kept without its checkpoint (results published without them)
            skipped.append(run.label())
            continue
        found = evaluate(best, "test", splits=splits, with_predictions=True, warn=lambda line: None)["predictions"]
        differ = _differences(stored, found, tie)
        if differ:
            accuracy = 100.0 * float(np.mean(found["y_pred"] == found["y_true"]))
            reported = 100.0 * float(np.mean(stored["y_pred"] == stored["y_true"]))
            raise ReproductionError(
                f"[{run.label()}] its saved model ({best}) evaluated as spinalnet eval does scores {accuracy:.2f}% "
                f"on the test split, the run reported {reported:.2f}% ({differ} of {len(found['y_pred'])} "
                f"predictions differ): a deployed model would not score what this comparison says. This is a bug "
                f"in spinalnet; please report it to {REPORT_BUGS}")
        checked.append(run.label())
    seconds = time.perf_counter() - started
    if checked:
        log(f"deploy check: the saved models of {', '.join(checked)}, evaluated as spinalnet eval does, give the "
            f"runs' own test predictions ({seconds:.1f} s)")
    if skipped:
        log(f"deploy check: not possible for {', '.join(skipped)} (no predictions.npz or best.ckpt kept)")
    return {"runs": checked, "skipped": skipped, "seconds": round(seconds, 3)}


def _differences(stored: dict[str, np.ndarray], found: dict[str, np.ndarray], tie: Tie = TIE) -> int:
    """Test examples whose prediction differs, not counting ties (two best logits within ``tie``)."""
    if not np.array_equal(stored["y_true"], found["y_true"]):
        return len(found["y_true"])
    differ = stored["y_pred"] != found["y_pred"]
    if not differ.any():
        return 0
    top2 = np.sort(found["logits"][differ], axis=1)[:, -2:]
    return int(np.sum(top2[:, 1] - top2[:, 0] >= tie.of(top2[:, 1])))
