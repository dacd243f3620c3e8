"""The studies that ship with spinalnet (``configs/study/*.yaml``), by name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from spinalnet.errors import UsageError, unknown_name
from spinalnet.files import read_yaml


def study_dir() -> Path:
    return Path(str(resources.files("spinalnet") / "configs" / "study"))


def shipped() -> dict[str, Path]:
    return {p.stem: p for p in sorted(study_dir().glob("*.yaml"))}


def study_path(name_or_path: str) -> Path:
    """A YAML file, or the shipped study of that name."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise UsageError(f"{path} is a directory; give a study's YAML file")
    known = shipped()
    if name_or_path in known:
        return known[name_or_path]
    if path.suffix in (".yaml", ".yml"):
        raise UsageError(f"study file {path} does not exist")
    raise unknown_name("study", name_or_path, known)


def format_list() -> str:
    lines = [f"{'name':<18}{'settings':>9}  description"]
    for name, path in shipped().items():
        data = read_yaml(path)
        description = " ".join(str(data.get("description") or "").split())
        short = description if len(description) <= 90 else description[:87].rsplit(" ", 1)[0] + " ..."
        lines.append(f"{name:<18}{len(data.get('settings') or []):>9}  {short}")
    return "\n".join(lines)
