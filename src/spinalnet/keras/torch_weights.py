"""Weights between SpinalLinear (PyTorch) and SpinalDense (Keras), through torch's ``state_dict()``.

Both directions speak the per-layer state-dict layout: ``layers.{i}.input.weight`` (w, chunk),
``layers.{i}.input.bias``, ``layers.{i}.chain.weight`` (w, w) for i >= 1, ``layers.{i}.norm.*`` and
``output.{weight,bias}``. :func:`per_layer_keys` is the only place that knows how a SpinalLinear
stores them. torch is imported when a function is called, never by ``import spinalnet.keras``.
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


def per_layer_keys(state: dict[str, Any], num_layers: int, num_splits: int) -> dict[str, tuple[str, int | None]]:
    """Per-layer key -> (key in ``state``, index of the layer in that tensor or None).

    A SpinalLinear whose state dict is already per-layer maps every key to itself; the grouped layout
    (``input_weights.{s}[k]`` for layer ``s + k * num_splits``, ``chain_weights.{i-1}``, ``post.{i}.0.*``)
    maps to slices.
    """
    if "layers.0.input.weight" in state:
        return {key: (key, None) for key in state if key.split(".")[-1] != "num_batches_tracked"}
    keys: dict[str, tuple[str, int | None]] = {}
    for i in range(num_layers):
        s, k = i % num_splits, i // num_splits
        keys[f"layers.{i}.input.weight"] = (f"input_weights.{s}", k)
        if f"input_biases.{s}" in state:
            keys[f"layers.{i}.input.bias"] = (f"input_biases.{s}", k)
        if i:
            keys[f"layers.{i}.chain.weight"] = (f"chain_weights.{i - 1}", None)
        for name in NORM_STATE:
            if f"post.{i}.0.{name}" in state:
                keys[f"layers.{i}.norm.{name}"] = (f"post.{i}.0.{name}", None)
    keys.update({key: (key, None) for key in ("output.weight", "output.bias") if key in state})
    return keys


def torch_state(layer: Any) -> dict[str, np.ndarray]:
    """``layer.state_dict()`` as float32 numpy arrays, in the per-layer layout."""
    state = layer.state_dict()
    arrays = {}
    for key, (source, index) in per_layer_keys(state, layer.num_layers, layer.num_splits).items():
        value = state[source] if index is None else state[source][index]
        arrays[key] = value.detach().cpu().float().numpy()
    return arrays


def load_torch_state(layer: Any, arrays: dict[str, np.ndarray]) -> None:
    """Copy per-layer arrays into ``layer`` (strict: every key of the layer must be given)."""
    torch = _torch()
    state = layer.state_dict()
    keys = per_layer_keys(state, layer.num_layers, layer.num_splits)
    if set(keys) != set(arrays):
        raise ValueError(f"state keys differ: missing {sorted(set(keys) - set(arrays))}, "
                         f"unexpected {sorted(set(arrays) - set(keys))}")
    with torch.no_grad():
        for key, (source, index) in keys.items():
            target = state[source] if index is None else state[source][index]
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
    from spinalnet.layers import SpinalLinear

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
