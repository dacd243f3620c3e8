"""A comparison's grid of (head, seed) runs, and the share of it that one ``--shard K/N`` trains.

Shards are separate processes, started by any scheduler (a SLURM job array, a Kubernetes indexed Job,
or one after the other), that all write into one ``--output``. Each trains every N-th run of the grid,
starting with the K-th; whichever finds the whole grid finished writes the summary. ``K`` counts from
1, as in ``--array=1-N``.

The grid's options are recorded in ``comparison.json`` when the directory is created, so a shard (or a
``--resume``) with other options is refused before it writes anything.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from spinalnet.errors import UsageError
from spinalnet.rundir import create_json_once, read_json, write_json

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


def share(runs: list[tuple[str, int]], shard: Shard | None) -> list[tuple[str, int]]:
    """The runs shard ``(k, n)`` trains: every n-th, from the k-th; all of them when not sharded."""
    if shard is None:
        return list(runs)
    k, n = shard
    return runs[k - 1::n]


def grid_options(config: Any) -> dict[str, Any]:
    """The options recorded for the directory: those that change a run's result, and the grid's own."""
    from spinalnet.training.config import TrainConfig, result_options

    values = config.to_dict()
    return {key: values[key] for key in (*result_options(TrainConfig), *GRID_OPTIONS)}


def check_grid(out: Path, config: Any, sharded: bool) -> None:
    """Refuse to add runs with other options to the comparison in ``out``; a shard must also have its grid.

    A plain ``--resume`` may extend the grid (more seeds or epochs), so it is held to the run options only.
    """
    record = Path(out) / RECORD
    if not record.is_file():
        return  # a new directory, or one written before comparisons were recorded (each run is checked alone)
    saved = read_json(record)["options"]
    current = grid_options(config)
    keys = current if sharded else [k for k in current if k not in GRID_OPTIONS]
    for key in keys:
        if key in saved and saved[key] != current[key]:
            if sharded:
                raise UsageError(f"cannot add this shard to the comparison in {out}: it was started with "
                                 f"{key}={saved[key]!r}, this shard has {key}={current[key]!r}; every shard needs "
                                 "the same options (or use another --output)")
            raise UsageError(f"cannot resume {out}: it was trained with {key}={saved[key]!r}, this run has "
                             f"{key}={current[key]!r}; use another --output or --force")


def record_grid(out: Path, config: Any, sharded: bool, experiment: dict[str, Any] | None = None) -> None:
    """Record the comparison's options (and the paper experiment it runs) once; a concurrent shard that
    recorded first is checked instead. A plain run (or ``--resume``, which may extend the grid) replaces it.
    """
    data = {"options": grid_options(config), "experiment": experiment}
    if sharded:
        if not create_json_once(Path(out) / RECORD, data):
            check_grid(out, config, sharded=True)
    else:
        write_json(Path(out) / RECORD, data)
