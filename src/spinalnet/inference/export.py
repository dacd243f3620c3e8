"""Export a trained checkpoint for deployment: ONNX, TorchScript or a torch.export program (.pt2).

The exported program takes float32 images ``(N, C, H, W)`` with values in [0, 1] (what
``torchvision.transforms.ToTensor`` gives) and returns logits ``(N, classes)``; the dataset's
normalisation, resizing and channel expansion are part of the program. The batch size is dynamic.

An ONNX export is one self-contained file. Only a model whose weights do not fit in one protobuf
message (2 GB) is written as two files: ``OUTPUT`` and its weights in ``OUTPUT.data`` beside it
(ONNX's external data format: copy both files together).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from spinalnet.errors import UsageError
from spinalnet.files import atomic_write
from spinalnet.inference.load import inference_model
from spinalnet.rundir import check_output

FORMATS = ("onnx", "torchscript", "pt2")
#: Weights above this size go to ``OUTPUT.data`` (protobuf refuses messages of 2 GiB; keep a margin for the graph).
ONNX_SINGLE_FILE_LIMIT = 2**31 - 2**27


DOC = ("spinalnet classifier: float32 images (N, C, H, W) with values in [0, 1] -> logits (N, classes); the "
       "normalisation is inside. Class names, index by index: the 'classes' metadata (a JSON list); how an image "
       "file becomes the input (grey or RGB, scaled to cover the stored size and centre-cropped): 'preprocessing'.")


def metadata(model: nn.Module, shape: tuple[int, int, int]) -> dict[str, Any]:
    """What an exported program records of itself: its class names and its input."""
    from spinalnet.version import __version__

    return {"classes": list(model.classes), "input": f"float32 (N, {shape[0]}, {shape[1]}, {shape[2]}) in [0, 1]",
            "preprocessing": model.input_spec.to_dict(), "spinalnet": __version__}


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer: what ONNX stores as initializers."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def _onnx_program(model: nn.Module, example: Tensor, batch):
    # dynamic_shapes by position: torch 2.6 reads a dict's keys as input_names, later versions as argument names
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress
            return torch.onnx.export(model, (example,), None, input_names=["images"], output_names=["logits"],
                                     dynamic_shapes=({0: batch},), dynamo=True)
    except ImportError as err:
        raise UsageError(f"ONNX export needs onnx and onnxscript: pip install 'spinalnet[onnx]' ({err})") from None


def _save_onnx_with_external_data(program, output: Path) -> None:
    """``output`` and ``output.data``, built in a temporary folder beside them, then moved in (data first)."""
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp"))
    try:
        program.save(str(staging / output.name), external_data=True)
        data = output.with_name(f"{output.name}.data")
        os.replace(staging / data.name, data)
        os.replace(staging / output.name, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export(checkpoint: Path, fmt: str, output: Path, force: bool = False) -> dict:
    """Write ``checkpoint``'s inference model to ``output``; nothing is written when anything fails."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {FORMATS}, got {fmt!r}")
    output = Path(output)
    check_output(output, force, checkpoint)
    model, shape = inference_model(checkpoint)
    example = torch.rand(2, *shape)
    batch = torch.export.Dim("batch", min=1)
    about = metadata(model, shape)
    extra = {name: json.dumps(value) for name, value in about.items()}  # TorchScript and .pt2: extra files
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if fmt == "torchscript":
            program = torch.jit.trace(model, example)
            write = lambda handle: torch.jit.save(program, handle, _extra_files=extra)  # noqa: E731
        elif fmt == "pt2":
            program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
            write = lambda handle: torch.export.save(program, handle, extra_files=extra)  # noqa: E731
        else:
            program = _onnx_program(model, example, batch)
            program.model.metadata_props.update({k: json.dumps(v) if not isinstance(v, str) else v
                                                 for k, v in about.items()})
            program.model.doc_string = DOC
            if weight_bytes(model) > ONNX_SINGLE_FILE_LIMIT:
                output.parent.mkdir(parents=True, exist_ok=True)
                _save_onnx_with_external_data(program, output)
                write = None
            else:
                write = lambda handle: handle.write(program.model_proto.SerializeToString())  # noqa: E731
        if write is not None:
            atomic_write(output, write)
            if fmt == "onnx":  # the weights file of an earlier two-file export over --force
                output.with_name(f"{output.name}.data").unlink(missing_ok=True)
    return {"checkpoint": str(checkpoint), "format": fmt, "output": str(output), "input_shape": ["N", *shape]}
