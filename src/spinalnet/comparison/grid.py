"""A comparison's grid: every (arm, tuning value, seed) run, and where each one lives (no framework import).

Runs are listed seed by seed, and within a seed by tuning value and arm, so that the consecutive shares of
``--shard`` give each shard whole seeds where they can. A shard (``--shard K/N``: the K-th of N consecutive parts,
K from 1 as in ``--array=1-N``) is a separate process writing into the ``--output`` every shard shares; its grid's
options are recorded in ``comparison.json``, so a shard with other options is refused before it writes anything. Without ``--tune`` a run lives in
``runs/<arm>-seed<N>``; with it, in ``runs/<arm>-<option>=<value>-seed<N>``.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from spinalnet.errors import OptionError, UsageError, unknown_name
from spinalnet.heads.spec import ArmSpec, format_value

Point = tuple[tuple[str, Any], ...]  # tuning values of one run: ((option, value), ...); () without --tune
#: Options that may be tuned: numbers that change how a run trains, not its data, split or head (a head's sizes
#: are compared as arms of their own: ``--heads spinal:layer_width=16,spinal:layer_width=64``).
TUNABLE = ("lr", "momentum", "weight_decay", "label_smoothing", "batch_size", "epochs", "step_size", "gamma",
           "restart_exponent")
MAX_TUNE_OPTIONS = 2
MAX_GRID_POINTS = 100


@dataclass(frozen=True)
class GridRun:
    arm: str
    point: Point
    seed: int

    def label(self) -> str:
        """``[mlp lr=0.01 seed 3]``-style name of the run, for its log lines."""
        point = " ".join(f"{k}={format_value(v)}" for k, v in self.point)
        return f"{self.arm}{' ' + point if point else ''} seed {self.seed}"


def point_slug(point: Point) -> str:
    return ",".join(f"{k}={format_value(v)}" for k, v in point)


def run_path(out: Path, run: GridRun) -> Path:
    """Where a comparison keeps run ``run``: ``runs/<arm>-seed<N>``, the arm's name as a path component
    (:attr:`ArmSpec.slug <spinalnet.heads.spec.ArmSpec.slug>`)."""
    middle = f"-{point_slug(run.point)}" if run.point else ""
    return Path(out) / "runs" / f"{ArmSpec(run.arm.partition(':')[0], text=run.arm).slug}{middle}-seed{run.seed}"


def points(tune: dict[str, list[Any]]) -> list[Point]:
    """Every combination of the tuning values (one empty point without tuning)."""
    keys = list(tune)
    return [tuple(zip(keys, values)) for values in itertools.product(*(tune[k] for k in keys))]


def grid(arms: list[str], tune: dict[str, list[Any]], first_seed: int, seeds: int) -> list[GridRun]:
    return [GridRun(arm, point, seed) for seed in range(first_seed, first_seed + seeds)
            for point in points(tune) for arm in arms]


def parse_tune(text: str) -> dict[str, list[float]]:
    """``"lr=0.003,0.01,weight_decay=0,1e-4"`` -> ``{"lr": [0.003, 0.01], "weight_decay": [0.0, 0.0001]}``: an item
    with ``=`` starts an option, the items after it are more of its values."""
    tune: dict[str, list[Any]] = {}
    key = None
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if "=" in item:
            key, _, item = (piece.strip() for piece in item.partition("="))
            key = key.replace("-", "_")
            if key in tune:
                raise UsageError(f"--tune names {key} twice")
            tune[key] = []
        if key is None:
            raise UsageError(f"--tune must be OPTION=V1,V2,... (e.g. lr=0.003,0.01,0.03), got {text!r}")
        try:
            value = float(item)
        except ValueError:
            raise OptionError("tune", f"values must be numbers, got {item!r} for {key}") from None
        tune[key].append(value)
    return tune


def check_tune(tune: dict[str, list[Any]], whole: set[str]) -> dict[str, list[Any]]:
    """One or two tunable options, each with distinct values, a grid of at most :data:`MAX_GRID_POINTS`; the
    values of options that take whole numbers (``whole``) as ints."""
    checked: dict[str, list[Any]] = {}
    for key, values in tune.items():
        if key not in TUNABLE:
            raise unknown_name("option to tune", key, TUNABLE)
        if not values:
            raise UsageError(f"--tune {key}= needs at least one value")
        if len(set(values)) != len(values):
            raise UsageError(f"--tune {key} repeats a value: {', '.join(map(format_value, values))}")
        if key in whole:
            if any(not float(v).is_integer() for v in values):
                raise OptionError("tune", f"{key} takes whole numbers, got {', '.join(map(format_value, values))}")
            values = [int(v) for v in values]
        checked[key] = [v if key in whole else float(v) for v in values]
    if len(checked) > MAX_TUNE_OPTIONS:
        raise UsageError(f"--tune takes one or two options, got {len(checked)}: {', '.join(checked)}")
    size = math.prod(len(v) for v in checked.values())
    if size > MAX_GRID_POINTS:
        raise UsageError(f"--tune makes {size} combinations, more than {MAX_GRID_POINTS}")
    return checked


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
