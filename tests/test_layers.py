"""SpinalLinear against the per-layer reference: outputs, gradients, sizes, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reference import ReferenceSpinal
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
    return fast, ReferenceSpinal.like(fast)


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
    ref_grads = ref.spinal_grads()
    assert set(ref_grads) == {name for name, _ in fast.named_parameters()}
    for name, param in fast.named_parameters():
        torch.testing.assert_close(param.grad, ref_grads[name], atol=1e-5, rtol=0, msg=name)
    if bn and training:  # running statistics advance identically
        for i, seq in enumerate(ref.hidden()):
            norm = ReferenceSpinal._find(seq, nn.BatchNorm1d)
            torch.testing.assert_close(fast.layers[i].norm.running_mean, norm.running_mean)
            torch.testing.assert_close(fast.layers[i].norm.running_var, norm.running_var)


def test_float32_matches_reference_within_1e5():
    torch.manual_seed(1)
    fast = SpinalLinear(2048, 100, layer_width=512, num_layers=4)
    ref = ReferenceSpinal.like(fast)
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
            for hidden in layer.layers:
                hidden.input.weight.fill_(1.0)
        layer.train()
        # Layer k's input weight gradient is (its dropped chunk) * (its upstream grad).
        layer(torch.ones(1, 1000)).sum().backward()
        kept0, kept1 = (hidden.input.weight.grad[0] != 0 for hidden in layer.layers)
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
    for name, param in layer.named_parameters():
        assert param.grad.abs().sum() > 0, f"{name} got no gradient"


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


def test_state_dict_is_per_layer_with_2d_weights_and_1d_biases():
    layer = SpinalLinear(256, 10, layer_width=128, num_layers=4, batch_norm=True)
    state = layer.state_dict()
    norm = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    expected = []
    for i in range(4):
        expected += [f"layers.{i}.input.weight", f"layers.{i}.input.bias"]
        expected += [f"layers.{i}.chain.weight"] if i else []
        expected += [f"layers.{i}.norm.{n}" for n in norm]
    assert list(state) == expected + ["output.weight", "output.bias"]
    for name, value in layer.named_parameters():
        assert value.dim() == (2 if name.endswith("weight") and ".norm." not in name else 1), name
    assert state["layers.0.input.weight"].shape == (128, 128) and state["layers.3.chain.weight"].shape == (128, 128)
    assert state["output.weight"].shape == (10, 512)


def test_deeper_head_loads_the_hidden_layers_it_shares():
    torch.manual_seed(0)
    small = SpinalLinear(13, 3, layer_width=4, num_layers=3, num_splits=3, batch_norm=True)
    deep = SpinalLinear(13, 5, layer_width=4, num_layers=6, num_splits=3, batch_norm=True)
    shared = {k: v for k, v in small.state_dict().items() if k.startswith("layers.")}
    missing, unexpected = deep.load_state_dict(shared, strict=False)
    assert not unexpected and all(k.startswith(("layers.3.", "layers.4.", "layers.5.", "output.")) for k in missing)
    for name, value in shared.items():
        torch.testing.assert_close(deep.state_dict()[name], value)
    # and back: the shallow head takes the deep one's first layers
    missing, unexpected = small.load_state_dict(
        {k: v for k, v in deep.state_dict().items() if k.startswith(("layers.0.", "layers.1.", "layers.2."))},
        strict=False)
    assert missing == ["output.weight", "output.bias"] and not unexpected


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
    (dict(layer_width=2.5), r"layer_width must be an integer >= 1, got 2.5 \(float\)"),
    (dict(batch_norm="False"), r"batch_norm must be True or False, got 'False' \(str\)"),
    (dict(bias=None), r"bias must be True or False, got None"),
    (dict(in_features=torch.tensor(10)), r"in_features must be an integer >= 1, got tensor\(10\) \(Tensor\)"),
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


@pytest.mark.parametrize("x", [torch.tensor(1.0), torch.zeros(2, 0), torch.zeros(3, 9)], ids=["0-d", "empty", "short"])
def test_wrong_input_shapes_raise_value_error_naming_the_last_dimension(x):
    layer = SpinalLinear(10, 3, layer_width=4)
    with pytest.raises(ValueError, match=r"SpinalLinear expected input of shape \(\*, 10\), got \["):
        layer(x)


@pytest.mark.parametrize("kwargs,match", [
    (dict(in_features=1, num_splits=2), r"in_features \(1\) must be >= num_splits \(2\)"),
    (dict(num_layers=2, num_splits=3), r"num_layers \(2\) must be >= num_splits \(3\)"),
    (dict(layer_width=0), r"layer_width must be an integer >= 1, got 0"),
    (dict(out_features=2.5), r"out_features must be an integer >= 1, got 2.5"),
])
def test_count_params_refuses_what_the_constructor_refuses(kwargs, match):
    args = dict(in_features=10, out_features=3, layer_width=4)
    args.update(kwargs)
    in_f, out_f = args.pop("in_features"), args.pop("out_features")
    with pytest.raises(ValueError, match=match):
        SpinalLinear.count_params(in_f, out_f, **args)
    with pytest.raises(ValueError, match=match):
        SpinalLinear(in_f, out_f, **args)


@pytest.mark.parametrize("in_features, width", [(12, 4), (2048, 64)], ids=["grouped", "layer-by-layer"])
def test_inference_reads_the_parameters_as_they_are(in_features, width):
    """No inference cache: every way of changing a weight in place shows in the next no-grad forward,
    including ``p.data`` updates (an EMA or mean teacher) and parameters that are views of one flat vector."""
    torch.manual_seed(0)
    layer = SpinalLinear(in_features, 3, layer_width=width, num_layers=4).eval()
    x = torch.randn(5, in_features)
    ways = [lambda: layer.layers[2].input.weight.add_(1.0),  # as an optimizer step does
            lambda: layer.layers[1].input.weight.data.mul_(0.5),
            lambda: layer.layers[3].input.bias.data.fill_(2.0)]
    for change in ways:
        with torch.no_grad():
            before = layer(x)
            change()
            after = layer(x)
        assert not torch.allclose(after, before)
        torch.testing.assert_close(after, ReferenceSpinal.like(layer).eval()(x))
    flat = torch.nn.utils.parameters_to_vector(layer.parameters())
    torch.nn.utils.vector_to_parameters(flat, layer.parameters())  # every parameter now a view of ``flat``
    with torch.no_grad():
        before = layer(x)
        flat.mul_(0.9)
        after = layer(x)
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, ReferenceSpinal.like(layer).eval()(x))


def test_numpy_scalars_are_accepted_as_plain_numbers():
    import numpy as np

    layer = SpinalLinear(np.int64(10), np.int32(3), layer_width=np.int64(4), dropout=np.float32(0.5),
                         batch_norm=np.bool_(True))
    assert (type(layer.in_features), layer.in_features, layer.dropout, layer.batch_norm) == (int, 10, 0.5, True)
    assert SpinalLinear.count_params(np.int64(10), 3, layer_width=4) == SpinalLinear(10, 3, layer_width=4).num_params


def test_an_in_place_activation_computes_the_same_on_every_path():
    """The first hidden layer reads a view of the grouped product: an in-place ReLU must not write into it
    (a forward hook on the output Linear sends the step to the autograd path)."""
    torch.manual_seed(0)
    layer = SpinalLinear(12, 3, layer_width=4, num_layers=4, activation=nn.ReLU(inplace=True), dropout=0.2).double()
    ref = ReferenceSpinal.like(layer)
    layer.output.register_forward_hook(lambda *_: None)
    x = torch.randn(5, 12, dtype=torch.double)
    layer.eval(), ref.eval()
    torch.testing.assert_close(layer(x), ref(x), atol=1e-12, rtol=0)
    layer.train()
    y = layer(x)
    assert y.grad_fn.name() != "FusedSpinalBackward"
    y.sum().backward()
    assert all(p.grad is not None for p in layer.parameters())
