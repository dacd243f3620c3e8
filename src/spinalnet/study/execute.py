"""A planned study, carried out: its record, each setting's comparison in turn (through the comparison package: the
same runs, files, feature cache and deploy check as ``compare``), and the pooled summary once every setting is
finished (by whichever shard finishes last). A setting that fails stops the study with one line naming it; the
finished settings stay, and ``--resume`` continues."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from spinalnet.comparison.compare import compare
from spinalnet.comparison.records import locked
from spinalnet.comparison.results_file import RESULTS, ComparisonSummary, read_results
from spinalnet.errors import OptionError, ReproductionError, Resumable, TrainingError, UsageError
from spinalnet.study.plan import StudyPlan
from spinalnet.study.record import StudyRecord
from spinalnet.study.summary import write_study_summary


@dataclass(frozen=True)
class StudyProgress:
    """What a shard returns while other settings' runs are still to be trained."""

    finished_settings: int
    settings: int


class SettingFailed(UsageError, Resumable):
    """A setting's comparison refused its input (exit 2); the study continues with ``--resume``."""

    def __init__(self, message: str, directory) -> None:
        super().__init__(message)
        self.directory = directory


class SettingStopped(TrainingError, Resumable):
    """A setting's training could not go on (a NaN loss, a worker that died: exit 1); ``--resume`` continues."""

    def __init__(self, message: str, directory) -> None:
        super().__init__(message)
        self.directory = directory


def run_study(plan: StudyPlan, log: Callable[[str], None] = print) -> StudyRecord | StudyProgress:
    out = plan.directory.create()
    with locked(out):  # shards starting together record the study once
        existing = StudyRecord.read(out)
        record = plan.record() if existing is None or plan.shard is None else existing
        if existing is None or plan.shard is None:
            record.write(out)
    log(f"study directory: {out}")
    log(f"study {plan.study.name}: {len(plan.settings)} settings ({len(plan.fresh)} to compare, "
        f"{len(plan.settings) - len(plan.fresh)} pooled from finished comparisons), arms {', '.join(plan.arms)} "
        f"(reference {plan.reference}), {plan.study.seeds} seeds")
    for index, setting in enumerate(plan.settings, 1):
        if setting.kind == "from":
            log(f"== setting {index}/{len(plan.settings)} {setting.name}: pooled from {setting.directory}")
            continue
        if setting.mine is not None and not setting.mine:
            continue  # none of its runs is this shard's
        log(f"== setting {index}/{len(plan.settings)} {setting.name}: {setting.config.model} on "
            f"{setting.config.dataset}, {len(setting.grid)} runs")
        config = replace(setting.config, resume=setting.directory.is_dir())
        try:
            compare(config, log=log, experiment=setting.experiment, only=setting.mine)
        except OptionError as err:
            raise SettingFailed(f"setting {setting.name}: {err.for_command_line()}", out) from None
        except UsageError as err:
            raise SettingFailed(f"setting {setting.name}: {err} (the finished settings are kept)", out) from None
        except ReproductionError:
            raise  # a bug of ours, named as one (its message names the run, inside the setting's directory)
        except TrainingError as err:
            raise SettingStopped(f"setting {setting.name}: {err} (the finished settings are kept)", out) from None
    entries = finished_entries(plan)
    if len(entries) < len(plan.settings):
        log(f"{len(entries)} of the {len(plan.settings)} settings are finished; the last shard to finish writes the "
            "study's summary (or spinalnet study ... --resume once every shard is done)")
        return StudyProgress(len(entries), len(plan.settings))
    with locked(out):
        record = StudyRecord.read(out) or record
        return write_study_summary(out, record, entries, log)


def finished_entries(plan: StudyPlan) -> dict[str, ComparisonSummary]:
    """The comparisons of the settings that are finished, in the study's order."""
    found = {}
    for setting in plan.settings:
        if (setting.directory / RESULTS).is_file():
            summary = read_results(setting.directory / RESULTS)
            if isinstance(summary, ComparisonSummary):
                found[setting.name] = summary
    return found
