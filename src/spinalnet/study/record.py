"""``study.json``, :class:`StudyRecord`: what a study directory holds, written here only (no framework import).

Written when the study starts (its config, its settings and where each lives, its arms, reference and seeds, the
number of shards) and again by its summary, which adds every setting's arms and contrasts and every pooled figure.
``--resume`` and every shard check themselves against it.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from spinalnet.files import read_record, write_record

RECORD = "study.json"
FORMAT = 1
#: The folder of a study directory that holds one comparison directory per setting it ran
SETTINGS = "settings"


@dataclass
class StudyRecord:
    name: str
    config: dict[str, Any]                 # the study as read (StudyConfig.as_dict)
    settings: list[dict[str, Any]]         # per setting: name, kind, directory, options (as planned)
    arms: list[str]
    reference: str
    seeds: int
    shards: int | None = None
    command: str = ""
    created: str = ""
    finished: str | None = None
    summary: dict[str, Any] | None = None  # the pooled verdict (spinalnet.study.summary), once every setting is done
    versions: dict[str, Any] | None = None
    hardware: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, name: str, config: dict[str, Any], settings: list[dict[str, Any]], arms: list[str], reference: str,
            seeds: int, shards: int | None) -> "StudyRecord":
        return cls(name, config, settings, arms, reference, seeds, shards, " ".join(sys.argv),
                   datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def setting(self, name: str) -> dict[str, Any] | None:
        return next((s for s in self.settings if s["name"] == name), None)

    @staticmethod
    def setting_directory(study: Path, setting: dict[str, Any]) -> Path:
        """Where ``setting`` (an entry of :attr:`settings`) keeps its comparison: a setting the study ran, inside the
        study directory wherever that is now (moved or copied); a ``from:`` setting, where it was named: relative to
        the study's directory when it is still there, else the absolute path it was read from."""
        if setting.get("kind") != "from":
            return Path(study) / SETTINGS / setting["name"]
        beside = Path(study) / setting["directory"]  # an absolute path (older records) stays itself
        return beside if beside.is_dir() or not setting.get("source") else Path(setting["source"])

    def write(self, out: Path) -> None:
        write_record(Path(out) / RECORD, asdict(self), FORMAT)

    @classmethod
    def read(cls, out: Path) -> "StudyRecord | None":
        path = Path(out) / RECORD
        if not path.is_file():
            return None
        data = read_record(path, "a study record", FORMAT, {}, required=("name", "settings", "arms", "seeds"),
                           types={"settings": list, "arms": list, "seeds": int})
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
