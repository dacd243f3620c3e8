"""Frozen backbones: eval mode and an unchanged state dict; heads trained on cached features."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from spinalnet.comparison.compare import compare
from spinalnet.data import ArrayLoader, load_dataset
from spinalnet.data.arrays import FeatureArrays
from spinalnet.comparison.config import CompareConfig
from spinalnet.comparison.plan import reference_model
from spinalnet.engine.config import TrainConfig
from spinalnet.engine.module import Classifier, data_facts
from spinalnet.engine.train import fit, train

FAST = {"epochs": 2, "batch_size": 32, "lr": 0.05, "progress": False}


def _checkpoint_model(run_dir: Path, name: str = "last.ckpt") -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / name, map_location="cpu", weights_only=False)["state_dict"]
    return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}


def test_frozen_backbone_state_dict_with_buffers_is_unchanged_by_training(npz_file, tmp_path):
    config = TrainConfig(dataset=f"npz:{npz_file}", model="vgg5", head="spinal", freeze_backbone=True, **FAST)
    splits = load_dataset(config.dataset, config.data_options())
    L.seed_everything(config.seed, workers=True, verbose=False)
    module = Classifier(config, data_facts(splits, config))  # the same build train() makes
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    module.train()
    head = module.model.get_submodule(module.model.head_path)
    assert all(not m.training for n, m in module.model.named_modules() if n and not n.startswith("head"))
    assert head.training
    fit(config, splits, tmp_path / "run")  # the engine itself: train() refuses a frozen backbone without weights
    after = _checkpoint_model(tmp_path / "run")
    backbone = [k for k in before if not k.startswith("head.")]
    assert any("running_mean" in k for k in backbone) and any("num_batches_tracked" in k for k in backbone)
    changed = [k for k in backbone if not torch.equal(before[k], after[k])]
    assert changed == []
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("head."))  # it did train


LITE0 = "timm:tf_efficientnet_lite0"




def _frozen(npz_file: Path, lite0: Path, tmp_path: Path, output: str, **extra) -> CompareConfig:
    options = {**FAST, "feature_cache": str(tmp_path / "cache"), **extra}
    return CompareConfig(dataset=f"npz:{npz_file}", model=LITE0, pretrained=str(lite0), freeze_backbone=True,
                         image_size=32, seeds=1, layer_width=16, output=str(tmp_path / output), **options)


def _run_states(out: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {run.name: _checkpoint_model(run, "best.ckpt") for run in sorted((out / "runs").iterdir())}


def test_cache_hit_gives_bitwise_identical_results_and_a_corrupt_entry_is_rebuilt(npz_file, lite0, tmp_path):
    logs: list[str] = []
    miss = compare(_frozen(npz_file, lite0, tmp_path, "miss"), log=logs.append).to_dict()
    assert miss["feature_cache"]["used"] and not miss["feature_cache"]["hit"]
    assert miss["feature_cache"]["images"] == 320 and miss["feature_cache"]["extract_seconds"] > 0
    assert any("augmentation: none: the heads train on cached backbone features" in line for line in logs)
    hit = compare(_frozen(npz_file, lite0, tmp_path, "hit"), log=logs.append).to_dict()
    assert hit["feature_cache"]["hit"] and hit["feature_cache"]["key"] == miss["feature_cache"]["key"]
    for head in ("fc", "mlp", "spinal"):
        for field in ("test_acc", "val_acc", "params", "head_params"):
            assert hit["arms"][head][field] == miss["arms"][head][field]
    runs_miss, runs_hit = _run_states(tmp_path / "miss"), _run_states(tmp_path / "hit")
    assert runs_miss.keys() == runs_hit.keys() == {"fc-seed0", "mlp-seed0", "spinal-seed0"}
    for run in runs_miss:
        assert all(torch.equal(runs_miss[run][k], runs_hit[run][k]) for k in runs_miss[run])

    entry = tmp_path / "cache" / f"{miss['feature_cache']['key']}.pt"
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.write_bytes(bytes(data))
    logs.clear()
    rebuilt = compare(_frozen(npz_file, lite0, tmp_path, "rebuilt"), log=logs.append).to_dict()
    assert not rebuilt["feature_cache"]["hit"] and any("unusable" in line for line in logs)
    assert rebuilt["arms"]["spinal"]["test_acc"] == miss["arms"]["spinal"]["test_acc"]
    record = json.loads((tmp_path / "rebuilt" / "results.json").read_text())["feature_cache"]
    assert set(record) >= {"used", "hit", "extract_seconds", "images", "key"}


def test_cached_heads_match_heads_trained_through_the_frozen_backbone(npz_file, lite0, tmp_path):
    """The cache changes where the features come from, not what the heads learn (up to float rounding)."""
    cached = compare(_frozen(npz_file, lite0, tmp_path, "cached", epochs=1)).to_dict()
    direct = compare(_frozen(npz_file, lite0, tmp_path, "direct", epochs=1, feature_cache="off")).to_dict()
    assert not direct["feature_cache"]["used"]
    for head in ("fc", "mlp", "spinal"):
        assert cached["arms"][head]["params"] == direct["arms"][head]["params"]
        assert cached["arms"][head]["test_acc"] == pytest.approx(direct["arms"][head]["test_acc"], abs=100 / 64 + 1e-6)
    a, b = _run_states(tmp_path / "cached"), _run_states(tmp_path / "direct")
    head_keys = [k for k in b["spinal-seed0"] if k.startswith("classifier.")]
    for key in head_keys:
        assert torch.allclose(a["spinal-seed0"][key.replace("classifier.", "head.", 1)], b["spinal-seed0"][key],
                              atol=1e-4)


def test_feature_views_are_served_one_per_epoch_in_turn():
    views = torch.arange(3 * 4 * 2, dtype=torch.float32).view(3, 4, 2)
    data = FeatureArrays(views[0], torch.arange(4), views)
    loader = ArrayLoader(data, 4, shuffle=False)
    seen = []
    for epoch in range(4):
        loader.set_epoch(epoch)
        seen.append(next(iter(loader))[0])
    assert [torch.equal(s, views[e % 3]) for e, s in enumerate(seen)] == [True] * 4


def test_feature_views_cache_distinct_augmented_views(npz_file, lite0, tmp_path):
    from spinalnet.comparison.feature_cache import feature_splits

    config = _frozen(npz_file, lite0, tmp_path, "views", feature_views=2, augment="rotate").validate()
    splits = load_dataset(config.dataset, config.data_options())
    features, record = feature_splits(config, splits, tmp_path / "cache", reference_model(config, splits)[0],
                                      log=lambda _: None)
    views = features.train.views
    assert views.shape[:2] == (2, len(splits.train)) and not torch.equal(views[0], views[1])
    assert record.images == len(splits.train) * 3 + len(splits.val) + len(splits.test)
    with pytest.raises(ValueError, match="needs an augmentation"):
        compare(_frozen(npz_file, lite0, tmp_path, "v", feature_views=2))
    assert not (tmp_path / "v").exists()  # refused before anything was written


def test_folder_data_is_cached_without_its_training_augmentation(image_folder, lite0, tmp_path):
    from spinalnet.comparison.feature_cache import feature_splits

    config = CompareConfig(dataset=f"folder:{image_folder}", model=LITE0, pretrained=str(lite0), freeze_backbone=True,
                           image_size=32, num_workers=0, feature_cache=str(tmp_path / "cache"), progress=False).validate()
    splits = load_dataset(config.dataset, config.data_options())
    model = reference_model(config, splits)[0]
    first, _ = feature_splits(config, splits, tmp_path / "cache", model, log=lambda _: None)
    again, record = feature_splits(config, splits, tmp_path / "other", model, log=lambda _: None)
    assert not record.hit and first.train.images.shape == (len(splits.train), 1280)
    assert torch.equal(first.train.images, again.train.images)  # no random crop or flip in the cached split
    assert first.train.labels.tolist() == [int(v) for v in splits.train.labels]


def test_an_unusable_feature_cache_is_refused_before_the_run_directory_exists(npz_file, lite0, tmp_path, capsys):
    from spinalnet.commands.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    out = tmp_path / "out"
    args = ["compare", "--dataset", f"npz:{npz_file}", "--model", LITE0, "--pretrained", str(lite0),
            "--freeze-backbone", "--image-size", "32", "--epochs", "1", "--seeds", "1",
            "--feature-cache", str(blocker / "cache"), "--output", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"spinalnet: error: --feature-cache {blocker / 'cache'}: cannot")
    assert not out.exists() and blocker.read_text() == "not a directory"


def test_a_head_trained_on_cached_features_is_a_whole_model(npz_file, lite0, tmp_path, capsys):
    """eval and export rebuild backbone plus head from what the checkpoint records: eval reproduces the run's
    test accuracy, the ONNX program matches PyTorch, and a missing or changed weights file is one line."""
    onnxruntime = pytest.importorskip("onnxruntime")
    from spinalnet.commands.cli import main
    import spinalnet

    compare(_frozen(npz_file, lite0, tmp_path, "whole", heads=["fc", "spinal"]), log=lambda s: None)
    run = tmp_path / "whole" / "runs" / "spinal-seed0"
    checkpoint = run / "checkpoints" / "best.ckpt"
    result = json.loads((run / "result.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(checkpoint), "--split", "test", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == result["test_acc"] and evaluated["data_matches"]
    assert [c["class"] for c in evaluated["per_class"]] == ["0", "1", "2", "3"]
    onnx = tmp_path / "head.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--output", str(onnx)]) == 0
    model = spinalnet.load(checkpoint)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        expected = model(x).numpy()
    got = onnxruntime.InferenceSession(str(onnx)).run(None, {"images": x.numpy()})[0]
    assert np.abs(got - expected).max() < 1e-5
    moved = lite0.with_name("moved.pth")
    lite0.rename(moved)
    try:
        assert main(["eval", str(checkpoint)]) == 2
        err = capsys.readouterr().err
        assert f"the weights {lite0}, which are missing" in err and len(err.strip().splitlines()) == 1
        lite0.write_bytes(moved.read_bytes()[:-1] + b"x")  # another file under the same name
        assert main(["export", str(checkpoint), "--format", "onnx", "--output", str(tmp_path / "no.onnx"), "--force"]) == 2
        assert "that file has changed since (another SHA-256)" in capsys.readouterr().err
        assert not (tmp_path / "no.onnx").exists()
    finally:
        moved.replace(lite0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_features_extracted_on_cuda_equal_the_cpu_ones_augmented_views_too(npz_file):
    from spinalnet.comparison.feature_cache import extract

    config = TrainConfig(dataset=f"npz:{npz_file}", model="vgg5", head="spinal", freeze_backbone=True,
                         augment="rotate", **FAST)
    splits = load_dataset(config.dataset, config.data_options())
    module = Classifier(config, data_facts(splits, config)).eval()
    from spinalnet.data.augment import epoch_draws

    draws = epoch_draws(len(splits.train), 3)  # one augmented view, the same draws on both devices
    cpu = [extract(module, splits.test, "test"), extract(module, splits.train, "view", draws=draws)]
    module.to("cuda")
    gpu = [extract(module, splits.test, "test"), extract(module, splits.train, "view", draws=draws)]
    assert module.transform.mean.device.type == "cuda"  # extraction leaves the module where it was
    for a, b in zip(cpu, gpu):
        assert b.device.type == "cpu"
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)
    assert not torch.equal(cpu[1], extract(module.cpu(), splits.train, "view"))  # the view was augmented


def test_the_backbone_runs_on_the_gpu_only_where_the_comparison_may_use_one(monkeypatch, npz_file):
    from spinalnet.comparison.feature_cache import cache_key, extraction_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    for accelerator, expected in (("auto", "cuda:1"), ("gpu", "cuda:1"), ("cpu", "cpu"), ("mps", "cpu")):
        config = CompareConfig(dataset=f"npz:{npz_file}", accelerator=accelerator)
        assert str(extraction_device(config)) == expected, accelerator
    config = TrainConfig(dataset=f"npz:{npz_file}", model="vgg5", freeze_backbone=True)
    splits = load_dataset(config.dataset, config.data_options())
    plain = cache_key(config, splits, "w", 0)
    assert cache_key(config, splits, "w", 0, torch.device("cpu")) == plain  # CPU entries keep their keys
    gpu_key, described = cache_key(config, splits, "w", 0, torch.device("cuda", 1))
    assert gpu_key != plain[0] and described["device"] == "cuda"  # GPU features are another entry
