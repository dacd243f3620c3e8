"""``results.json`` of a comparison: written by :func:`spinalnet.comparison.summary.write_summary` only, read
here (no framework import).

Format 2 (this version): ``arms`` maps each arm's spec to its lists over seeds (``test_acc``, ``val_acc``, ...),
parameters and head (layers, dropout, initialisation); ``contrasts`` lists every arm against the reference
arm (``difference_mean`` is reference minus arm, ``difference_ci95``, ``p_value``, ``p_holm``, ...); ``tune``
records a tuning grid, its validation means and the choices. A format 1 file (two heads, ``fc`` and ``spinal``
at the top level, no ``format``) is read as the arms fc and spinal, its contrast recomputed from the per-seed
lists and, where the run directories still hold them, the per-example predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spinalnet.comparison.contrasts import Predictions, contrasts
from spinalnet.engine.predictions import PREDICTIONS_FILE, read_predictions
from spinalnet.errors import UsageError
from spinalnet.files import write_json

RESULTS = "results.json"
FORMAT = 2
KINDS = "the results.json of compare, regress or reproduce"


def write_results(out: Path, results: dict[str, Any]) -> None:
    write_json(Path(out) / RESULTS, {"format": FORMAT, "kind": "compare", **results})


def read_results(path: Path) -> dict[str, Any]:
    """A comparison's or a regression study's results (a comparison's migrated to format 2); anything else is
    one line naming the file."""
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: not a readable results file ({err}); expected {KINDS}") from None
    return results_from(data, Path(path))


def results_from(data: Any, path: Path) -> dict[str, Any]:
    """:func:`read_results` of JSON already read from ``path``."""
    if not isinstance(data, dict):
        raise UsageError(f"{path}: holds a JSON {type(data).__name__}, not a results file; expected {KINDS}")
    if data.get("format", 1) > FORMAT:
        raise UsageError(f"{path}: written by a newer spinalnet (format {data['format']}); upgrade to read it")
    if "targets" in data:
        return data  # a regression study (spinalnet.regression)
    if isinstance(data.get("arms"), dict) and isinstance(data.get("contrasts"), list):
        return data
    if {"fc", "spinal"} <= data.keys() and all(isinstance(data[h], dict) for h in ("fc", "spinal")):
        try:
            return migrate_format_1(data, Path(path).parent)
        except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as err:
            raise UsageError(f"{path}: incomplete results file ({type(err).__name__}: {err}); expected {KINDS}") \
                from None
    single = " (it is a single run's result.json: pass the compare output directory)" if "test_acc" in data else ""
    raise UsageError(f"{path}: not a results file{single}; expected {KINDS}, with 'arms' (compare) or "
                     "'targets' (regress)")


def migrate_format_1(data: dict[str, Any], directory: Path) -> dict[str, Any]:
    """The two-head file as format 2: the same per-head lists under ``arms``, the contrast computed anew."""
    arms = {head: {**data[head], "spec": head, "head": None} for head in ("fc", "spinal")}
    predictions: Predictions = {(h, s): read_predictions(directory / "runs" / f"{h}-seed{s}" / PREDICTIONS_FILE)
                                for h in arms for s in arms[h].get("seeds", [])}
    kept = {k: v for k, v in data.items() if k not in ("fc", "spinal") and k not in _PAIRED_FIELDS}
    return {**kept, "format": FORMAT, "kind": "compare", "reference": "spinal", "arms": arms,
            "contrasts": contrasts(arms, "spinal", predictions), "tune": None, "migrated_from": 1}


_PAIRED_FIELDS = ("difference_mean", "difference_ci95", "ci_level", "p_value", "p_value_wilcoxon", "prob_improvement",
                  "better_in", "seeds", "seeds_for_power", "error_reduction_pct")
