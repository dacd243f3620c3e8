"""SpinalLinear against the per-layer reference: outputs, gradients, sizes, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reference import ReferenceSpinal, fast_per_layer_grads
from spinalnet import SpinalLinear, split_sizes

CONFIGS = [
    # in, out, width, layers, splits, batch_norm, bias, activation
    pytest.param(320, 10, 8, 6, 2, False, True, "relu", id="paper-mnist-default-cnn"),
    pytest.param(256, 10, 128, 4, 2, True, True, "relu", id="paper-vgg5-bn"),
    pytest.param(7, 3, 4, 5, 3, False, True, "leaky_relu", id="uneven-3-splits"),
    pytest.param(11, 2, 5, 4, 2, True, False, "tanh", id="odd-input-no-bias"),
    pytest.param(9, 4, 3, 1, 1, False, True, "gelu", id="one-layer"),
    pytest.param(50, 7, 6, 40, 4, True, True, "relu", id="forty-layers"),
    pytest.param(5, 5, 2, 5, 5, False, True, nn.SiLU, id="one-feature-splits-module-class"),
]


def _pair(in_f, out_f, width, layers, splits, bn, bias, act, dropout=0.0):
    torch.manual_seed(0)
    fast = SpinalLinear(in_f, out_f, layer_width=width, num_layers=layers, num_splits=splits,
                        activation=act, batch_norm=bn, bias=bias, dropout=dropout).double()
    return fast, ReferenceSpinal(fast).double()


@pytest.mark.parametrize("in_f,out_f,width,layers,splits,bn,bias,act", CONFIGS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_matches_reference_outputs_and_gradients(in_f, out_f, width, layers, splits, bn, bias, act, training):
    fast, ref = _pair(in_f, out_f, width, layers, splits, bn, bias, act)
    fast.train(training), ref.train(training)
    x = torch.randn(16, in_f, dtype=torch.double)
    xf, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    yf, yr = fast(xf), ref(xr)
    torch.testing.assert_close(yf, yr, atol=1e-5, rtol=0)
    g = torch.randn_like(yf)
    yf.backward(g), yr.backward(g)
    torch.testing.assert_close(xf.grad, xr.grad, atol=1e-5, rtol=0)
    for (wf, bf), (wr, br) in zip(fast_per_layer_grads(fast), ref.per_layer_grads()):
        torch.testing.assert_close(wf, wr, atol=1e-5, rtol=0)
        if bias:
            torch.testing.assert_close(bf, br, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.output.weight.grad, ref.output.weight.grad, atol=1e-5, rtol=0)
    if bn and training:  # running statistics advance identically
        for pf, pr in zip(fast.post, ref.post):
            torch.testing.assert_close(pf[0].running_mean, pr[0].running_mean)
            torch.testing.assert_close(pf[0].running_var, pr[0].running_var)


def test_float32_matches_reference_within_1e5():
    torch.manual_seed(1)
    fast = SpinalLinear(2048, 100, layer_width=512, num_layers=4)
    ref = ReferenceSpinal(fast)
    x = torch.randn(64, 2048)
    torch.testing.assert_close(fast(x), ref(x), atol=1e-5, rtol=1e-5)


def test_eval_with_dropout_matches_reference_and_train_is_stochastic():
    fast, ref = _pair(40, 5, 8, 4, 2, True, True, "relu", dropout=0.5)
    fast.eval(), ref.eval()
    x = torch.randn(8, 40, dtype=torch.double)
    torch.testing.assert_close(fast(x), ref(x), atol=1e-10, rtol=0)
    fast.train()
    assert not torch.equal(fast(x), fast(x))


def test_dropout_masks_are_independent_per_layer():
    """Layers reading the same chunk drop different features, as separate Dropout modules do."""
    checked = 0
    for seed in range(20):
        torch.manual_seed(seed)
        layer = SpinalLinear(1000, 1, layer_width=1, num_layers=2, num_splits=1, dropout=0.5, bias=False)
        with torch.no_grad():
            layer.input_weights[0].fill_(1.0)
        layer.train()
        # Grad row k of the stacked input weights is (layer k's dropped chunk) * (its upstream grad).
        layer(torch.ones(1, 1000)).sum().backward()
        grad = layer.input_weights[0].grad[:, 0, :]
        kept0, kept1 = grad[0] != 0, grad[1] != 0
        if not (kept0.any() and kept1.any()):  # the output dropout removed a layer's only path
            continue
        assert 0.4 < kept0.float().mean() < 0.6 and 0.4 < kept1.float().mean() < 0.6
        assert (kept0 != kept1).float().mean() > 0.4
        checked += 1
    assert checked >= 3


def test_every_hidden_layer_receives_gradient():
    torch.manual_seed(0)
    layer = SpinalLinear(30, 4, layer_width=6, num_layers=7, num_splits=3, activation="tanh")
    layer(torch.randn(32, 30)).pow(2).sum().backward()
    for i, (grad_w, grad_b) in enumerate(fast_per_layer_grads(layer)):
        assert grad_w.abs().sum() > 0, f"hidden layer {i} got no weight gradient"
        assert grad_b.abs().sum() > 0, f"hidden layer {i} got no bias gradient"


@pytest.mark.parametrize("shape", [(5,), (2, 3, 5), (4, 1, 1, 5)])
def test_any_leading_shape(shape):
    layer = SpinalLinear(5, 3, layer_width=4).eval()
    x = torch.randn(*shape)
    y = layer(x)
    assert y.shape == (*shape[:-1], 3)
    torch.testing.assert_close(y.reshape(-1, 3), layer(x.reshape(-1, 5)))


@pytest.mark.parametrize("in_features,splits", [(10, 3), (7, 7), (100, 2), (101, 4)])
def test_split_sizes_match_tensor_split_and_cover_every_feature(in_features, splits):
    sizes = split_sizes(in_features, splits)
    assert sizes == [c.shape[1] for c in torch.tensor_split(torch.zeros(1, in_features), splits, 1)]
    layer = SpinalLinear(in_features, 2, layer_width=3, num_layers=splits, num_splits=splits)
    read = set()
    for start, stop, _ in layer.layer_inputs():
        read.update(range(start, stop))
    assert read == set(range(in_features))


@pytest.mark.parametrize("in_f,out_f,width,layers,splits,bn,bias", [
    (320, 10, 8, 6, 2, False, True), (256, 10, 128, 4, 2, True, True), (7, 3, 4, 5, 3, True, False),
    (2048, 100, 512, 4, 2, False, True), (9, 1, 1, 1, 1, False, False),
])
def test_num_params_formula(in_f, out_f, width, layers, splits, bn, bias):
    layer = SpinalLinear(in_f, out_f, layer_width=width, num_layers=layers, num_splits=splits,
                         batch_norm=bn, bias=bias)
    counted = sum(p.numel() for p in layer.parameters())
    assert layer.num_params == counted
    if splits == 2 and in_f % 2 == 0 and bias and not bn:  # the paper's formula, plus biases
        m = in_f // 2
        paper = m * width + (layers - 1) * (m + width) * width + layers * width * out_f
        assert counted == paper + layers * width + out_f


def test_extra_repr_and_describe_show_configuration():
    layer = SpinalLinear(7, 3, layer_width=4, num_layers=5, num_splits=3, activation="gelu",
                         dropout=0.25, batch_norm=True)
    text = repr(layer)
    for part in ["in_features=7", "out_features=3", "layer_width=4", "num_layers=5", "num_splits=3",
                 "split_sizes=(3, 2, 2)", "activation=gelu", "dropout=0.25", "batch_norm=True"]:
        assert part in text
    described = layer.describe()
    assert "x[0:3]" in described and "x[3:5] + h0" in described and "x[5:7] + h1" in described
    assert f"{layer.num_params:,}" in described


def test_per_layer_parameters_round_trip():
    torch.manual_seed(0)
    a = SpinalLinear(13, 3, layer_width=4, num_layers=5, num_splits=3)
    b = SpinalLinear(13, 3, layer_width=4, num_layers=5, num_splits=3)
    b.load_per_layer_parameters([(w.detach(), bb.detach()) for w, bb in a.per_layer_parameters()])
    b.output.load_state_dict(a.output.state_dict())
    x = torch.randn(4, 13)
    torch.testing.assert_close(a(x), b(x))


@pytest.mark.parametrize("kwargs,match", [
    (dict(in_features=1, num_splits=2), r"in_features \(1\) must be >= num_splits \(2\)"),
    (dict(num_layers=0), r"num_layers must be an integer >= 1, got 0"),
    (dict(layer_width=0), r"layer_width must be an integer >= 1, got 0"),
    (dict(out_features=0), r"out_features must be an integer >= 1"),
    (dict(num_splits=0), r"num_splits must be an integer >= 1"),
    (dict(num_layers=2, num_splits=3), r"num_layers \(2\) must be >= num_splits \(3\)"),
    (dict(activation="swishy"), r"unknown activation 'swishy'; expected one of"),
    (dict(activation=42), r"activation must be a name"),
    (dict(dropout=1.0), r"dropout must be a probability in \[0, 1\)"),
    (dict(layer_width=2.5), r"layer_width must be an integer >= 1, got 2.5"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    args = dict(in_features=10, out_features=3, layer_width=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        SpinalLinear(args.pop("in_features"), args.pop("out_features"), **args)


def test_wrong_input_width_raises_value_error():
    layer = SpinalLinear(10, 3, layer_width=4)
    with pytest.raises(ValueError, match=r"expected input of shape \(\*, 10\), got \[2, 11\]"):
        layer(torch.randn(2, 11))


def test_load_per_layer_parameters_checks_shapes():
    layer = SpinalLinear(10, 3, layer_width=4, num_layers=2)
    with pytest.raises(ValueError, match="expected 2"):
        layer.load_per_layer_parameters([])
    with pytest.raises(ValueError, match=r"hidden layer 0: expected weight of shape \(4, 5\)"):
        layer.load_per_layer_parameters([(torch.zeros(4, 6), torch.zeros(4)), (torch.zeros(4, 9), torch.zeros(4))])


def test_dropout_branch_equals_the_reference_under_every_shared_mask():
    """Training-mode outputs are exactly those of the authors' Dropout -> Linear -> ReLU head under one
    realised mask, with kept values scaled by 1/(1-p) at every dropout (hidden inputs, the chain, the output).

    Only the public forward is used: every parameter is 0.5, the input is all ones, so the reference
    value of each of the 2^9 masks is a short sum; p = 0.3 makes wrong scalings land off that set.
    """
    import itertools

    p, s = 0.3, 1 / 0.7
    layer = SpinalLinear(3, 1, layer_width=1, num_layers=2, num_splits=1, dropout=p, bias=False).double()
    with torch.no_grad():
        for prm in layer.parameters():
            prm.fill_(0.5)
    x = torch.ones(1, 3, dtype=torch.double)
    layer.eval()
    assert layer(x).item() == pytest.approx(0.5 * (1.5 + 0.5 * (3 + 1.5)))  # no mask, no scaling
    reference = set()
    for m in itertools.product((0, 1), repeat=9):  # layer 1: 3 inputs; layer 2: 3 inputs + chain; output: 2
        h1 = 0.5 * s * sum(m[0:3])
        h2 = 0.5 * s * (sum(m[3:6]) + m[6] * h1)
        reference.add(round(0.5 * s * (m[7] * h1 + m[8] * h2), 9))
    layer.train()
    seen = set()
    for seed in range(300):
        torch.manual_seed(seed)
        value = round(layer(x).item(), 9)
        assert value in reference, f"seed {seed}: {value} is not the reference output of any mask"
        seen.add(value)
    assert len(seen) > 20  # masks vary, and many of them were checked
