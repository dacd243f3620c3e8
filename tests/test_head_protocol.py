"""timm's head protocol on the zoo and on spinalized models: forward_features, forward_head, get/reset_classifier."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from spinalnet import SpinalLinear, spinalize
from spinalnet.models import SpinalOptions, create_model

ZOO = [("default-cnn", 1, 28), ("arch2", 1, 28), ("vgg5", 1, 28), ("fast-cnn", 1, 28), ("cifar-cnn", 3, 32),
       ("vgg19bn", 3, 32), ("resnet18-cifar", 3, 32), ("resnet34-cifar", 3, 32)]


def _timm_style_check(model: nn.Module, features: torch.Tensor, logits: torch.Tensor, num_classes: int) -> None:
    """What timm-style code does: pre-logits, then the classifier; both equal to the full head."""
    with torch.no_grad():
        pre = model.forward_head(features, pre_logits=True)
        torch.testing.assert_close(model.forward_head(features), logits)
        torch.testing.assert_close(model.get_classifier()(pre), logits)
    assert logits.shape == (len(features), num_classes)
    assert pre.shape == (len(features), getattr(model, "head_hidden_size", model.num_features))


def _logits_and_features(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return model.eval()(x), model.forward_features(x)


@pytest.mark.parametrize("head", ["fc", "spinal"])
@pytest.mark.parametrize("name,channels,size", ZOO, ids=[z[0] for z in ZOO])
def test_zoo_models_follow_timms_head_protocol(name, channels, size, head):
    torch.manual_seed(0)
    model = create_model(name, 7, in_channels=channels, image_size=(size, size), head=head,
                         spinal_options=SpinalOptions(layer_width=16, num_layers=4, dropout=0.25))
    logits, features = _logits_and_features(model, torch.randn(2, channels, size, size))
    _timm_style_check(model, features, logits, 7)
    assert model.num_classes == 7
    before = model.get_classifier()
    if head == "spinal" and name != "arch2":  # arch2's Spinal branches feed an fc 50 -> C classifier
        assert isinstance(before, SpinalLinear)
    model.reset_classifier(3)
    after = model.get_classifier()
    assert after is not before and type(after) is type(before) and model.num_classes == 3
    if isinstance(before, SpinalLinear):
        assert after.options() == before.options() and after.in_features == before.in_features
    with torch.no_grad():
        _timm_style_check(model, features, model.eval().forward_head(features), 3)
    model.reset_classifier(0)  # timm: no classifier, the head returns pre-logits
    with torch.no_grad():
        assert model.forward_head(features).shape == (2, model.head_hidden_size)
    model.reset_classifier(5)
    assert type(model.get_classifier()) is type(before)
    with torch.no_grad():
        _timm_style_check(model, features, model.eval().forward_head(features), 5)


def test_spinalized_timm_model_keeps_timms_protocol():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = spinalize(timm.create_model("resnet18", pretrained=False, num_classes=3), 6, layer_width=8)
    x = torch.randn(2, 3, 32, 32)
    assert isinstance(model.get_classifier(), SpinalLinear)
    _timm_style_check(model, *reversed(_logits_and_features(model, x)), 6)
    model.reset_classifier(4)  # timm's own reset puts back timm's classifier, with the new class count
    _timm_style_check(model, *reversed(_logits_and_features(model, x)), 4)


def test_spinalized_torchvision_model_classifier_reads_pooled_features():
    torch.manual_seed(0)
    model = spinalize(torchvision.models.resnet18(weights=None), 5, layer_width=8).eval()
    x = torch.randn(2, 3, 32, 32)
    body = nn.Sequential(*list(model.children())[:-1], nn.Flatten())
    with torch.no_grad():
        torch.testing.assert_close(model.fc(body(x)), model(x))
