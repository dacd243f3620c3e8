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
        path = StudyRecord.setting_directory(directory, setting)
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
        twin = next((other for other, summary in entries.items() if _same_runs(summary, found)), None)
        if twin is not None:
            raise UsageError(f"{path} holds the same runs as {twin} (a copy, or a comparison and its resumed copy): "
                             "pooling them twice would count one setting as two; give each comparison once")
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


def _same_runs(a: ComparisonSummary, b: ComparisonSummary) -> bool:
    """Whether two comparisons share their runs: the same data, model and reference, and every arm they both have
    with the same test accuracy, to the last digit, on every seed they both ran (a copy, or a comparison and its
    copy that was later given more arms or seeds; two independent settings never agree on every run)."""
    if (a.dataset, a.model, a.reference) != (b.dataset, b.model, b.reference):
        return False
    shared = [arm for arm in a.arms if arm in b.arms]
    if len(shared) < 2:
        return False
    pairs = []
    for arm in shared:
        theirs = dict(zip(b.arms[arm].seeds, b.arms[arm].test_acc))
        pairs += [(acc, theirs[seed]) for seed, acc in zip(a.arms[arm].seeds, a.arms[arm].test_acc) if seed in theirs]
    return bool(pairs) and all(x == y for x, y in pairs)
