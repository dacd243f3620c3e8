"""``feature_cache.json`` in a comparison directory, :class:`FeatureCacheRecord`: how the process that trained its
runs got the frozen backbone's features (no framework import). Written by :mod:`spinalnet.comparison.execute`
through :meth:`FeatureCacheRecord.write`, read by the summary into ``results.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from spinalnet.files import read_record, write_record

RECORD = "feature_cache.json"
FORMAT = 1


@dataclass
class FeatureCacheRecord:
    """``used``: the heads trained on cached features; ``hit``: they were in the cache already; ``extract_seconds``
    (0 on a hit) or ``load_seconds``; ``images``: backbone passes the cached values cover; ``key``, ``directory``
    and ``device`` of the cache entry."""

    used: bool = False
    hit: bool = False
    extract_seconds: float | None = None
    load_seconds: float | None = None
    images: int | None = None
    key: str | None = None
    directory: str | None = None
    device: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, out: Path) -> None:
        write_record(Path(out) / RECORD, self.as_dict(), FORMAT)

    @classmethod
    def read(cls, out: Path) -> "FeatureCacheRecord | None":
        path = Path(out) / RECORD
        if not path.is_file():
            return None
        data = read_record(path, "a feature-cache record", FORMAT, {})
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})
