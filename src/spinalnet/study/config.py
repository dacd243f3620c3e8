"""A study's YAML, read into :class:`StudyConfig`: shared arms, reference, seeds, tuning and compare options, and a
list of settings, each one comparison (no framework import).

    name: offline
    heads: fc,linear,mlp,mlp2,spinal      # the study's arms (every setting compares these)
    reference: spinal
    seeds: 10
    epochs: 30                            # any compare option: shared by every setting ...
    settings:
      - name: lite0-fashion-mnist         # ... and a setting's own keys win over the shared ones
        model: timm:tf_efficientnet_lite0
        pretrained: efficientnet-lite0
        freeze_backbone: true
        dataset: fashion-mnist
      - name: fashion-vgg5
        experiment: fashion-mnist-vgg5    # a paper experiment (configs/paper), with overrides
        epochs: 2
      - name: default-cnn-8
        from: docs/results/fashion-mnist-default-cnn-arms-8epochs   # a finished comparison, pooled as it is

Names are checked with did-you-mean; unknown keys, two settings of one name and an empty list are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spinalnet.errors import UsageError, did_you_mean, unknown_name
from spinalnet.files import read_yaml

#: The study's own keys; every other top-level key is a compare option shared by the settings.
STUDY_KEYS = ("name", "description", "heads", "reference", "seeds", "tune", "settings")
#: A setting's own keys besides compare options.
SETTING_KEYS = ("name", "from", "experiment", "note")
#: Compare options decided by the study (its arms and reference: every setting must have the same contrasts) or by
#: its command line (where it writes, how it is spread), which a setting or the shared options may not set.
STUDY_DECIDES = ("heads", "reference", "output", "resume", "force", "shard", "jobs", "config")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass
class Setting:
    """One comparison of the study: a fresh one (``options``: its compare options, shared ones included), a paper
    experiment's (``experiment`` and overrides), or a finished comparison directory pooled as it is (``source``)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    experiment: str | None = None
    source: Path | None = None
    note: str = ""

    @property
    def kind(self) -> str:
        return "from" if self.source is not None else "experiment" if self.experiment else "compare"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "options": self.options, "experiment": self.experiment,
                "from": str(self.source) if self.source is not None else None, "note": self.note}


@dataclass
class StudyConfig:
    name: str
    heads: list[str]
    reference: str | None
    seeds: int
    tune: dict[str, Any]
    shared: dict[str, Any]
    settings: list[Setting]
    description: str = ""
    path: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "heads": self.heads, "reference": self.reference,
                "seeds": self.seeds, "tune": self.tune, "shared": self.shared,
                "settings": [s.as_dict() for s in self.settings]}


def _compare_fields() -> list[str]:
    from spinalnet.comparison.config import CompareConfig

    return [name for name in CompareConfig.__dataclass_fields__ if not name.startswith("_")]


def _key(key: Any) -> str:
    return str(key).replace("-", "_")


def read_study(path: Path) -> StudyConfig:
    """The study in ``path`` (YAML), checked: keys, names, arms; settings' options are checked when planned."""
    path = Path(path)
    data = {_key(k): v for k, v in read_yaml(path).items()}
    options = _compare_fields()
    for key in data:
        if key not in STUDY_KEYS and key not in options or key in STUDY_DECIDES and key not in STUDY_KEYS:
            known = [k for k in (*STUDY_KEYS, *options) if k not in STUDY_DECIDES or k in STUDY_KEYS]
            raise UsageError(f"{path}: unknown study key {key!r}{did_you_mean(key, known)}; a study has "
                             f"{', '.join(STUDY_KEYS)} and any compare option shared by its settings")
    from spinalnet.heads.spec import parse_arms, split_arms

    heads = [arm.name for arm in parse_arms(split_arms(data.get("heads", "fc,mlp,spinal")))]
    seeds = data.get("seeds", 3)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise UsageError(f"{path}: seeds must be a whole number >= 1, got {seeds!r}")
    raw = data.get("settings")
    if not isinstance(raw, list) or not raw:
        raise UsageError(f"{path}: settings must be a non-empty list of settings (each a mapping with a name)")
    shared = {k: v for k, v in data.items() if k not in STUDY_KEYS}
    settings = [_setting(item, i, path, options) for i, item in enumerate(raw)]
    names = [s.name for s in settings]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UsageError(f"{path}: two settings are named {repeated[0]!r}; every setting needs a name of its own")
    name = str(data.get("name") or path.stem)
    return StudyConfig(name, heads, data.get("reference"), seeds, data.get("tune") or {}, shared, settings,
                       str(data.get("description") or ""), path)


def _setting(item: Any, index: int, path: Path, options: list[str]) -> Setting:
    if not isinstance(item, dict):
        raise UsageError(f"{path}: setting {index + 1} must be a mapping of keys (name, model, dataset, ...), "
                         f"got {item!r}")
    item = {_key(k): v for k, v in item.items()}
    name = str(item.get("name") or "")
    where = f"{path}: setting {name or index + 1}"
    if not NAME.match(name):
        raise UsageError(f"{where}: needs a name of letters, digits and . _ + - (it names its directory), got "
                         f"{name!r}")
    for key in item:
        if key not in SETTING_KEYS and key not in options or key in STUDY_DECIDES:
            if key in STUDY_DECIDES:
                raise UsageError(f"{where}: {key} is the study's, not a setting's (every setting compares the "
                                 "study's arms against its reference; the command line decides where it writes)")
            raise unknown_name(f"key of {where}", key, [*SETTING_KEYS, *options])
    source = item.get("from")
    experiment = item.get("experiment")
    if source is not None and (experiment is not None or set(item) - {"name", "from", "note"}):
        raise UsageError(f"{where}: a from: setting pools a finished comparison as it is; it takes no other keys")
    own = {k: v for k, v in item.items() if k not in SETTING_KEYS}
    if experiment is not None:
        from spinalnet.comparison.experiments import get_experiment

        exp = get_experiment(str(experiment))
        if exp.kind != "compare":
            raise UsageError(f"{where}: experiment {experiment} is a {exp.kind} study, not a comparison of heads")
    return Setting(name, own, str(experiment) if experiment is not None else None,
                   _source(source, path, where) if source is not None else None, str(item.get("note") or ""))


def _source(value: Any, config: Path, where: str) -> Path:
    """A from: directory, relative to the current directory, else to the study's file."""
    for candidate in (Path(str(value)).expanduser(), config.parent / str(value)):
        if candidate.is_dir():
            return candidate.resolve()
    raise UsageError(f"{where}: from: {value} is not a directory (relative paths are read from the current "
                     f"directory, then from {config.parent})")
