"""Frozen-backbone features, computed once per split and cached on disk: image splits -> feature splits.

With ``--freeze-backbone`` and pretrained weights, every (head, seed) run of ``compare`` sees the same
backbone outputs, so the backbone runs once per split (in eval mode) instead of in every training step:
the linear-probe protocol of CLIP and DINOv2. The heads then train on the cached features through the
same engine, with the same seeds, splits, optimiser and results files.

An entry is keyed by everything its values depend on: the model, the SHA-256 of the backbone's weights,
the data (a fingerprint of its arrays, split seed and validation fraction), the input size, the
preprocessing and the augmented views. It is written atomically with its own checksum; an entry that
does not match its checksum is rebuilt.

The heads then train on the cached features together (:mod:`spinalnet.engine.batched`), or one by one
through the engine (``--no-batch-heads``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from spinalnet.data import DataSplits, ImageArrays
from spinalnet.data.arrays import FeatureArrays
from spinalnet.data.augment import epoch_draws
from spinalnet.data.input_spec import InputSpec
from spinalnet.errors import UsageError
from spinalnet.models.pretrained import backbone_record, weights_digest
from spinalnet.comparison.config import CompareConfig
from spinalnet.comparison.feature_record import FeatureCacheRecord
from spinalnet.engine.config import TrainConfig
from spinalnet.engine.module import Classifier, data_facts
from spinalnet.files import atomic_write, read_json, sha256_file, write_json

FORMAT = 1
EXTRACT_BATCH = 256
SPLITS = ("train", "val", "test")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/spinalnet/features``, else ``~/.cache/spinalnet/features``."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "spinalnet" / "features"


def cache_plan(config: CompareConfig) -> tuple[Path | None, str | None]:
    """The cache directory to use (None: run the backbone in every step) and why not, when it is not used."""
    if not config.freeze_backbone:
        return None, None
    if config.feature_cache == "off":
        return None, "--feature-cache off: the frozen backbone runs in every training step"
    if config.pretrained is None:
        return None, "no feature cache: a frozen backbone without --pretrained weights differs per seed"
    return Path(config.feature_cache).expanduser() if config.feature_cache else default_cache_dir(), None


def check_cache_dir(directory: Path) -> None:
    """An unusable --feature-cache is refused before the run directory is created."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--feature-cache {directory}: cannot create or write it ({err.strerror or err}); "
                         "give another directory, or --feature-cache off") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"--feature-cache {directory}: not writable; give another directory, or --feature-cache off")


def check_views(config: CompareConfig, splits: DataSplits) -> None:
    """Augmented views need an augmentation: checked before anything is written."""
    if config.feature_views and (config.augment or splits.augment) == "none":
        raise UsageError("--feature-views needs an augmentation (--augment ...); "
                         f"{config.dataset} has none by default")


# ---------------------------------------------------------------------------------------------- the key
def cache_key(config: TrainConfig, splits: DataSplits, weights: str, views: int,
              device: torch.device | None = None) -> tuple[str, dict[str, Any]]:
    """SHA-256 of everything the cached values depend on, and that description itself."""
    spec = InputSpec.from_dict(data_facts(splits, config)["input"])
    described = {
        "format": FORMAT, "model": config.model, "weights_sha256": weights, "dataset": config.dataset,
        "data_sha256": splits.fingerprint, "split_seed": config.split_seed,
        "val_fraction": config.val_fraction, "image_size": list(spec.model_size), "channels": spec.model_channels,
        "mean": list(spec.mean), "std": list(spec.std), "precision": config.precision,
        "augment": (config.augment or splits.augment) if views else "none", "views": views,
        "sizes": {name: len(getattr(splits, name)) for name in SPLITS},
    }
    if spec.crop != 1.0:  # entries made before the crop was recorded keep their keys
        described["crop"] = spec.crop
    if device is not None and device.type != "cpu":  # a GPU's kernels (TF32 convolutions) give other values;
        described["device"] = device.type             # CPU entries keep the keys they had
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:32], described


# ---------------------------------------------------------------------------------------------- extraction
@contextmanager
def head_inputs(module: Classifier) -> Iterator[list[Tensor]]:
    """Capture what the model's head module receives: the features, whatever the head is (fc or Spinal)."""
    captured: list[Tensor] = []
    head = module.model.get_submodule(module.model.head_path)
    handle = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach().clone()))
    try:
        yield captured
    finally:
        handle.remove()


def _batches(split, batch_size: int, num_workers: int) -> Iterator[tuple[Tensor, Tensor]]:
    """(stored images, their indices in the split), in order; files decoded by ``num_workers`` processes."""
    if isinstance(split, ImageArrays):
        for start in range(0, len(split), batch_size):
            yield split.images[start:start + batch_size], torch.arange(start, min(start + batch_size, len(split)))
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(split, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        generator=torch.Generator().manual_seed(0))  # the global generator is left alone
    for x, _, index in loader:
        yield x, index


def _progress(total: int, label: str, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="img", disable=not show, leave=False)


def extraction_device(config: CompareConfig) -> torch.device:
    """Where the backbone runs once over the data: the GPU when the comparison may use one and one is there
    (the heads then train on the CPU's copy of the features), else the CPU."""
    if config.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))  # a launcher's rank: its own GPU
    return torch.device("cpu")


def extract(module: Classifier, split, label: str, *, draws: Tensor | None = None, num_workers: int = 0,
            show_progress: bool = False) -> Tensor:
    """The head inputs for every sample of ``split`` (augmented by ``draws``, one row per sample, when given), on
    the CPU, computed on the device of ``module``'s parameters."""
    device = next(module.parameters()).device
    rows: list[Tensor] = []
    with torch.inference_mode(), head_inputs(module) as captured, \
            _progress(len(split), label, show_progress) as bar:
        for x, index in _batches(split, EXTRACT_BATCH, num_workers):
            x = x.to(device)  # uint8 images: the resize and the augmentation run where the backbone does
            module.model(module.model_inputs(x, None if draws is None else draws[index]))
            rows.append(captured.pop().cpu())
            bar.update(len(x))
    return torch.cat(rows)


def _train_views(module: Classifier, splits: DataSplits, config: CompareConfig, show: bool) -> Tensor:
    """``config.feature_views`` augmented passes over the training split, each drawn from its own seed."""
    views = []
    for k in range(config.feature_views):
        draws = epoch_draws(len(splits.train), config.split_seed * 1_000_003 + k)
        views.append(extract(module, splits.train, f"features train view {k + 1}/{config.feature_views}",
                             draws=draws, num_workers=config.num_workers, show_progress=show))
    return torch.stack(views)


def compute_features(config: CompareConfig, splits: DataSplits, module: Classifier, log: Callable[[str], None],
                     show: bool, device: torch.device | None = None) -> dict[str, Any]:
    """Run the frozen backbone over every split (eval mode) on ``device`` (default: the module's):
    {split: {"x", "y"}} on the CPU, plus train "views". The module ends where it was."""
    module.eval()
    home = next(module.parameters()).device
    device = device or home
    if device.type != "cpu":
        log(f"features: the backbone runs on {device}")
    try:
        module.to(device)
        return _compute_features(config, splits, module, log, show)
    finally:
        module.to(home)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the heads train on the CPU; leave the GPU to whoever comes next


def _compute_features(config: CompareConfig, splits: DataSplits, module: Classifier, log: Callable[[str], None],
                      show: bool) -> dict[str, Any]:
    features: dict[str, Any] = {}
    for name in SPLITS:
        split = getattr(splits, name)
        started = time.perf_counter()
        x = extract(module, split, f"features {name}", num_workers=config.num_workers, show_progress=show)
        labels = split.labels if isinstance(split, ImageArrays) else torch.as_tensor(split.labels, dtype=torch.int64)
        features[name] = {"x": x, "y": labels.clone()}
        log(f"features: {name} split, {len(x):,} images -> {tuple(x.shape[1:])} in {time.perf_counter() - started:.1f} s")
    if config.feature_views:
        started = time.perf_counter()
        features["train"]["views"] = _train_views(module, splits, config, show)
        log(f"features: {config.feature_views} augmented view(s) of the training split "
            f"in {time.perf_counter() - started:.1f} s")
    return features


# ---------------------------------------------------------------------------------------------- storage
class CorruptEntry(Exception):
    """A cache entry whose record cannot be read or whose data does not match its checksum."""


def load_entry(directory: Path, key: str) -> dict[str, Any] | None:
    """The cached features for ``key``; None when absent; :class:`CorruptEntry` for a damaged one (its data is
    checked against the record's checksum before it is read)."""
    data, meta = directory / f"{key}.pt", directory / f"{key}.json"
    if not meta.is_file() or not data.is_file():
        return None
    try:
        expected = read_json(meta).get("sha256")
    except (UsageError, AttributeError):
        expected = None
    if not isinstance(expected, str):
        raise CorruptEntry(f"{meta} is not a readable cache record")
    if sha256_file(data) != expected:
        raise CorruptEntry(f"{data} does not match its checksum")
    return torch.load(data, map_location="cpu", weights_only=True)


def save_entry(directory: Path, key: str, features: dict[str, Any], described: dict[str, Any]) -> None:
    """Data first, then its record with the checksum: a record always describes a whole data file."""
    data = directory / f"{key}.pt"
    atomic_write(data, lambda handle: torch.save(features, handle))
    write_json(directory / f"{key}.json", {**described, "sha256": sha256_file(data)})


# ---------------------------------------------------------------------------------------------- the entry point
def feature_splits(config: CompareConfig, splits: DataSplits, directory: Path, model: nn.Module,
                   log: Callable[[str], None] = print) -> tuple[DataSplits, FeatureCacheRecord]:
    """``splits`` as the frozen backbone's features (from the cache, or computed by ``model``, the comparison's
    one model, and stored), and a record for results.json: used, hit, extract_seconds, images, key."""
    check_views(config, splits)
    run = config.run_config(head=config.reference)
    module = Classifier(run, data_facts(splits, run), model=model)
    weights = weights_digest(module.model, module.model.head_path)
    device = extraction_device(config)
    key, described = cache_key(run, splits, weights, config.feature_views, device)
    show = sys.stderr.isatty() if config.progress is None else config.progress
    started = time.perf_counter()
    try:
        features = load_entry(directory, key)
    except CorruptEntry as err:  # a damaged or cut-off entry is rebuilt
        log(f"features: cache entry {key} is unusable ({err}); computing it again")
        features = None
    hit = features is not None
    if hit:
        log(f"features: reusing {directory / key}.pt")
    else:
        log(f"features: running {config.model} once per split (eval mode); cache {directory}")
        features = compute_features(config, splits, module, log, show, device)
        save_entry(directory, key, features, described)
    seconds = time.perf_counter() - started
    train = features["train"]
    feature_data = replace(
        splits, train=FeatureArrays(train["x"], train["y"], train.get("views")),
        val=FeatureArrays(features["val"]["x"], features["val"]["y"]),
        test=FeatureArrays(features["test"]["x"], features["test"]["y"]), augment="none",
        backbone=backbone_record(config.model, config.pretrained),  # its input: the checkpoint's InputSpec
        known_fingerprint=splits.fingerprint)  # the images' (checkpoints record what was seen)
    # backbone passes the cached values cover: every split once, plus the augmented training views
    images = sum(len(features[name]["x"]) for name in SPLITS) + config.feature_views * len(train["x"])
    record = FeatureCacheRecord(used=True, hit=hit, extract_seconds=0.0 if hit else round(seconds, 3),
                                load_seconds=round(seconds, 3) if hit else None, images=images, key=key,
                                directory=str(directory), device=described.get("device", "cpu"))
    return feature_data, record
