"""The paper's experiments as configs: list them, run one through compare (or regress), scaled down if asked."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from spinalnet.errors import UsageError, unknown_name
from spinalnet.training.config import read_yaml


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
    lines.append("estimated CPU hours: 2 CPU cores, both heads, all seeds, from measured throughput or FLOPs "
                 "(docs/BENCHMARKS.md); scale down with --epochs and --seeds")
    return "\n".join(lines)


#: reproduce options that only experiments run through compare take.
COMPARE_ONLY = ("data_dir", "download", "accelerator", "devices", "num_nodes", "jobs", "shard", "resume")


def reproduce(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Run experiment ``name``; ``overrides`` (epochs, seeds, output, data_dir, ...) win over the config."""
    from spinalnet.rundir import timestamped

    exp = get_experiment(name)
    options = {**exp.options, **{k: v for k, v in overrides.items() if v is not None}}
    if not options.get("resume") and not options.get("shard"):  # shards must name the directory they share
        options.setdefault("output", str(timestamped("runs/paper", name)))
    if exp.kind == "regress":
        from spinalnet.regression import regress
        from spinalnet.training.config import RegressConfig

        unused = [k for k in COMPARE_ONLY if overrides.get(k) is not None]
        if unused:
            raise UsageError(f"{name} runs spinalnet regress (synthetic data, CPU), which takes no "
                             f"{', '.join('--' + k.replace('_', '-') for k in unused)}; it takes --epochs, --seeds, "
                             "--limit-batches, --output and --force")

        return regress(RegressConfig.from_dict(options).validate(), experiment=exp.meta)
    from spinalnet.compare import compare
    from spinalnet.training.config import CompareConfig

    return compare(CompareConfig.from_dict(options).validate(), experiment=exp.meta)
