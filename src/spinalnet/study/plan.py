"""What a study will do, decided before anything is written: its directory, each setting's comparison (its checked
config, or the finished comparison a ``from:`` setting pools), the study's whole grid of runs and this shard's share
of it, and what a resumed or sharded study must agree with."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spinalnet.comparison.config import CompareConfig
from spinalnet.comparison.grid import GridRun, Shard, parse_shard, share
from spinalnet.comparison.results_file import RESULTS, ComparisonSummary, read_results
from spinalnet.errors import OptionError, UsageError
from spinalnet.rundir import RunDir, open_run_dir, timestamped
from spinalnet.study.config import StudyConfig
from spinalnet.study.record import SETTINGS, StudyRecord



@dataclass
class PlannedSetting:
    name: str
    kind: str                               # "compare", "experiment" or "from"
    directory: Path                         # its comparison directory (a from: setting's own)
    config: CompareConfig | None = None     # None for from:
    grid: list[GridRun] = field(default_factory=list)
    mine: set[GridRun] | None = None        # the runs this process trains (None: every run, no shard)
    experiment: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return (self.directory / RESULTS).is_file()

    def as_dict(self) -> dict[str, Any]:
        options = self.config.to_dict() if self.config is not None else None
        if options is not None:
            options = {k: v for k, v in options.items() if k not in ("output", "resume", "force", "shard", "jobs",
                                                                        "progress")}
        return {"name": self.name, "kind": self.kind, "directory": str(self.directory), "options": options,
                "experiment": (self.experiment or {}).get("name")}


@dataclass
class StudyPlan:
    study: StudyConfig
    directory: RunDir
    shard: Shard | None
    settings: list[PlannedSetting]
    arms: list[str]
    reference: str
    recorded: StudyRecord | None = None

    @property
    def fresh(self) -> list[PlannedSetting]:
        return [s for s in self.settings if s.kind != "from"]

    def record(self) -> StudyRecord:
        recorded = self.recorded
        home = self.directory.path.resolve()
        settings = [_portable(s.as_dict(), home) for s in self.settings]
        if recorded is not None:  # a resumed study keeps what it had, with what was added
            names = {s["name"] for s in settings}
            settings = [s for s in recorded.settings if s["name"] not in names] + settings
        return StudyRecord.new(self.study.name, self.study.as_dict(), settings, self.arms, self.reference,
                               self.study.seeds, self.shard[1] if self.shard else (recorded.shards if recorded else None))


def _portable(setting: dict[str, Any], home: Path) -> dict[str, Any]:
    """A setting's record with its directory relative to the study's (settings/NAME, ../some-comparison), so that a
    study moved or committed together with its from: comparisons keeps its links; a from: setting also keeps the
    absolute path it was read from, for a study moved away from it."""
    absolute = setting["directory"]
    try:
        relative = os.path.relpath(absolute, home)
    except ValueError:  # another drive (Windows): no relative path exists
        return setting
    return {**setting, "directory": relative, **({"source": absolute} if setting["kind"] == "from" else {})}


def make_study_plan(study: StudyConfig, output: str | None, *, resume: bool = False, force: bool = False,
                    shard: str | None = None, jobs: int = 1, dry_run: bool = False) -> StudyPlan:
    """Check every setting and decide the study's runs; writes nothing (``dry_run``: named weights stay named,
    not converted into the cache)."""
    parsed = parse_shard(shard)
    directory = open_run_dir(output, "study", lambda: timestamped("runs", "study", study.name), resume=resume,
                             force=force, shared=parsed is not None)
    recorded = StudyRecord.read(directory.path) if directory.resume else None
    settings = [_plan_setting(study, s, directory, jobs, dry_run) for s in study.settings]
    arms, reference = _arms(study, settings)
    for planned in settings:
        if planned.kind == "from":
            _check_source(planned, arms, reference)
    if recorded is not None and not dry_run:  # a dry run of a resumed study leaves its named weights unresolved
        _check_resumed(recorded, study, settings, arms, reference, parsed, directory.path)
    everything = [(s.name, run) for s in settings if s.kind != "from" for run in s.grid]
    if parsed is not None:
        if parsed[1] > len(everything):
            raise UsageError(f"--shard {parsed[0]}/{parsed[1]}: this study has {len(everything)} runs to train, so at "
                             f"most {len(everything)} shards")
        mine = share(everything, parsed)
        for s in settings:
            s.mine = {run for name, run in mine if name == s.name}
    return StudyPlan(study, directory, parsed, settings, arms, reference, recorded)


def _plan_setting(study: StudyConfig, setting, directory: RunDir, jobs: int, dry_run: bool) -> PlannedSetting:
    where = directory.path.resolve() / SETTINGS / setting.name
    if setting.source is not None:
        return PlannedSetting(setting.name, "from", setting.source)
    options: dict[str, Any] = dict(study.shared)
    experiment = None
    if setting.experiment is not None:
        from spinalnet.comparison.experiments import get_experiment

        exp = get_experiment(setting.experiment)
        experiment = exp.meta
        options.update({k: v for k, v in exp.options.items() if k not in ("heads", "reference", "seeds", "tune")})
    options.update(setting.options)
    options.setdefault("seeds", study.seeds)
    options.update(heads=list(study.heads), reference=study.reference, tune=study.tune or {}, output=str(where),
                   jobs=jobs, resume=where.is_dir())
    try:
        config = CompareConfig.from_dict(options).validate(resolve_weights=not dry_run)
    except OptionError as err:
        raise UsageError(f"setting {setting.name}: {err.for_command_line().lstrip('-')}") from None
    except UsageError as err:
        raise UsageError(f"setting {setting.name}: {err}") from None
    from spinalnet.comparison.records import ComparisonRecord

    return PlannedSetting(setting.name, setting.kind, where, config, ComparisonRecord.of(config, None).grid(),
                          experiment=experiment)


def _arms(study: StudyConfig, settings: list[PlannedSetting]) -> tuple[list[str], str]:
    fresh = [s.config for s in settings if s.config is not None]
    if fresh:
        return list(fresh[0].heads), fresh[0].reference
    reference = study.reference or ("spinal" if "spinal" in study.heads else study.heads[-1])
    return list(study.heads), reference


def _check_source(planned: PlannedSetting, arms: list[str], reference: str) -> None:
    """A from: setting is a finished comparison of the study's arms against its reference."""
    where = f"setting {planned.name}: from: {planned.directory}"
    if not (planned.directory / RESULTS).is_file():
        raise UsageError(f"{where} is not a finished comparison (it has no {RESULTS})")
    summary = read_results(planned.directory / RESULTS)
    if not isinstance(summary, ComparisonSummary):
        raise UsageError(f"{where} holds a regression study, not a comparison of heads")
    missing = [arm for arm in arms if arm not in summary.arms]
    if missing:
        raise UsageError(f"{where} lacks the study's arm(s) {', '.join(missing)} (it has {', '.join(summary.arms)}); "
                         f"add them with spinalnet compare ... --output {planned.directory} --resume --heads "
                         f"{','.join([*summary.arms, *missing])}, or leave the setting out")
    if summary.reference != reference:
        raise UsageError(f"{where} compares its arms with {summary.reference}, the study with {reference}")


def _check_resumed(recorded: StudyRecord, study: StudyConfig, settings: list[PlannedSetting], arms: list[str],
                   reference: str, shard: Shard | None, out: Path) -> None:
    """A resumed study (or another shard) may add settings and seeds, nothing else."""
    if (recorded.arms, recorded.reference) != (arms, reference):
        raise UsageError(f"cannot continue the study in {out}: it compares {', '.join(recorded.arms)} against "
                         f"{recorded.reference}, this config {', '.join(arms)} against {reference}; use another "
                         "--output")
    if study.seeds < recorded.seeds:
        raise UsageError(f"cannot continue the study in {out} with {study.seeds} seeds: it has {recorded.seeds} "
                         "(--resume continues a study with as many or more)")
    if shard is not None and recorded.shards not in (None, shard[1]):
        raise UsageError(f"cannot add shard {shard[0]}/{shard[1]} to the study in {out}: it is split into "
                         f"{recorded.shards} shards")
    current = {s.name: s.as_dict() for s in settings}
    for before in recorded.settings:
        now = current.get(before["name"])
        if now is None:
            raise UsageError(f"cannot continue the study in {out} without its setting {before['name']}: --resume "
                             "continues a study with the same or more settings (use another --output for fewer)")
        changed = _changed(before, now, shard is not None)
        if changed:
            raise UsageError(f"cannot continue the study in {out}: its setting {before['name']} was started with "
                             f"{changed}; a shard or a resumed study must have the settings it started with")


def _changed(before: dict[str, Any], now: dict[str, Any], exact_seeds: bool) -> str | None:
    if before.get("kind") != now.get("kind"):
        return f"kind {before.get('kind')} (now {now.get('kind')})"
    old, new = before.get("options") or {}, now.get("options") or {}
    for key in sorted(set(old) | set(new)):
        if key == "seeds" and not exact_seeds and isinstance(old.get(key), int) and new.get(key, 0) >= old[key]:
            continue  # more seeds continue a study
        if old.get(key) != new.get(key):
            return f"{key}={old.get(key)!r} (this config: {new.get(key)!r})"
    return None
