"""SpinalLinear's one-node training step (spinalnet.spinal_function): every activation, batch norm and
dropout against the per-layer reference and against SpinalLinear's own autograd path."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from reference import ReferenceSpinal
from spinalnet import SpinalLinear
from spinalnet.activations import ACTIVATIONS


class UnlistedReLU(nn.ReLU):
    """A ReLU the fused step does not know: SpinalLinear computes it with autograd."""


class UnlistedTanh(nn.Tanh):
    """A Tanh the fused step does not know (a second derivative that is not zero)."""


def _node(y: torch.Tensor) -> str:
    """The autograd node that computed ``y``, looking through reshapes."""
    fn = y.grad_fn
    while fn.name() in ("ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0"):
        fn = fn.next_functions[0][0]
    return fn.name()


def _grads(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in module.named_parameters()}


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "bn"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_every_activation_matches_the_reference(activation, batch_norm, training):
    torch.manual_seed(0)
    fast = SpinalLinear(13, 3, layer_width=5, num_layers=5, num_splits=2, activation=ACTIVATIONS[activation],
                        batch_norm=batch_norm)
    if batch_norm:  # statistics away from their defaults, so that eval mode uses them
        for layer in fast.layers:
            layer.norm.running_mean.uniform_(-1, 1), layer.norm.running_var.uniform_(0.5, 2)
    fast.double()
    ref = ReferenceSpinal.like(fast)
    fast.train(training), ref.train(training)
    x = torch.randn(9, 13, dtype=torch.double)
    xf, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    yf, yr = fast(xf), ref(xr)
    assert _node(yf) == "FusedSpinalBackward"  # the path under test
    torch.testing.assert_close(yf, yr, atol=1e-10, rtol=0)
    g = torch.randn_like(yf)
    yf.backward(g), yr.backward(g)
    torch.testing.assert_close(xf.grad, xr.grad, atol=1e-10, rtol=0)
    ref_grads = ref.spinal_grads()
    for name, grad in _grads(fast).items():
        torch.testing.assert_close(grad, ref_grads[name], atol=1e-10, rtol=0, msg=name)
    if batch_norm:
        for i, seq in enumerate(ref.hidden()):
            norm = ReferenceSpinal._find(seq, nn.BatchNorm1d)
            torch.testing.assert_close(fast.layers[i].norm.running_var, norm.running_var, atol=1e-12, rtol=0)
            assert int(fast.layers[i].norm.num_batches_tracked) == int(norm.num_batches_tracked)


@pytest.mark.parametrize("bias", [True, False])
def test_fused_step_equals_the_autograd_path_under_dropout_and_batch_norm(bias):
    """Same seed, same masks: outputs, every gradient and the running statistics agree over three steps."""
    kwargs = dict(layer_width=6, num_layers=5, num_splits=3, dropout=0.4, batch_norm=True, bias=bias)
    torch.manual_seed(0)
    fused = SpinalLinear(17, 4, activation=nn.ReLU, **kwargs).double()
    plain = SpinalLinear(17, 4, activation=UnlistedReLU, **kwargs).double()
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(2, 8, 17, dtype=torch.double)
    for step in range(3):
        outs = []
        for module in (fused, plain):
            module.zero_grad()
            xi = x.clone().requires_grad_()
            torch.manual_seed(step)
            y = module(xi)
            y.pow(2).sum().backward()
            outs.append((y, xi.grad, _grads(module), module.layers[2].norm.running_mean.clone()))
        (yf, gxf, gf, rf), (yp, gxp, gp, rp) = outs
        assert _node(yf) == "FusedSpinalBackward" != _node(yp)
        torch.testing.assert_close(yf, yp, atol=1e-12, rtol=0)
        torch.testing.assert_close(gxf, gxp, atol=1e-12, rtol=0)
        for name in gf:
            torch.testing.assert_close(gf[name], gp[name], atol=1e-12, rtol=0, msg=name)
        torch.testing.assert_close(rf, rp, atol=1e-12, rtol=0)


def test_batch_norm_with_cumulative_average_matches_the_reference():
    torch.manual_seed(0)
    fast = SpinalLinear(10, 2, layer_width=4, num_layers=3, batch_norm=True).double()
    ref = ReferenceSpinal.like(fast)
    for module in (fast, ref):
        for m in module.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.momentum = None  # running statistics are the plain average of all batches
    for _ in range(3):
        x = torch.randn(6, 10, dtype=torch.double)
        fast(x).sum().backward(), ref(x).sum().backward()
    for i, seq in enumerate(ref.hidden()):
        norm = ReferenceSpinal._find(seq, nn.BatchNorm1d)
        torch.testing.assert_close(fast.layers[i].norm.running_mean, norm.running_mean, atol=1e-12, rtol=0)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_second_derivatives_match_the_autograd_path(training):
    """A gradient penalty through dropout and batch norm: the fused step's replayed backward gives the same
    input gradient, the same gradient of the penalty for every parameter and the same running statistics."""
    kwargs = dict(layer_width=5, num_layers=4, num_splits=2, dropout=0.3, batch_norm=True)
    torch.manual_seed(0)
    fused = SpinalLinear(11, 3, activation=nn.Tanh, **kwargs).double().train(training)
    plain = SpinalLinear(11, 3, activation=UnlistedTanh, **kwargs).double().train(training)
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(7, 11, dtype=torch.double)
    results = []
    for module in (fused, plain):
        xi = x.clone().requires_grad_()
        torch.manual_seed(1)
        y = module(xi)
        (grad_x,) = torch.autograd.grad(y.pow(2).sum(), xi, create_graph=True)
        grad_x.pow(2).sum().backward()
        results.append((_node(y), grad_x.detach(), _grads(module), fused.layers[1].norm.running_var.clone()))
    (node_f, gx_f, grads_f, var_f), (node_p, gx_p, grads_p, var_p) = results
    assert node_f == "FusedSpinalBackward" != node_p
    torch.testing.assert_close(gx_f, gx_p, atol=1e-12, rtol=0)
    assert grads_f.keys() == grads_p.keys()
    for name in grads_f:
        assert grads_f[name].abs().sum() > 0, name  # every parameter takes part in the penalty
        torch.testing.assert_close(grads_f[name], grads_p[name], atol=1e-12, rtol=0, msg=name)
    torch.testing.assert_close(var_f, var_p, atol=1e-12, rtol=0)  # the replay did not update them again


def test_second_derivatives_pass_gradgradcheck():
    torch.manual_seed(0)
    layer = SpinalLinear(9, 2, layer_width=3, num_layers=3, activation="gelu", batch_norm=True).double()
    params = list(layer.parameters())
    x = torch.randn(5, 9, dtype=torch.double, requires_grad=True)

    def step(x, *values):
        return torch.func.functional_call(layer, dict(zip([n for n, _ in layer.named_parameters()], values)), (x,))

    assert _node(layer(x)) == "FusedSpinalBackward"
    assert torch.autograd.gradgradcheck(step, (x, *params))


def test_in_place_activation_matches_the_reference():
    torch.manual_seed(0)
    fast = SpinalLinear(12, 3, layer_width=4, num_layers=4, activation=nn.ReLU(inplace=True)).double()
    ref = ReferenceSpinal.like(fast)
    x = torch.randn(5, 12, dtype=torch.double)
    yf, yr = fast(x), ref(x)
    torch.testing.assert_close(yf, yr, atol=1e-10, rtol=0)
    yf.sum().backward(), yr.sum().backward()
    ref_grads = ref.spinal_grads()
    for name, grad in _grads(fast).items():
        torch.testing.assert_close(grad, ref_grads[name], atol=1e-10, rtol=0, msg=name)


def test_whole_module_pickles_after_a_training_step():
    torch.manual_seed(0)
    layer = SpinalLinear(12, 3, layer_width=4, num_layers=4, batch_norm=True)
    layer(torch.randn(5, 12)).sum().backward()
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False).eval()
    x = torch.randn(5, 12)
    torch.testing.assert_close(loaded(x), layer.eval()(x))


def test_forward_hooks_on_inner_modules_still_run():
    torch.manual_seed(0)
    layer = SpinalLinear(12, 3, layer_width=4, num_layers=3)
    seen = []
    layer.output.register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape))
    y = layer(torch.randn(5, 12))
    assert seen == [torch.Size([5, 12])]
    assert _node(y) != "FusedSpinalBackward"


def test_parametrized_weights_take_the_autograd_path():
    """A parametrization (weight norm, spectral norm, ...) replaces a parameter by a computed weight."""

    class Doubled(nn.Module):
        def forward(self, weight):
            return 2 * weight

    torch.manual_seed(0)
    layer = SpinalLinear(8, 2, layer_width=3, num_layers=2).double()
    expected = ReferenceSpinal.like(layer)
    with torch.no_grad():
        for seq in expected.hidden()[:1]:
            ReferenceSpinal._find(seq, nn.Linear).weight.mul_(2)
    torch.nn.utils.parametrize.register_parametrization(layer.layers[0].input, "weight", Doubled())
    x = torch.randn(4, 8, dtype=torch.double)
    y = layer(x)
    assert _node(y) != "FusedSpinalBackward"
    torch.testing.assert_close(y, expected(x), atol=1e-12, rtol=0)
