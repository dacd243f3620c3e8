"""SpinalLinear on a CUDA device: the fused step (``fused=True``) against the autograd path and against the
per-layer reference, with dropout and batch norm, and the dropout masks of one seed on both paths. Skipped
without a GPU (CI has none); run on one with ``python -m pytest tests/test_layer_cuda.py``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reference import ReferenceSpinal
from spinalnet import SpinalLinear
from spinalnet.layers.activations import ACTIVATIONS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CUDA = torch.device("cuda")


def _step(layer: nn.Module, x: torch.Tensor, seed: int) -> tuple[torch.Tensor, ...]:
    """Output, input gradient and every parameter gradient of one training step whose randomness is ``seed``;
    a ``fused=True`` layer must have taken the fused step (it steps aside for hooks, autocast, ...)."""
    layer.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    torch.manual_seed(seed)
    y = layer(x)
    fused = getattr(layer, "fused", None)
    if fused is not None:
        assert (y.grad_fn.name() == "FusedSpinalBackward") == fused, y.grad_fn.name()
    y.backward(torch.linspace(-1, 1, y.numel(), device=y.device, dtype=y.dtype).view_as(y))
    return (y.detach(), x.grad, *(p.grad for p in layer.parameters()))


def _pair(dtype: torch.dtype, **kwargs) -> tuple[SpinalLinear, SpinalLinear]:
    torch.manual_seed(0)
    fused = SpinalLinear(37, 5, layer_width=7, num_layers=5, num_splits=3, fused=True, **kwargs)
    plain = SpinalLinear(37, 5, layer_width=7, num_layers=5, num_splits=3, fused=False, **kwargs)
    plain.load_state_dict(fused.state_dict())
    return fused.to(CUDA, dtype).train(), plain.to(CUDA, dtype).train()


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "bn"])
def test_the_fused_step_equals_the_autograd_path_on_cuda_with_dropout(batch_norm):
    fused, plain = _pair(torch.double, dropout=0.3, batch_norm=batch_norm)
    assert fused.training_path == "fused" and plain.training_path == "autograd"
    x = torch.randn(19, 37, device=CUDA, dtype=torch.double)
    for seed in range(3):  # the same generator state draws the same masks on both paths, step after step
        for a, b in zip(_step(fused, x, seed), _step(plain, x, seed)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
        if batch_norm:
            for f, p in zip(fused.layers, plain.layers):
                torch.testing.assert_close(f.norm.running_mean, p.norm.running_mean, rtol=0, atol=1e-12)
                torch.testing.assert_close(f.norm.running_var, p.norm.running_var, rtol=0, atol=1e-12)
    assert not torch.equal(_step(fused, x, 7)[0], _step(fused, x, 8)[0])  # dropout is on


def test_float32_on_cuda_agrees_with_the_autograd_path_within_rounding():
    fused, plain = _pair(torch.float32, dropout=0.5, batch_norm=True)
    x = torch.randn(512, 37, device=CUDA)
    for a, b in zip(_step(fused, x, 0), _step(plain, x, 0)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_matches_the_per_layer_reference_on_cuda(activation):
    torch.manual_seed(0)
    fast = SpinalLinear(13, 3, layer_width=5, num_layers=5, num_splits=2, activation=ACTIVATIONS[activation],
                        batch_norm=True, fused=True).to(CUDA, torch.double).train()
    ref = ReferenceSpinal.like(fast).to(CUDA).train()
    x = torch.randn(9, 13, device=CUDA, dtype=torch.double)
    xf, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    yf, yr = fast(xf), ref(xr)
    assert yf.grad_fn.name() == "FusedSpinalBackward"
    torch.testing.assert_close(yf, yr, atol=1e-10, rtol=0)
    g = torch.randn_like(yf)
    yf.backward(g), yr.backward(g)
    torch.testing.assert_close(xf.grad, xr.grad, atol=1e-10, rtol=0)
    ref_grads = ref.spinal_grads()
    for name, p in fast.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[name], atol=1e-10, rtol=0, msg=name)


def test_cuda_and_cpu_compute_the_same_function_without_dropout():
    torch.manual_seed(0)
    cpu = SpinalLinear(64, 10, layer_width=16, num_layers=4, batch_norm=True).double().train()
    gpu = SpinalLinear(64, 10, layer_width=16, num_layers=4, batch_norm=True, fused=True).double()
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.to(CUDA).train()
    x = torch.randn(32, 64, dtype=torch.double)
    for a, b in zip(_step(cpu, x, 0), _step(gpu, x.to(CUDA), 0)):
        torch.testing.assert_close(a, b.cpu(), rtol=0, atol=1e-10)
