"""What the Keras examples share: ``spinalnet compare``'s summary of their runs and its ``results.json``.

A Keras run is a mapping with the fields of compare's run record (:class:`spinalnet.engine.run_record.RunResult`:
``head``, ``seed``, ``test_acc``, ``val_acc``, ``val_acc_curve``, ``params``, ...). ``compare``'s own summary
turns the records into its table and its results file, so ``spinalnet report`` reads a Keras comparison as it
reads a PyTorch one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spinalnet.comparison.results_file import RESULTS, ComparisonSummary
from spinalnet.comparison.summary import format_table, summarize
from spinalnet.engine.run_record import RunResult

__all__ = ["compare_summary", "format_table", "write_summary"]


def compare_summary(runs: dict[str, list[dict[str, Any]]], reference: str, predictions: dict | None = None,
                    epochs: int | None = None, **fields: Any) -> ComparisonSummary:
    """compare's summary of ``runs`` (per arm, one mapping per seed) with ``fields`` set (dataset, model, config...)."""
    summary = summarize({arm: [RunResult.from_dict(r) for r in found] for arm, found in runs.items()},
                        reference=reference, predictions=predictions, epochs=epochs)
    for name, value in fields.items():
        setattr(summary, name, value)
    return summary


def write_summary(out: Path, summary: ComparisonSummary) -> Path:
    """``out/results.json``, by compare's own writer."""
    Path(out).mkdir(parents=True, exist_ok=True)
    summary.write(Path(out))
    return Path(out) / RESULTS
