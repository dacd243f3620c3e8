"""Weights between SpinalLinear (PyTorch) and SpinalDense (Keras), through torch's ``state_dict()``.

Both directions speak the per-layer state-dict layout: ``layers.{i}.input.weight`` (w, chunk),
``layers.{i}.input.bias``, ``layers.{i}.chain.weight`` (w, w) for i >= 1, ``layers.{i}.norm.*`` and
``output.{weight,bias}``. torch is imported when a function is called, never by ``import spinalnet.keras``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

from spinalnet.keras.layer import SpinalDense

NORM_STATE = ("weight", "bias", "running_mean", "running_var")


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError("from_torch and to_torch need PyTorch: pip install 'spinalnet[torch]'") from None
    return torch


def torch_state(layer: Any) -> dict[str, np.ndarray]:
    """``layer.state_dict()`` as float32 numpy arrays (batch-norm step counters left out)."""
    return {key: value.detach().cpu().float().numpy() for key, value in layer.state_dict().items()
            if not key.endswith("num_batches_tracked")}


def load_torch_state(layer: Any, arrays: dict[str, np.ndarray]) -> None:
    """Copy per-layer arrays into ``layer`` (strict: every key of the layer must be given)."""
    torch = _torch()
    state = {k: v for k, v in layer.state_dict().items() if not k.endswith("num_batches_tracked")}
    if set(state) != set(arrays):
        raise ValueError(f"state keys differ: missing {sorted(set(state) - set(arrays))}, "
                         f"unexpected {sorted(set(arrays) - set(state))}")
    with torch.no_grad():
        for key, target in state.items():
            target.copy_(torch.from_numpy(np.ascontiguousarray(arrays[key])).to(target.dtype))


def from_torch(layer: Any) -> SpinalDense:
    """A built SpinalDense computing the same function as the SpinalLinear ``layer`` (BN statistics included)."""
    _torch()
    arrays = torch_state(layer)
    dense = SpinalDense(layer.out_features, layer.layer_width, layer.num_layers, layer.num_splits,
                        layer.activation, layer.dropout, layer.batch_norm, "output.bias" in arrays)
    dense.build((None, layer.in_features))
    for i in range(layer.num_layers):
        weight = arrays[f"layers.{i}.input.weight"]
        if i:
            weight = np.concatenate([weight, arrays[f"layers.{i}.chain.weight"]], axis=1)
        dense.kernels[i].assign(weight.T)
        if dense.use_bias:
            dense.biases[i].assign(arrays[f"layers.{i}.input.bias"])
    for i, norm in enumerate(dense.norms):
        norm.set_weights([arrays[f"layers.{i}.norm.{name}"] for name in NORM_STATE])
    dense.out_kernel.assign(arrays["output.weight"].T)
    if dense.use_bias:
        dense.out_bias.assign(arrays["output.bias"])
    return dense


def to_torch(dense: SpinalDense) -> Any:
    """A SpinalLinear computing the same function as the built SpinalDense ``dense``."""
    _torch()
    from spinalnet.layers.spinal_linear import SpinalLinear

    if not dense.built:
        raise ValueError("build or call the SpinalDense before converting it")
    layer = SpinalLinear(dense.in_features, dense.units, layer_width=dense.layer_width, num_layers=dense.num_layers,
                         num_splits=dense.num_splits, activation=dense.activation, dropout=dense.dropout,
                         batch_norm=dense.batch_norm, bias=dense.use_bias)
    numpy = lambda v: np.asarray(ops.convert_to_numpy(v), dtype=np.float32)  # noqa: E731
    arrays: dict[str, np.ndarray] = {}
    for i, kernel in enumerate(dense.kernels):
        weight = numpy(kernel).T
        size = dense.split_sizes[i % dense.num_splits]
        arrays[f"layers.{i}.input.weight"] = weight[:, :size]
        if i:
            arrays[f"layers.{i}.chain.weight"] = weight[:, size:]
        if dense.use_bias:
            arrays[f"layers.{i}.input.bias"] = numpy(dense.biases[i])
    for i, norm in enumerate(dense.norms):
        arrays.update({f"layers.{i}.norm.{name}": numpy(v) for name, v in zip(NORM_STATE, norm.get_weights())})
    arrays["output.weight"] = numpy(dense.out_kernel).T
    if dense.use_bias:
        arrays["output.bias"] = numpy(dense.out_bias)
    load_torch_state(layer, arrays)
    return layer
