"""A comparison's grid of (head, seed) runs, and the share of it that one ``--shard K/N`` trains.

Shards are separate processes, started by any scheduler (a SLURM job array, a Kubernetes indexed Job,
or one after the other), that all write into one ``--output``. Each trains the K-th of N consecutive
parts of the grid (seed by seed); whichever finds the whole grid finished writes the summary. ``K`` counts from
1, as in ``--array=1-N``.

The grid's options are recorded in ``comparison.json`` when the directory is created, so a shard (or a
``--resume``) with other options is refused before it writes anything.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from spinalnet.engine.config import TrainConfig, result_options
from spinalnet.errors import UsageError
from spinalnet.files import create_json_once, read_json, write_json

RECORD = "comparison.json"
#: Options every shard of one comparison must share beyond those that change a run's result:
#: they decide which runs make up the grid (and the last epoch of each).
GRID_OPTIONS = ("seeds", "epochs", "feature_views")

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


def grid(heads: tuple[str, ...], first_seed: int, seeds: int) -> list[tuple[str, int]]:
    """Every (head, seed) run of a comparison, seed by seed."""
    return [(head, seed) for seed in range(first_seed, first_seed + seeds) for head in heads]


def check_shards(shard: Shard | None, runs: int) -> None:
    if shard is not None and shard[1] > runs:
        raise UsageError(f"--shard {shard[0]}/{shard[1]}: this comparison has {runs} runs (2 heads x --seeds), so "
                         f"at most {runs} shards; some shards would have nothing to train")


def share(runs: list[tuple[str, int]], shard: Shard | None) -> list[tuple[str, int]]:
    """The runs shard ``(k, n)`` trains: the k-th of n consecutive, nearly equal parts of the grid, so a
    seed's fc and Spinal runs mostly go to one shard (and each shard gets both heads' costs); all when
    not sharded."""
    if shard is None:
        return list(runs)
    k, n = shard
    return runs[(k - 1) * len(runs) // n:k * len(runs) // n]


def grid_options(config: Any) -> dict[str, Any]:
    """The options recorded for the directory: those that change a run's result, and the grid's own."""
    values = config.to_dict()
    return {key: values[key] for key in (*result_options(TrainConfig), *GRID_OPTIONS)}


def read_record(out: Path) -> dict[str, Any] | None:
    """The comparison's record in ``out``: None if it has none; one line if it is not one spinalnet wrote."""
    record = Path(out) / RECORD
    if not record.is_file():
        return None
    data = read_json(record)
    if not isinstance(data, dict) or not isinstance(data.get("options"), dict):
        raise UsageError(f"{record}: not a comparison record written by spinalnet (expected an object with "
                         "'options'); restore it or move it away, then run again")
    return data


def check_grid(out: Path, config: Any, shard: Shard | None) -> dict[str, Any] | None:
    """Refuse to add runs with other options to the comparison in ``out``; a shard must also have its grid
    and the same number of shards (another split would leave runs that no shard trains).

    A plain ``--resume`` may extend the grid (more seeds or epochs), so it is held to the run options only.
    Returns the record (None if there is none), for :func:`record_grid`.
    """
    data = read_record(out)
    if data is None:
        return None  # a new directory, or one written before comparisons were recorded (each run is checked alone)
    sharded = shard is not None
    saved, current = data["options"], grid_options(config)
    if sharded and data.get("shards") not in (None, shard[1]):
        raise UsageError(f"cannot add shard {shard[0]}/{shard[1]} to the comparison in {out}: it is split into "
                         f"{data['shards']} shards; use K/{data['shards']}, or another --output")
    keys = current if sharded else [k for k in current if k not in GRID_OPTIONS]
    for key in keys:
        if key in saved and saved[key] != current[key]:
            if sharded:
                raise UsageError(f"cannot add this shard to the comparison in {out}: it was started with "
                                 f"{key}={saved[key]!r}, this shard has {key}={current[key]!r}; every shard needs "
                                 "the same options (or use another --output)")
            raise UsageError(f"cannot resume {out}: it was trained with {key}={saved[key]!r}, this run has "
                             f"{key}={current[key]!r}; use another --output or --force")
    return data


def record_grid(out: Path, config: Any, shard: Shard | None, experiment: dict[str, Any] | None = None,
                recorded: dict[str, Any] | None = None) -> None:
    """Record the comparison's options, its number of shards and the paper experiment it runs, once; a
    concurrent shard that recorded first is checked instead. A plain run (or ``--resume``, which may extend
    the grid) replaces the record and keeps its number of shards. ``recorded``: the record
    :func:`check_grid` returned (None when there was none).
    """
    data = {"options": grid_options(config), "shards": shard[1] if shard else None, "experiment": experiment}
    if shard is not None:
        if recorded is None and create_json_once(Path(out) / RECORD, data):
            return
        if recorded is None:  # another shard recorded it since check_grid: check against that one
            recorded = check_grid(out, config, shard)
        if recorded.get("shards") is None:  # started unsharded: from now on, shards must agree on N
            write_json(Path(out) / RECORD, {**recorded, "shards": shard[1]})
    else:
        write_json(Path(out) / RECORD, {**data, "shards": (recorded or {}).get("shards")})
