"""The paper's experiments as configs (``configs/paper/*.yaml``): their options, paper numbers and costs."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from spinalnet.errors import UsageError, unknown_name
from spinalnet.files import read_yaml


@dataclass
class Experiment:
    name: str
    title: str
    kind: str                     # "compare" or "regress"
    paper: dict[str, Any]
    changes: list[str]            # each way the config differs from the authors' script
    cpu_hours: float | None       # estimate for the full config on 2 CPU cores
    options: dict[str, Any]

    @property
    def meta(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "paper": self.paper, "changes": self.changes}


def config_dir() -> Path:
    return Path(str(resources.files("spinalnet") / "configs" / "paper"))


def load_experiment(path: Path) -> Experiment:
    data = read_yaml(path)
    meta = data.pop("experiment", None)
    if not isinstance(meta, dict):
        raise UsageError(f"{path}: missing the experiment: block")
    changes = meta.get("changes") or []
    return Experiment(path.stem, meta.get("title", path.stem), meta.get("kind", "compare"), meta.get("paper") or {},
                      [changes] if isinstance(changes, str) else list(changes), meta.get("cpu_hours"), data)


def experiments() -> dict[str, Experiment]:
    return {p.stem: load_experiment(p) for p in sorted(config_dir().glob("*.yaml"))}


def get_experiment(name: str) -> Experiment:
    known = experiments()
    if name not in known:
        raise unknown_name("experiment", name, known)
    return known[name]


def format_list(items: dict[str, Experiment]) -> str:
    lines = [f"{'name':<34}{'seeds x epochs':>15}{'est. CPU h':>11}   title"]
    for name, exp in items.items():
        o = exp.options
        hours = "-" if exp.cpu_hours is None else f"{exp.cpu_hours:,.1f}"
        lines.append(f"{name:<34}{str(o.get('seeds', '-')) + ' x ' + str(o.get('epochs', '-')):>15}{hours:>11}   {exp.title}")
    lines.append("estimated CPU hours: 2 CPU cores, every arm of the config, all seeds, from measured throughput or FLOPs "
                 "(docs/BENCHMARKS.md); scale down with --epochs and --seeds")
    return "\n".join(lines)
