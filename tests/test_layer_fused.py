"""SpinalLinear's one-node training step (spinalnet.layers.fused): every activation, batch norm and
dropout against the per-layer reference and against SpinalLinear's own autograd path."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from reference import ReferenceSpinal
from spinalnet import SpinalLinear
from spinalnet.layers.activations import ACTIVATIONS


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


@pytest.mark.slow
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


def _twins(**kwargs) -> tuple[SpinalLinear, SpinalLinear]:
    """The same block twice, in float64: one takes the fused step, the other (UnlistedReLU) the autograd path."""
    torch.manual_seed(0)
    fused = SpinalLinear(11, 3, layer_width=4, num_layers=4, activation=nn.ReLU, **kwargs).double()
    plain = SpinalLinear(11, 3, layer_width=4, num_layers=4, activation=UnlistedReLU, **kwargs).double()
    plain.load_state_dict(fused.state_dict())
    return fused, plain


def _step(module: nn.Module, x: torch.Tensor, between=lambda m: None, seed: int = 0):
    """Forward, ``between(module)``, backward; the output's node, its value, and every gradient."""
    module.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    y = module(x)
    between(module)
    y.pow(2).sum().backward()
    return _node(y), y.detach(), {n: p.grad for n, p in module.named_parameters()}


def _assert_same_steps(fused_step, plain_step) -> None:
    (node_f, y_f, grads_f), (node_p, y_p, grads_p) = fused_step, plain_step
    assert node_f == "FusedSpinalBackward" != node_p
    torch.testing.assert_close(y_f, y_p, atol=1e-12, rtol=0)
    for name in grads_f:
        if grads_p[name] is None:
            assert grads_f[name] is None, name
        else:
            torch.testing.assert_close(grads_f[name], grads_p[name], atol=1e-12, rtol=0, msg=name)


@pytest.mark.parametrize("forward_mode", ["train", "eval"])
def test_the_backward_uses_the_forward_s_batch_norm_mode(forward_mode):
    """Switching train/eval between forward and backward must not change that step's gradients."""
    fused, plain = _twins(batch_norm=True)
    x = torch.randn(6, 11, dtype=torch.double)
    switch = (lambda m: m.eval()) if forward_mode == "train" else (lambda m: m.train())
    steps = []
    for module in (fused, plain):
        module.train(forward_mode == "train")
        for layer in module.layers:  # statistics away from their defaults
            layer.norm.running_var.fill_(2.0)
        steps.append(_step(module, x, switch))
    _assert_same_steps(*steps)


def test_running_statistics_changed_before_an_eval_backward_are_refused_as_autograd_does():
    for module in _twins(batch_norm=True):
        module.eval()
        y = module(torch.randn(5, 11, dtype=torch.double))
        module.layers[1].norm.running_var.mul_(2)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


def test_in_place_changes_autograd_allows_are_allowed():
    """Biases and a dropped-out input are not needed by the backward, so changing them is allowed."""
    fused, plain = _twins(dropout=0.3, batch_norm=True)
    x0 = torch.randn(6, 11, dtype=torch.double)
    steps = []
    for module in (fused, plain):
        x = x0.clone()

        def change(module):
            with torch.no_grad():
                module.output.bias.add_(1), module.layers[1].input.bias.add_(1), module.layers[2].norm.bias.add_(1)
                x.add_(1)

        steps.append(_step(module, x, change))
    _assert_same_steps(*steps)


def test_backward_hooks_on_inner_modules_run():
    for target in ("output", "act", "norm"):
        fused, _ = _twins(batch_norm=True)
        module = fused.output if target == "output" else getattr(fused.layers[1], target)
        calls = []
        module.register_full_backward_hook(lambda *_: calls.append(1))
        fused(torch.randn(5, 11, dtype=torch.double)).sum().backward()
        assert calls == [1], target


def test_tied_weights_get_one_gradient_in_a_second_derivative():
    """One Parameter used by two layers: its gradient with ``create_graph`` is counted once, as autograd does."""
    x = torch.randn(6, 11, dtype=torch.double)
    grads = []
    for module in _twins():
        module.layers[3].chain.weight = module.layers[2].chain.weight
        y = module(x)
        (grad,) = torch.autograd.grad(y.pow(2).sum(), module.layers[2].chain.weight, create_graph=True)
        assert grad.requires_grad
        grads.append(grad.detach())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-12, rtol=0)


def test_a_second_derivative_after_an_in_place_parameter_change_is_refused():
    fused, _ = _twins()
    x = torch.randn(6, 11, dtype=torch.double, requires_grad=True)
    y = fused(x)
    with torch.no_grad():
        fused.output.bias.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)


def test_forward_mode_ad_takes_the_autograd_path():
    fused, plain = _twins()
    x, tangent = torch.randn(5, 11, dtype=torch.double), torch.randn(5, 11, dtype=torch.double)
    with torch.autograd.forward_ad.dual_level():
        outs = [torch.autograd.forward_ad.unpack_dual(m(torch.autograd.forward_ad.make_dual(x, tangent)))
                for m in (fused, plain)]
    torch.testing.assert_close(outs[0].tangent, outs[1].tangent, atol=1e-12, rtol=0)


def test_mixed_norms_frozen_parameters_and_options_changed_between_forward_and_backward():
    """Batch norm on some layers only, a frozen output Linear, and a LeakyReLU slope changed after the
    forward: the same gradients (None for the frozen ones) as the autograd path."""

    class UnlistedLeakyReLU(nn.LeakyReLU):
        pass

    steps = []
    for activation in (nn.LeakyReLU, UnlistedLeakyReLU):
        torch.manual_seed(0)
        module = SpinalLinear(11, 3, layer_width=4, num_layers=4, batch_norm=True, activation=activation).double()
        module.layers[2].norm = None
        module.output.requires_grad_(False)
        x = torch.randn(6, 11, dtype=torch.double)
        steps.append(_step(module, x, lambda m: setattr(m.layers[1].act, "negative_slope", 0.5)))
    (node_f, _, grads_f), (node_p, _, _) = steps
    assert grads_f["output.weight"] is None and grads_f["output.bias"] is None
    _assert_same_steps(*steps)


def test_norms_without_a_batch_counter_take_the_autograd_path():
    fused, plain = _twins(batch_norm=True)
    x = torch.randn(6, 11, dtype=torch.double)
    fused(x).sum().backward()  # builds and caches the fused plan
    fused.layers[1].norm.num_batches_tracked = None
    y = fused(x)
    assert _node(y) != "FusedSpinalBackward"
    y.sum().backward()


@pytest.mark.parametrize("forward_mode", ["train", "eval"])
def test_a_second_derivative_uses_the_forward_s_batch_norm_mode(forward_mode):
    x0 = torch.randn(6, 11, dtype=torch.double)
    steps = []
    for module in _twins(batch_norm=True):
        module.train(forward_mode == "train")
        x = x0.clone().requires_grad_()
        y = module(x)
        module.train(forward_mode != "train")
        (grad_x,) = torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)
        grad_x.pow(2).sum().backward()
        steps.append((_node(y), grad_x.detach(), {n: p.grad for n, p in module.named_parameters()}))
    _assert_same_steps(*steps)


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "bn"])
def test_an_empty_batch_gives_zero_gradients(batch_norm):
    """An empty batch (the last one of a filtered dataset) crashed the process in eval mode with batch norm
    (SIGFPE in the batch-norm backward kernel): it takes the autograd path, as nn.Linear would give zeros."""
    torch.manual_seed(0)
    layer = SpinalLinear(12, 3, layer_width=4, num_layers=3, batch_norm=batch_norm).train(not batch_norm)
    x = torch.zeros(0, 12, requires_grad=True)
    y = layer(x)
    assert y.shape == (0, 3)
    y.sum().backward()
    assert x.grad.shape == (0, 12)
    for name, p in layer.named_parameters():
        assert p.grad is not None and not p.grad.any(), name


def test_a_meta_device_forward_infers_shapes_with_autograd_on():
    with torch.device("meta"):
        layer = SpinalLinear(12, 3, layer_width=4, num_layers=3, dropout=0.5, batch_norm=True)
    y = layer(torch.empty(5, 2, 12, device="meta", requires_grad=True))
    assert y.shape == (5, 2, 3) and y.is_meta


def test_features_made_under_inference_mode_train_a_head_with_dropout():
    """Features from a frozen backbone run under inference_mode: what Dropout + Linear accepts, so does the
    fused step's module (it failed reading the input's version counter)."""
    torch.manual_seed(0)
    layer = SpinalLinear(12, 3, layer_width=4, num_layers=3, dropout=0.5)
    with torch.inference_mode():
        feats = torch.randn(8, 12)
    layer(feats).pow(2).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode, torch.enable_grad])
def test_an_ensemble_runs_under_vmap_of_functional_call(mode):
    """torch.func ensembling (stacked parameters, one vmap): each member's output is its own module's."""
    from torch.func import functional_call, stack_module_state, vmap

    torch.manual_seed(0)
    members = [SpinalLinear(12, 3, layer_width=4, num_layers=4).eval() for _ in range(3)]
    params, buffers = stack_module_state(members)
    x = torch.randn(5, 12)
    with mode():
        ys = vmap(lambda p, b: functional_call(members[0], (p, b), (x,)))(params, buffers)
    for k, member in enumerate(members):
        torch.testing.assert_close(ys[k], member(x).detach(), atol=1e-6, rtol=0)


def test_hooks_on_the_hidden_linears_run_pruning_and_spectral_norm_train():
    """Pruning, old-style weight_norm and spectral_norm compute a Linear's weight in a forward pre-hook: the
    hidden Linears are then called, not read (pruning raised on the second step; spectral_norm's weight was
    never normalised and never trained)."""
    from torch.nn.utils import prune

    torch.manual_seed(0)
    layer = SpinalLinear(12, 3, layer_width=4, num_layers=3).double()
    prune.l1_unstructured(layer.layers[1].input, "weight", amount=0.5)
    torch.nn.utils.spectral_norm(layer.layers[2].chain)
    seen = []
    layer.layers[0].input.register_forward_hook(lambda _m, args, _out: seen.append(tuple(args[0].shape)))
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    x = torch.randn(6, 12, dtype=torch.double)
    for _ in range(2):
        opt.zero_grad()
        y = layer(x)
        assert _node(y) != "FusedSpinalBackward"
        y.pow(2).sum().backward()
        opt.step()
    assert seen == [(6, 6), (6, 6)]
    assert layer.layers[1].input.weight_orig.grad.abs().sum() > 0 and layer.layers[2].chain.weight_orig.grad.abs().sum() > 0
    assert (layer.layers[1].input.weight == 0).sum() == 12  # the pruned half stays pruned
    layer.eval()
    with torch.no_grad():
        y = layer(x)  # the pre-hooks set each weight from its original, as they do on nn.Linear
        chain = layer.layers[2].chain
        assert torch.equal(chain.weight, chain.weight_orig / torch.dot(chain.weight_u, chain.weight_orig @ chain.weight_v))
        state = {k: v for k, v in layer.state_dict().items() if not k.endswith(("_orig", "_mask", "_u", "_v"))}
        state["layers.1.input.weight"], state["layers.2.chain.weight"] = layer.layers[1].input.weight, chain.weight
        plain = SpinalLinear(12, 3, layer_width=4, num_layers=3).double()
        plain.load_state_dict(state)
        torch.testing.assert_close(y, ReferenceSpinal.like(plain).eval()(x), atol=1e-12, rtol=0)


def test_a_hook_on_a_hidden_layer_runs_and_changes_nothing_else():
    """Hooks on ``layers[i]`` see that layer's inputs after dropout; the step they force computes the same
    outputs, gradients and running statistics with the same dropout masks as the fused step, so an
    observing hook does not change a seeded run."""
    fused, hooked = _twins(dropout=0.3, batch_norm=True)
    seen = []
    hooked.layers[2].register_forward_hook(lambda _m, args, out: seen.append((args[0].shape, args[1].shape, out.shape)))
    x = torch.randn(7, 11, dtype=torch.double)
    _assert_same_steps(_step(fused, x, seed=3), _step(hooked, x, seed=3))
    assert seen == [(torch.Size([7, 6]), torch.Size([7, 4]), torch.Size([7, 4]))]  # chunk 0 of 11 is 6 wide
    for a, b in zip(fused.buffers(), hooked.buffers()):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
