"""Export a trained checkpoint for deployment: ONNX, TorchScript or a torch.export program (.pt2).

The exported program takes float32 images ``(N, C, H, W)`` with values in [0, 1] (what
``torchvision.transforms.ToTensor`` gives) and returns logits ``(N, classes)``; the dataset's
normalisation, resizing and channel expansion are part of the program. The batch size is dynamic.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from spinalnet.data import DeviceTransform
from spinalnet.errors import UsageError
from spinalnet.training.module import model_input
from spinalnet.training.run_files import atomic_write_text

FORMATS = ("onnx", "torchscript", "pt2")


class InferenceModel(nn.Module):
    """[0, 1] images -> the training-time preprocessing (without augmentation) -> logits."""

    def __init__(self, model: nn.Module, preprocess: DeviceTransform) -> None:
        super().__init__()
        self.preprocess, self.model = preprocess, model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(self.preprocess(x))


def inference_model(checkpoint: Path) -> tuple[InferenceModel, tuple[int, int, int]]:
    """The checkpoint's model wrapped with its preprocessing, and the input shape (C, H, W) it takes."""
    from spinalnet.training.evaluate import load_classifier

    module = load_classifier(checkpoint)
    facts = module.hparams["facts"]
    channels, size = model_input(module.config, facts)
    preprocess = DeviceTransform(tuple(facts["mean"]), tuple(facts["std"]), size=size, channels=channels)
    model = module.model.to(memory_format=torch.contiguous_format)
    wrapper = InferenceModel(model, preprocess).eval()
    return wrapper, (facts["channels"], *facts["image_size"])


def export(checkpoint: Path, fmt: str, output: Path) -> dict:
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {FORMATS}, got {fmt!r}")
    model, shape = inference_model(checkpoint)
    example = torch.rand(2, *shape)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if fmt == "torchscript":
            torch.jit.save(torch.jit.trace(model, example), str(tmp))
        elif fmt == "pt2":
            torch.export.save(torch.export.export(model, (example,), dynamic_shapes={"x": {0: batch}}), str(tmp))
        else:
            try:
                torch.onnx.export(model, (example,), str(tmp), input_names=["images"], output_names=["logits"],
                                  dynamic_shapes={"x": {0: batch}}, dynamo=True)
            except ImportError as err:
                raise UsageError(f"ONNX export needs onnx and onnxscript: pip install 'spinalnet[onnx]' ({err})") from None
    tmp.replace(output)
    return {"checkpoint": str(checkpoint), "format": fmt, "output": str(output), "input_shape": ["N", *shape]}
