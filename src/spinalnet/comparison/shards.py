"""The share of a comparison's grid that one ``--shard K/N`` trains.

Shards are separate processes, started by any scheduler (a SLURM job array, a Kubernetes indexed Job,
or one after the other), that all write into one ``--output``. Each trains the K-th of N consecutive
parts of the grid (seed by seed); whichever finds the whole grid finished writes the summary. ``K`` counts from
1, as in ``--array=1-N``. The grid's options are recorded in ``comparison.json``
(:mod:`spinalnet.comparison.records`), so a shard with other options is refused before it writes anything.
"""

from __future__ import annotations

import re
from typing import TypeVar

from spinalnet.errors import UsageError

T = TypeVar("T")
Shard = tuple[int, int]


def parse_shard(text: str | None) -> Shard | None:
    """``"2/4"`` -> ``(2, 4)``: the second of four shares; None when not sharded."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise UsageError(f"--shard must be K/N with 1 <= K <= N (e.g. 1/4 for the first of four shares), "
                         f"got {text!r}")
    return int(match[1]), int(match[2])


def check_shards(shard: Shard | None, runs: int) -> None:
    if shard is not None and shard[1] > runs:
        raise UsageError(f"--shard {shard[0]}/{shard[1]}: this comparison has {runs} runs (heads x tuning values x "
                         f"--seeds), so at most {runs} shards; some shards would have nothing to train")


def share(runs: list[T], shard: Shard | None) -> list[T]:
    """The runs shard ``(k, n)`` trains: the k-th of n consecutive, nearly equal parts of the grid, so a
    seed's runs mostly go to one shard (and each shard gets every arm's costs); all when not sharded."""
    if shard is None:
        return list(runs)
    k, n = shard
    return runs[(k - 1) * len(runs) // n:k * len(runs) // n]
