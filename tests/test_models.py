"""The model zoo: both heads for every model, identical backbones, pretrained weights from a file."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spinalnet import SpinalLinear
from spinalnet.errors import UsageError
from spinalnet.models import MODELS, SpinalOptions, create_model

ZOO = [("default-cnn", 1, 28), ("arch2", 1, 28), ("vgg5", 1, 28), ("fast-cnn", 1, 28), ("cifar-cnn", 3, 32), ("vgg19bn", 3, 32),
       ("resnet18-cifar", 3, 32), ("resnet34-cifar", 3, 32), ("tv:resnet18", 3, 32), ("tv:vgg11", 3, 32),
       ("timm:resnet18", 3, 32)]


def _backbone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    head = model.head_path
    return {k: v for k, v in model.state_dict().items() if not (k == head or k.startswith(head + "."))}


@pytest.mark.parametrize("name,channels,size", ZOO, ids=[z[0] for z in ZOO])
def test_both_heads_share_the_backbone_and_differ_only_in_the_head(name, channels, size):
    if name.startswith("timm:"):
        pytest.importorskip("timm")
    models = {}
    for head in ("fc", "spinal"):
        torch.manual_seed(0)
        models[head] = create_model(name, 7, in_channels=channels, image_size=(size, size), head=head)
        out = models[head].eval()(torch.randn(2, channels, size, size))
        assert out.shape == (2, 7)
    fc, sp = (_backbone_state(models[h]) for h in ("fc", "spinal"))
    assert fc.keys() == sp.keys()
    assert all(torch.equal(fc[k], sp[k]) for k in fc)  # same seed -> same backbone initialisation
    spinal_head = models["spinal"].get_submodule(models["spinal"].head_path)
    assert any(isinstance(m, SpinalLinear) for m in spinal_head.modules())
    assert not any(isinstance(m, SpinalLinear) for m in models["fc"].modules())


def test_paper_head_settings():
    head = create_model("default-cnn", 10, head="spinal").head
    assert (head.in_features, head.layer_width, head.num_layers, head.split_sizes) == (320, 8, 6, [160, 160])
    head = create_model("vgg5", 10, head="spinal").head
    assert (head.in_features, head.layer_width, head.num_layers, head.dropout, head.batch_norm) == (256, 128, 4, 0.5, True)
    head = create_model("cifar-cnn", 10, in_channels=3, image_size=(32, 32), head="spinal").head
    assert (head.in_features, head.split_sizes[0], head.layer_width) == (4096, 2048, 128)
    head = create_model("resnet18-cifar", 10, in_channels=3, image_size=(32, 32), head="spinal").head
    assert (head.in_features, head.num_splits, head.layer_width) == (2048, 4, 256)
    arch2 = create_model("arch2", 10, head="spinal", spinal_options=SpinalOptions(layer_width=300)).head
    branches = arch2[0].branches
    assert [b.in_features for b in branches] == [320, 1440, 784]
    assert [b.num_layers for b in branches] == [8, 8, 10] and branches[0].layer_width == 300


@pytest.mark.parametrize("model", ["resnet18-cifar", "resnet34-cifar"])
def test_resnet_heads_read_the_same_pooled_features(model):
    """The authors' scripts max-pool for both heads (fc: whole map, Spinal: 2x2); neither head may see other
    features. With the same seed, the two models' backbones are identical and end with the shared pooling."""
    torch.manual_seed(0)
    fc = create_model(model, 10, in_channels=3, image_size=(32, 32), head="fc")
    torch.manual_seed(0)
    sp = create_model(model, 10, in_channels=3, image_size=(32, 32), head="spinal")
    x = torch.randn(3, 3, 32, 32)
    fc.eval(), sp.eval()
    with torch.no_grad():
        feats = fc.forward_features(x)
        assert torch.equal(feats, sp.forward_features(x)) and feats.shape == (3, 4 * 512)
        fmap = fc.features[0](x)  # the last residual stage, before any pooling
        pooled = torch.nn.functional.max_pool2d(fmap, 2)  # the authors' MaxPool2d(2, 2) on the 4x4 map
        positions = [pooled[:, :, 0, 0], pooled[:, :, 0, 1], pooled[:, :, 1, 0], pooled[:, :, 1, 1]]
        assert torch.equal(feats, torch.cat(positions, 1))
        linear = fc.head[-1]  # fc: the global max-pool (MaxPool2d(4) on a 4x4 map) into Linear(512, C)
        global_max = torch.nn.functional.max_pool2d(fmap, fmap.shape[-1]).flatten(1)
        torch.testing.assert_close(fc(x), linear(global_max))
        torch.testing.assert_close(sp(x), sp.head(torch.cat(positions, 1)))


def test_user_options_override_model_defaults():
    head = create_model("default-cnn", 10, head="spinal",
                        spinal_options=SpinalOptions(layer_width=16, num_layers=3, dropout=0.2)).head
    assert (head.layer_width, head.num_layers, head.dropout) == (16, 3, 0.2)


def test_freeze_backbone():
    model = create_model("vgg5", 10, head="spinal", freeze_backbone=True)
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head"}


def test_pretrained_weights_from_a_local_file(tmp_path):
    torch.manual_seed(1)
    import torchvision

    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = create_model("tv:resnet18", 5, head="spinal", pretrained=str(path))
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    with pytest.raises(UsageError, match="does not fit tv:resnet34"):
        create_model("tv:resnet34", 5, pretrained=str(path))
    with pytest.raises(UsageError, match="does not exist"):
        create_model("tv:resnet18", 5, pretrained=str(tmp_path / "nope.pth"))
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(UsageError, match="junk.pth: not a readable PyTorch weights file"):
        create_model("tv:resnet18", 5, pretrained=str(tmp_path / "junk.pth"))


def test_pretrained_download_failure_is_a_clear_message(monkeypatch):
    import torchvision
    import urllib.error

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models, "get_model", offline)
    with pytest.raises(UsageError, match=r"cannot download pretrained weights for tv:resnet18 .*--pretrained PATH"):
        create_model("tv:resnet18", 5, pretrained="imagenet")


@pytest.mark.parametrize("name,match", [
    ("vgg-5", r"unknown model 'vgg-5' \(did you mean 'vgg5'\?\)"),
    ("tv:resnet181", r"unknown torchvision model 'resnet181' \(did you mean 'resnet18' or .*\?\); 1\d\d are known"),
])
def test_unknown_models_suggest(name, match):
    with pytest.raises(UsageError, match=match):
        create_model(name, 10)


def test_zoo_models_refuse_pretrained():
    with pytest.raises(UsageError, match="vgg5 has no pretrained weights"):
        create_model("vgg5", 10, pretrained="imagenet")
    assert set(MODELS) >= {"default-cnn", "arch2", "vgg5", "cifar-cnn", "vgg19bn", "resnet18-cifar", "resnet34-cifar"}


def test_a_model_given_images_too_small_names_the_smallest_usual_size_it_takes():
    from spinalnet.errors import UsageError
    from spinalnet.models.mnist import DefaultCNNFeatures
    from spinalnet.models.shapes import feature_width

    with pytest.raises(UsageError, match=r"cannot take 1x8x8 images \(.*\); --image-size 16 is the smallest of the "
                                         r"usual sizes it takes$"):
        feature_width(DefaultCNNFeatures(1), 1, (8, 8))
    assert feature_width(DefaultCNNFeatures(1), 1, (16, 16)) > 0
