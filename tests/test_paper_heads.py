"""SpinalLinear.from_paper loads heads saved by the authors' scripts, built here module for module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reference import AuthorsMnistHead, ReferenceSpinal, authors_transfer_head
from spinalnet import SpinalLinear


def _trained(head: nn.Module, in_features: int) -> nn.Module:
    """A few training-mode batches so BatchNorm statistics move away from their defaults."""
    torch.manual_seed(1)
    head.train()
    with torch.no_grad():
        for _ in range(3):
            head(torch.randn(32, in_features) * 2 + 0.5)
    return head.eval()


@pytest.mark.parametrize("num_ftrs,width,dropout,batch_norm", [
    (256, 128, True, True),    # MNIST_VGG SpinalVGG: Dropout(0.5), Linear, BatchNorm1d, ReLU
    (512, 20, False, False),   # ResNet transfer scripts: Linear, ReLU
    (2048, 64, False, True),
    (11, 5, True, False),      # odd width 4k + 3: round(n/2) = 6 = tensor_split's first half
])
def test_vgg_resnet_transfer_heads_load_with_equal_outputs(num_ftrs, width, dropout, batch_norm):
    torch.manual_seed(0)
    authors = _trained(authors_transfer_head(num_ftrs, width, 7, dropout=dropout, batch_norm=batch_norm), num_ftrs)
    if batch_norm:
        assert not torch.allclose(authors.fc_spinal_layer1[-2].running_mean, torch.zeros(width))
    layer = SpinalLinear.from_paper(authors.state_dict()).eval()
    assert (layer.in_features, layer.out_features, layer.layer_width, layer.num_layers, layer.batch_norm) == \
        (num_ftrs, 7, width, 4, batch_norm)
    assert layer.dropout == (0.5 if dropout else 0.0)
    x = torch.randn(16, num_ftrs)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), authors(x), atol=1e-5, rtol=0)


def test_mnist_script_head_loads_from_a_whole_model_checkpoint():
    torch.manual_seed(0)
    net = nn.Module()
    net.conv1 = nn.Conv2d(1, 10, 5)  # the rest of the script's model lives beside the head
    head = AuthorsMnistHead()
    for name, module in head.named_children():
        setattr(net, name, module)
    layer = SpinalLinear.from_paper(net.state_dict()).eval()
    assert (layer.in_features, layer.layer_width, layer.num_layers, layer.dropout) == (320, 8, 6, 0.0)
    x = torch.randn(5, 320)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), head(x), atol=1e-5, rtol=0)


def test_prefix_selects_the_head_and_dropout_keyword_overrides():
    torch.manual_seed(0)
    model = nn.Module()
    model.features = nn.Linear(3, 40)
    model.classifier = _trained(authors_transfer_head(40, 6, 3, dropout=True, batch_norm=True), 40)
    layer = SpinalLinear.from_paper(model.state_dict(), prefix="classifier.", dropout=0.1,
                                    activation="leaky_relu")
    assert layer.dropout == 0.1 and layer.activation == "leaky_relu"
    with pytest.raises(ValueError, match=r"not a Spinal head of the authors' scripts under prefix 'fc\.'"):
        SpinalLinear.from_paper(model.state_dict(), prefix="fc.")


def test_leaky_relu_head_matches_with_the_activation_keyword():
    torch.manual_seed(0)
    authors = ReferenceSpinal(30, 4, layer_width=5, num_layers=6, activation="leaky_relu").eval()
    layer = SpinalLinear.from_paper(authors.state_dict(), activation="leaky_relu").eval()
    x = torch.randn(8, 30)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), authors(x), atol=1e-5, rtol=0)


def test_neither_form_is_refused_in_one_sentence():
    own = SpinalLinear(10, 3, layer_width=4).state_dict()
    with pytest.raises(ValueError, match=r"^not a Spinal head of the authors' scripts: expected fc_spinal_layer1"):
        SpinalLinear.from_paper(own)
    state = ReferenceSpinal(10, 3, layer_width=4, num_layers=4).state_dict()
    del state["fc_spinal_layer3.0.weight"], state["fc_spinal_layer3.0.bias"]
    with pytest.raises(ValueError, match=r"expected fc_spinal_layer1..fc_spinal_layer3 and fc_out"):
        SpinalLinear.from_paper(state)


def test_damaged_heads_and_wrong_arguments_are_one_value_error_naming_the_problem():
    mnist = AuthorsMnistHead().state_dict()
    cases = [
        ({k: v for k, v in mnist.items() if k != "fc1_2.weight"}, {}, r"^fc1_2.weight is missing"),
        ({k: v for k, v in mnist.items() if k != "fc2.bias"}, {},
         r"^hidden layer 1 has a bias but the output Linear has none"),
        ({**mnist, "fc2.bias": torch.zeros(7)}, {}, r"^the head's tensors do not fit .*output.bias"),
        (mnist, {"prefix": None}, r"^prefix must be a string"),
        (mnist, {"in_features": "320"}, r"^in_features must be an integer >= 1, got '320' \(str\)"),
        (list(mnist.values()), {}, r"^state_dict must be a mapping of names to tensors"),
    ]
    for state, kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            SpinalLinear.from_paper(state, **kwargs)


def test_split_rule_differences_are_refused():
    # n = 4k + 1: the authors' round(n/2) = 2k halves leave the last feature unread.
    state = ReferenceSpinal(8, 3, layer_width=4, num_layers=4).state_dict()  # halves of 4 and 4
    assert SpinalLinear.from_paper(state).in_features == 8
    with pytest.raises(ValueError, match=r"for n = 9 features the authors' halves x\[:, 0:4\] and x\[:, 4:8\] differ "
                                         r"from SpinalLinear's split \(5, 4\)"):
        SpinalLinear.from_paper(state, in_features=9)
    # halves of 5 and 4 (tensor_split of 9) cannot come from round(9/2) = 4
    with pytest.raises(ValueError, match=r"halves of 5 and 4 features, not the authors' round\(n/2\) halves \[4, 4\]"):
        SpinalLinear.from_paper(ReferenceSpinal(9, 3, layer_width=4, num_layers=4).state_dict())
