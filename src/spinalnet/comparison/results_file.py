"""``results.json`` of a comparison, :class:`ComparisonSummary`: written by
:func:`spinalnet.comparison.summary.write_summary` only (through :meth:`ComparisonSummary.write`), read here (no
framework import).

Format 3 (this version) adds each arm's ``epochs``, ``best_epoch`` and ``still_improving`` per seed, the
comparison's ``convergence`` (:func:`spinalnet.comparison.contrasts.assess`) and its ``deploy_check``. Format 2 has
``arms`` (each arm's spec and its lists over seeds, parameters and head), ``contrasts`` (every arm against the
reference arm: ``difference_mean`` is reference minus arm, ``difference_ci95``, ``p_value``, ``p_holm``, ...) and
``tune``. A format 1 file (two heads, ``fc`` and ``spinal`` at the top level) is read as the arms fc and spinal,
its contrast recomputed from the per-seed lists and, where the run directories still hold them, the per-example
predictions. A regression study's ``results.json`` (``targets``) is read as it is, a plain mapping.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from spinalnet.comparison.contrasts import ArmSummary, Contrast, Predictions, contrasts, known_fields, missing_fields
from spinalnet.engine.predictions import PREDICTIONS_FILE, read_predictions
from spinalnet.errors import UsageError
from spinalnet.files import migrate, write_record

RESULTS = "results.json"
FORMAT = 3
#: A regression study's results.json (``targets``): format 1, no migration yet.
REGRESSION_FORMAT = 1
KINDS = "the results.json of compare, regress or reproduce"


@dataclass
class ComparisonSummary:
    """What a comparison found: every arm over its seeds, every arm against the reference, and how it was run."""

    reference: str
    arms: dict[str, ArmSummary]
    contrasts: list[Contrast]
    dataset: str | None = None
    model: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    tune: dict[str, Any] | None = None
    feature_cache: dict[str, Any] | None = None
    schedules_differ: str | None = None
    convergence: dict[str, Any] | None = None
    deploy_check: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None
    hardware: dict[str, Any] | None = None
    finished: str | None = None
    command: str | None = None
    experiment: dict[str, Any] | None = None
    migrated_from: int | None = None
    kind: str = "compare"
    #: where it was read from (not stored)
    path: Path | None = field(default=None, metadata={"stored": False})

    def contrast(self, arm: str) -> Contrast | None:
        return next((c for c in self.contrasts if c.arm == arm), None)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.metadata.get("stored", True)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> "ComparisonSummary":
        known = known_fields(cls, data)
        known["arms"] = {name: ArmSummary.from_dict(a) for name, a in data["arms"].items()}
        known["contrasts"] = [Contrast.from_dict(c) for c in data["contrasts"]]
        return cls(**{**known, "path": path})

    def write(self, out: Path) -> None:
        write_record(Path(out) / RESULTS, self.to_dict(), FORMAT)


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def read_results(path: Path) -> ComparisonSummary | dict[str, Any]:
    """A comparison's results (migrated to this format) or a regression study's (a mapping); anything else is one
    line naming the file."""
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: not a readable results file ({err}); expected {KINDS}") from None
    return results_from(data, Path(path))


def results_from(data: Any, path: Path) -> ComparisonSummary | dict[str, Any]:
    """:func:`read_results` of JSON already read from ``path``."""
    if not isinstance(data, dict):
        raise UsageError(f"{path}: holds a JSON {type(data).__name__}, not a results file; expected {KINDS}")
    if "targets" in data:  # a regression study (spinalnet.regression)
        migrate(data, REGRESSION_FORMAT, {}, path)  # refuses one a newer spinalnet wrote
        _check_regression(data, path)
        return data
    is_two_heads = {"fc", "spinal"} <= data.keys() and all(isinstance(data[h], dict) for h in ("fc", "spinal"))
    if not (isinstance(data.get("arms"), dict) and isinstance(data.get("contrasts"), list)) and not is_two_heads:
        single = " (it is a single run's result.json: pass the compare output directory)" if "test_acc" in data else ""
        raise UsageError(f"{path}: not a results file{single}; expected {KINDS}, with 'arms' (compare) or "
                         "'targets' (regress)")
    if is_two_heads and data.get("format", 1) == 1:
        data = {**data, "directory": str(Path(path).parent)}
    if is_two_heads and data.get("format", 1) == 1:
        for head in ("fc", "spinal"):
            _require(ArmSummary, {**data[head], "spec": head}, f"head {head}", path)
    data = migrate(data, FORMAT, MIGRATIONS, path)
    for name, arm in data["arms"].items():
        _require(ArmSummary, arm, f"arm {name}", path)
    for item in data["contrasts"]:
        _require(Contrast, item, "a contrast", path)
    _require(ComparisonSummary, data, "the file", path)
    return ComparisonSummary.from_dict(data, Path(path))


def write_regression_results(out: Path, data: dict[str, Any]) -> None:
    """A regression study's ``results.json`` (``targets``, ``config``, provenance): the one writer of the file name
    for both kinds of results."""
    write_record(Path(out) / RESULTS, data, REGRESSION_FORMAT)


#: What each model of a regression target holds (spinalnet.regression.study writes them).
REGRESSION_FIELDS = ("test_mse", "test_mse_mean", "test_mse_std", "paper_metric_min_train_batch_mse")


def _check_regression(data: dict[str, Any], path: Path) -> None:
    """A regression study's results as spinalnet.regression writes them, or one line naming what is missing."""
    targets, config = data.get("targets"), data.get("config")
    problems = [] if isinstance(targets, dict) and targets and isinstance(config, dict) and "epochs" in config else \
        ["targets and config (with epochs)"]
    for target, models in (targets.items() if not problems else []):
        for model in ("fc", "spinal"):
            entry = models.get(model) if isinstance(models, dict) else None
            missing = REGRESSION_FIELDS if not isinstance(entry, dict) else [f for f in REGRESSION_FIELDS
                                                                                if f not in entry]
            if missing:
                problems.append(f"{target} {model}: {', '.join(missing)}")
    if problems:
        raise UsageError(f"{path}: incomplete results file: no {problems[0]}; expected {KINDS}")


def _require(cls: type, data: Any, what: str, path: Path) -> None:
    missing = missing_fields(cls, data)
    if missing:
        raise UsageError(f"{path}: incomplete results file: {what} has no {', '.join(missing[:4])}; expected {KINDS}")


def _from_1(data: dict[str, Any]) -> dict[str, Any]:
    """The two-head file as format 2: the same per-head lists under ``arms``, the contrast computed anew."""
    directory = Path(data.pop("directory"))
    arms = {head: ArmSummary.from_dict({**data[head], "spec": head, "head": {}}) for head in ("fc", "spinal")}
    predictions: Predictions = {(h, s): read_predictions(directory / "runs" / f"{h}-seed{s}" / PREDICTIONS_FILE)
                                for h in arms for s in arms[h].seeds}
    kept = {k: v for k, v in data.items() if k not in ("fc", "spinal") and k not in _PAIRED_FIELDS}
    return {**kept, "kind": "compare", "reference": "spinal", "arms": {h: asdict(a) for h, a in arms.items()},
            "contrasts": [asdict(c) for c in contrasts(arms, "spinal", predictions)], "tune": None, "migrated_from": 1}


def _from_2(data: dict[str, Any]) -> dict[str, Any]:
    """Format 3's new fields, unknown for a file written before them."""
    return {**data, "convergence": None, "deploy_check": None}


MIGRATIONS = {1: _from_1, 2: _from_2}
_PAIRED_FIELDS = ("difference_mean", "difference_ci95", "ci_level", "p_value", "p_value_wilcoxon", "prob_improvement",
                  "better_in", "seeds", "seeds_for_power", "error_reduction_pct")
