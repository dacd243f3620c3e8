"""spinalize() on every torchvision family and on timm models (weights=None, no downloads).

The models are built on the meta device: their layers, shapes and a forward pass's output shape are what these
tests check, and none of them needs the weights' values (ViT-B/16 at 224 px runs in a second instead of many).
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from spinalnet import SpinalLinear, find_classifier, spinalize

META = torch.device("meta")
#: RegNet computes its block widths with tensors while it is built, which the meta device cannot: small on the CPU
CPU_BUILT = {"regnet_y_400mf"}
#: timm at our declared floor computes ConvNeXt's and ViT's drop-path rates with tensor.item()/tolist() while it
#: builds them, which the meta device cannot answer: both are small, so they are built on the CPU everywhere
TIMM_CPU_BUILT = {"convnext_atto", "vit_tiny_patch16_224"}
# name, path of the head after spinalize, expected in_features, input size
TORCHVISION = [
    ("resnet18", "fc", 512, 64),
    ("wide_resnet50_2", "fc", 2048, 64),
    ("resnext50_32x4d", "fc", 2048, 64),
    ("regnet_y_400mf", "fc", 440, 64),
    ("vgg11_bn", "classifier.0", 25088, 32),
    ("alexnet", "classifier.1", 9216, 64),
    ("densenet121", "classifier", 1024, 64),
    ("efficientnet_b0", "classifier.1", 1280, 64),
    ("mobilenet_v2", "classifier.1", 1280, 64),
    ("mobilenet_v3_small", "classifier.0", 576, 64),
    ("convnext_tiny", "classifier.2", 768, 64),
    ("vit_b_16", "heads.head", 768, 224),
]


@pytest.mark.parametrize("name,path,in_features,size", TORCHVISION, ids=[t[0] for t in TORCHVISION])
def test_spinalize_torchvision(name, path, in_features, size):
    torch.manual_seed(0)
    with torch.device("cpu" if name in CPU_BUILT else META):
        model = torchvision.models.get_model(name, weights=None)
        out = spinalize(model, num_classes=7, layer_width=16, num_layers=3)
        assert out is model
        head = model.get_submodule(path)
        assert isinstance(head, SpinalLinear)
        assert (head.in_features, head.out_features, head.layer_width, head.num_layers) == (in_features, 7, 16, 3)
        # No Linear of the old classifier is left behind in the head container.
        container = model.get_submodule(path.rpartition(".")[0]) if "." in path else model
        assert not any(isinstance(m, nn.Linear) for m in container.children())
        model.eval()
        with torch.no_grad():
            y = model(torch.randn(2, 3, size, size))
    assert y.shape == (2, 7)


def test_vgg_whole_fc_stack_is_replaced():
    with META:
        model = spinalize(torchvision.models.vgg11(weights=None), 10)
        assert list(model.classifier) == [model.classifier[0]] and isinstance(model.classifier[0], SpinalLinear)


def test_convnext_keeps_norm_and_flatten():
    with META:
        model = spinalize(torchvision.models.convnext_tiny(weights=None), 10)
        kinds = [type(m).__name__ for m in model.classifier]
        assert kinds == ["LayerNorm2d", "Flatten", "SpinalLinear"]


def test_freeze_backbone_trains_only_the_head():
    with META:
        model = spinalize(torchvision.models.resnet18(weights=None), 5, freeze_backbone=True)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable and all(n.startswith("fc.") for n in trainable)
        assert trainable == {f"fc.{n}" for n, _ in model.fc.named_parameters()}
        model.eval()
        model(torch.randn(2, 3, 32, 32)).sum().backward()
        assert model.conv1.weight.grad is None and model.fc.output.weight.grad is not None


def test_full_training_is_the_default():
    with META:
        model = spinalize(torchvision.models.resnet18(weights=None), 5)
        assert all(p.requires_grad for p in model.parameters())


def test_spinal_kwargs_are_passed_through():
    with META:
        model = spinalize(torchvision.models.resnet18(weights=None), 5, layer_width=32, num_layers=6,
                          num_splits=3, dropout=0.5, batch_norm=True, activation="gelu")
        head = model.fc
        assert (head.num_layers, head.num_splits, head.dropout, head.batch_norm, head.activation) == (6, 3, 0.5, True, "gelu")


def test_unknown_model_names_what_was_looked_for():
    with META:
        with pytest.raises(ValueError, match=r"cannot find the classifier of SqueezeNet: .*get_classifier\(\).*\.fc, \.classifier, \.heads, \.head"):
            spinalize(torchvision.models.squeezenet1_0(weights=None), 10)
        with pytest.raises(ValueError, match="cannot find the classifier of Conv2d"):
            find_classifier(nn.Conv2d(1, 1, 1))


@pytest.mark.parametrize("name,head_path,in_features", [
    ("resnet18", "fc", 512),
    ("convnext_atto", "head.fc", 320),
    ("vit_tiny_patch16_224", "head", 192),
    ("efficientnet_b0", "classifier", 1280),
])
def test_spinalize_timm(name, head_path, in_features):
    timm = pytest.importorskip("timm")
    with torch.device("cpu" if name in TIMM_CPU_BUILT else META):
        model = timm.create_model(name, pretrained=False, num_classes=3)
        spinalize(model, 9, layer_width=8)
        head = model.get_submodule(head_path)
        assert isinstance(head, SpinalLinear) and head.in_features == in_features
        assert model.get_classifier() is head and model.num_classes == 9
        model.eval()
        size = 224 if "vit" in name else 64
        with torch.no_grad():
            assert model(torch.randn(2, 3, size, size)).shape == (2, 9)


def test_spinalize_timm_headless_model_uses_num_features():
    timm = pytest.importorskip("timm")
    with META:
        model = timm.create_model("resnet18", pretrained=False, num_classes=0)
        spinalize(model, 4, layer_width=8)
        assert model.fc.in_features == 512
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 4)


@pytest.mark.parametrize("build", [torchvision.models.resnet18, torchvision.models.vgg11], ids=["resnet18", "vgg11"])
def test_a_spinalized_torchvision_model_can_be_spinalized_again(build):
    """find_classifier finds the SpinalLinear an earlier spinalize put in, e.g. to change the classes."""
    with META:
        model = spinalize(build(weights=None), 10, layer_width=8)
        site = find_classifier(model)
        assert isinstance(site.parent.get_submodule(site.name), SpinalLinear)
        again = spinalize(model, 5, layer_width=8)
        assert again(torch.randn(1, 3, 64, 64)).shape == (1, 5)
        assert sum(isinstance(m, SpinalLinear) for m in again.modules()) == 1
