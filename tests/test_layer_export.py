"""SpinalLinear leaves eager PyTorch: TorchScript, torch.export, ONNX and torch.compile."""

from __future__ import annotations

import warnings

import pytest
import torch

from spinalnet import SpinalLinear


def _layer(**kwargs) -> SpinalLinear:
    torch.manual_seed(0)
    args = dict(layer_width=6, num_layers=5, num_splits=3, batch_norm=True, dropout=0.1)
    args.update(kwargs)
    return SpinalLinear(20, 4, **args).eval()


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_torchscript_script_matches_eager(bias, training):
    layer = _layer(bias=bias, dropout=0.0).train(training)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream, still supported
        scripted = torch.jit.script(layer)
    x = torch.randn(7, 3, 20)
    torch.testing.assert_close(scripted(x), layer(x), atol=1e-6, rtol=0)


def test_torch_export_with_dynamic_batch():
    layer = _layer()
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(layer, (torch.randn(8, 20),), dynamic_shapes={"x": {0: batch}})
    for n in (1, 3, 33):
        x = torch.randn(n, 20)
        torch.testing.assert_close(program.module()(x), layer(x), atol=1e-6, rtol=0)


def test_onnx_export_runs_in_onnxruntime_with_dynamic_batch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    layer = _layer()
    path = tmp_path / "spinal.onnx"
    torch.onnx.export(layer, (torch.randn(8, 20),), str(path), input_names=["x"], output_names=["y"],
                      dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, dynamo=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (2, 17):
        x = torch.randn(n, 20)
        (y,) = session.run(None, {"x": x.numpy()})
        torch.testing.assert_close(torch.from_numpy(y), layer(x), atol=1e-5, rtol=0)


def test_torch_compile_forward_and_backward_match_eager():
    layer = _layer(dropout=0.0).train()
    compiled = torch.compile(layer)
    x = torch.randn(16, 20)
    y_eager = layer(x)
    y_eager.sum().backward()
    grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    # Running statistics moved once already; reset so both passes see the same state.
    for hidden in layer.layers:
        hidden.norm.reset_running_stats()
    y_compiled = compiled(x)
    y_compiled.sum().backward()
    torch.testing.assert_close(y_compiled, y_eager, atol=1e-5, rtol=1e-5)
    for g, p in zip(grads, layer.parameters()):
        torch.testing.assert_close(p.grad, g, atol=1e-5, rtol=1e-5)


def test_torchscript_trace_under_no_grad_reads_parameters_not_copies():
    layer = _layer(dropout=0.0)
    x = torch.randn(4, 20)
    with torch.no_grad():
        layer(x)  # an eval forward first, as before exporting a trained model
        traced = torch.jit.trace(layer, (x,))
        with torch.no_grad():
            layer.layers[0].input.weight.mul_(2.0)
        torch.testing.assert_close(traced(x), layer(x), atol=1e-6, rtol=0)
