"""``spinalnet report STUDY_DIR`` (a study's pooled verdict) and ``spinalnet report --pool DIR ...`` (comparison
directories pooled without a study file), as text (no torch import)."""

from __future__ import annotations

from pathlib import Path

from spinalnet.comparison.results_file import RESULTS, ComparisonSummary, read_results
from spinalnet.errors import UsageError
from spinalnet.study.record import StudyRecord
from spinalnet.study.summary import verdict_lines


def study_report(directory: Path) -> str:
    """The study's verdict, from its settings' results as they are now."""
    record = StudyRecord.read(directory)
    entries = {}
    for setting in record.settings:
        path = Path(setting["directory"])
        if not path.is_absolute():
            path = directory / path if (directory / path / RESULTS).is_file() else path
        if (path / RESULTS).is_file():
            found = read_results(path / RESULTS)
            if isinstance(found, ComparisonSummary):
                entries[setting["name"]] = found
    missing = [s["name"] for s in record.settings if s["name"] not in entries]
    head = [f"study {record.name} ({directory}): {len(entries)} of {len(record.settings)} settings finished, arms "
            f"{', '.join(record.arms)} (reference {record.reference})"]
    if missing:
        head.append(f"not finished yet: {', '.join(missing)} (continue with spinalnet study ... --resume)")
    if len(entries) < 1:
        return "\n".join(head)
    return "\n".join([*head, *verdict_lines(entries, record.arms, record.reference)])


def pooled_report(paths: list[Path]) -> str:
    """Comparison directories pooled: every contrast of their common reference against the arms they all have."""
    entries: dict[str, ComparisonSummary] = {}
    for path in paths:
        file = path / RESULTS if path.is_dir() else path
        if not file.is_file():
            raise UsageError(f"{path}: no {RESULTS}; --pool reads finished comparisons")
        found = read_results(file)
        if not isinstance(found, ComparisonSummary):
            raise UsageError(f"{path}: a regression study cannot be pooled with comparisons of heads")
        name = (path if path.is_dir() else path.parent).name
        entries[name if name not in entries else str(path)] = found
    references = {s.reference for s in entries.values()}
    if len(references) != 1:
        raise UsageError(f"--pool needs comparisons against one reference arm; these use {', '.join(sorted(references))}")
    reference = references.pop()
    arms = [a for a in next(iter(entries.values())).arms if all(a in s.arms for s in entries.values())]
    if len(arms) < 2:
        raise UsageError("--pool needs arms the comparisons share besides their reference")
    return "\n".join([f"{len(entries)} comparisons pooled (arms they share: {', '.join(arms)}; reference {reference})",
                      *verdict_lines(entries, arms, reference)])
