"""The fused training step's switch: ``fused=None | True | False``, ``SPINALNET_FUSED=0``, automatic mode only
where it was measured (the CPU), and a first-use check that turns the automatic mode off when torch's private
API is missing or computes something else."""

from __future__ import annotations

import types
import warnings

import pytest
import torch

from spinalnet import SpinalLinear
from spinalnet.layers import fused as fused_module
from spinalnet.layers import spinal_linear


def _node(y: torch.Tensor) -> str:
    return y.grad_fn.name()


def _step(layer: SpinalLinear, seed: int = 0) -> list[torch.Tensor]:
    """Output, input gradient and parameter gradients of one training step from ``seed``."""
    torch.manual_seed(seed)
    x = torch.randn(6, 11, dtype=torch.double, requires_grad=True)
    y = layer(x)
    y.backward(torch.arange(y.numel(), dtype=torch.double).view_as(y))
    return [y.detach(), x.grad, *(p.grad for p in layer.parameters())]


def _pair(**kwargs) -> tuple[SpinalLinear, SpinalLinear]:
    torch.manual_seed(1)
    fused = SpinalLinear(11, 4, layer_width=5, num_layers=4, fused=True, **kwargs).double()
    plain = SpinalLinear(11, 4, layer_width=5, num_layers=4, fused=False, **kwargs).double()
    plain.load_state_dict(fused.state_dict())
    return fused, plain


@pytest.fixture
def fresh_check():
    """Forget the first-use check and the private API lookup, before and after the test."""
    def reset():
        spinal_linear._FUSED_CHECK.clear()
        fused_module._API.clear()
    reset()
    yield
    reset()


def test_fused_false_and_the_environment_variable_take_the_autograd_path(monkeypatch):
    x = torch.randn(4, 11)
    assert _node(SpinalLinear(11, 4, layer_width=5)(x)) == "FusedSpinalBackward"  # automatic, on the CPU
    assert _node(SpinalLinear(11, 4, layer_width=5, fused=False)(x)) != "FusedSpinalBackward"
    monkeypatch.setenv("SPINALNET_FUSED", "0")
    for fused in (None, True):
        layer = SpinalLinear(11, 4, layer_width=5, fused=fused)
        assert _node(layer(x)) != "FusedSpinalBackward"
        assert layer.training_path == "autograd" and "SPINALNET_FUSED=0" in layer.describe()


@pytest.mark.parametrize("batch_norm", [False, True])
def test_both_paths_give_the_same_outputs_and_gradients_at_one_seed_with_dropout(batch_norm):
    fused, plain = _pair(dropout=0.3, batch_norm=batch_norm)
    for step in range(3):  # masks drawn from the same generator state on both paths, step after step
        a, b = _step(fused, step), _step(plain, step)
        for left, right in zip(a, b):
            torch.testing.assert_close(left, right, rtol=0, atol=1e-12)
        fused.zero_grad(), plain.zero_grad()
    dropped = _step(fused, 99)[0]
    assert not torch.equal(dropped, _step(fused, 98)[0])  # dropout is on: another seed, other masks


def test_automatic_mode_is_off_on_accelerators_until_measured_there():
    auto, forced, off = (SpinalLinear(11, 4, layer_width=5, fused=f) for f in (None, True, False))
    assert spinal_linear.FUSED_DEVICES == ("cpu",)
    assert auto._fused_on("cpu") and not auto._fused_on("cuda") and not auto._fused_on("mps")
    assert forced._fused_on("cuda") and not off._fused_on("cpu")
    assert auto.training_path == "fused" and off.training_path == "autograd"
    assert "training step: fused on cpu" in auto.describe()
    with torch.device("meta"):
        assert "automatic (fused on the CPU, autograd elsewhere)" in SpinalLinear(11, 4, layer_width=5).describe()


def test_fused_must_be_none_true_or_false():
    with pytest.raises(ValueError, match="fused must be True or False"):
        SpinalLinear(11, 4, layer_width=5, fused="yes")
    assert SpinalLinear(11, 4, layer_width=5, fused=False).options()["fused"] is False
    assert "fused=False" in repr(SpinalLinear(11, 4, layer_width=5, fused=False))


def test_a_missing_private_op_turns_the_automatic_mode_off_with_one_warning(fresh_check, monkeypatch):
    def missing(self):
        raise AttributeError("'_OpNamespace' 'aten' object has no attribute 'threshold_backward'")

    monkeypatch.setattr(fused_module.PrivateAPI, "__init__", missing)
    x = torch.randn(4, 11)
    layer = SpinalLinear(11, 4, layer_width=5)
    with pytest.warns(RuntimeWarning, match="fused training step is off in this process.*threshold_backward"):
        y = layer(x)
    assert _node(y) != "FusedSpinalBackward"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process, not once per step
        layer(x)
    with pytest.raises(RuntimeError, match=r"fused=True.*cannot run with this torch.*threshold_backward"):
        SpinalLinear(11, 4, layer_width=5, fused=True)(x)


def test_a_changed_private_op_is_caught_by_the_first_use_check(fresh_check, monkeypatch):
    real = fused_module.PrivateAPI.__init__

    def changed(self):
        real(self)
        self.threshold_backward = lambda grad, out, threshold: grad * 2  # computes something else now

    monkeypatch.setattr(fused_module.PrivateAPI, "__init__", changed)
    layer = SpinalLinear(11, 4, layer_width=5)
    with pytest.warns(RuntimeWarning, match="differ from the autograd path"):
        y = layer(torch.randn(4, 11))
    assert _node(y) != "FusedSpinalBackward" and layer.training_path == "autograd"


def test_a_missing_hook_registry_counts_as_hooks_and_turns_the_automatic_mode_off(fresh_check, monkeypatch):
    """Hooks are found in torch's private registries; a torch without one must still run every hook, so the
    layer calls its modules, and the first-use check says what is missing."""
    monkeypatch.setattr(fused_module, "module_globals", types.SimpleNamespace())  # no global hook registries
    assert fused_module.PrivateAPI.has_hooks([])
    layer = SpinalLinear(11, 4, layer_width=5)
    with pytest.warns(RuntimeWarning, match="fused training step is off in this process.*_global_forward_hooks"):
        y = layer(torch.randn(4, 11))
    assert _node(y) != "FusedSpinalBackward" and layer.training_path == "autograd"


def test_the_first_use_check_leaves_the_random_stream_alone(fresh_check):
    """A seeded run draws the same numbers whether or not its first step ran the check."""
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    assert spinal_linear._fused_step_works(required=False) and spinal_linear._FUSED_CHECK["ok"]
    assert torch.equal(torch.rand(3), expected)
