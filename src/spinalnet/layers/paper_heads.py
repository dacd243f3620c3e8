"""Load the Spinal heads saved by the SpinalNet authors' scripts into a :class:`SpinalLinear`.

Two namings exist:

- the VGG, ResNet and transfer-learning scripts: ``fc_spinal_layer1`` .. ``fc_spinal_layerL``, each an
  ``nn.Sequential`` of [Dropout], Linear(half or half + w, w), [BatchNorm1d(w)], activation, and
  ``fc_out`` = [Dropout], Linear(L*w, C);
- ``MNIST/SpinalNet_MNIST.py``: ``fc1`` = Linear(half, w), ``fc1_1`` .. ``fc1_K`` = Linear(half + w, w),
  ``fc2`` = Linear((K + 1)*w, C), ReLU after each hidden layer.

Both read two halves alternately: layer 1 ``x[:, 0:half]``, layer 2 ``x[:, half:2*half]`` plus layer 1's
output, layer 3 the first half again, and so on. The general scripts set ``half = round(n/2)``
(Python rounds halves to even). SpinalLinear splits like ``torch.tensor_split`` (the first half takes
the extra feature of an odd ``n``). The two agree for every even ``n`` and for ``n = 4k + 3``; for
``n = 4k + 1`` the authors' halves are ``2k`` and ``2k`` and feature ``n - 1`` is never read, which
SpinalLinear cannot compute, so such heads are refused rather than loaded as something else.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from spinalnet.layers.arguments import positive_int
from spinalnet.layers.split import split_sizes

#: Dropout probability assumed when the authors' head has Dropout modules (their scripts' value, and
#: nn.Dropout's default); a state dict does not store it.
PAPER_DROPOUT = 0.5
_SEQUENTIAL_KEY = re.compile(r"(fc_spinal_layer(\d+)|fc_out)\.(\d+)\.(\w+)$")
_MNIST_KEY = re.compile(r"(fc1|fc1_(\d+)|fc2)\.(weight|bias)$")


class _Linear:
    """One Linear of the authors' head, with what surrounds it in its Sequential."""

    def __init__(self, weight: Tensor, bias: Tensor | None, norm: dict[str, Tensor] | None, dropout: bool) -> None:
        self.weight, self.bias, self.norm, self.dropout = weight, bias, norm, dropout


def _sequential_linear(name: str, modules: dict[int, dict[str, Tensor]]) -> _Linear:
    linears = [j for j, params in modules.items() if params.get("weight") is not None and params["weight"].dim() == 2]
    norms = [j for j, params in modules.items() if "running_mean" in params]
    if len(linears) != 1 or len(norms) > 1 or (norms and norms[0] < linears[0]):
        raise ValueError(f"{name} is not [Dropout], Linear, [BatchNorm1d], activation as in the authors' scripts")
    j = linears[0]
    return _Linear(modules[j]["weight"], modules[j].get("bias"), modules[norms[0]] if norms else None, dropout=j > 0)


def _parse_sequential(state: Mapping[str, Tensor]) -> tuple[list[_Linear], _Linear]:
    groups: dict[str, dict[int, dict[str, Tensor]]] = defaultdict(lambda: defaultdict(dict))
    for key, value in state.items():
        if match := _SEQUENTIAL_KEY.fullmatch(key):
            groups[match[1]][int(match[3])][match[4]] = value
    count = sum(1 for name in groups if name != "fc_out")
    names = [f"fc_spinal_layer{i}" for i in range(1, count + 1)]
    if sorted(n for n in groups if n != "fc_out") != sorted(names) or "fc_out" not in groups:
        raise ValueError(f"expected fc_spinal_layer1..fc_spinal_layer{count} and fc_out, found "
                         f"{', '.join(sorted(groups))}")
    return [_sequential_linear(n, groups[n]) for n in names], _sequential_linear("fc_out", groups["fc_out"])


def _parse_mnist(state: Mapping[str, Tensor]) -> tuple[list[_Linear], _Linear]:
    params: dict[str, dict[str, Tensor]] = defaultdict(dict)
    for key, value in state.items():
        if match := _MNIST_KEY.fullmatch(key):
            params[match[1]][match[3]] = value
    count = sum(1 for name in params if name.startswith("fc1_"))
    names = ["fc1"] + [f"fc1_{k}" for k in range(1, count + 1)]
    if sorted(n for n in params if n != "fc2") != sorted(names):
        raise ValueError(f"expected fc1, fc1_1..fc1_{count} and fc2, found {', '.join(sorted(params))}")
    for name in [*names, "fc2"]:
        if "weight" not in params[name]:
            raise ValueError(f"{name}.weight is missing (found {', '.join(sorted(params[name])) or 'nothing'} "
                             f"under {name}.)")
    hidden = [_Linear(params[n]["weight"], params[n].get("bias"), None, dropout=False) for n in names]
    return hidden, _Linear(params["fc2"]["weight"], params["fc2"].get("bias"), None, dropout=False)


def _input_width(first: int, second: int, in_features: int | None) -> int:
    """The backbone width ``n``, checked against the authors' split rule and SpinalLinear's."""
    n = first + second if in_features is None else in_features
    authors = [round(n / 2), min(round(n / 2), n - round(n / 2))]
    if authors != [first, second]:
        raise ValueError(f"the head reads halves of {first} and {second} features, not the authors' "
                         f"round(n/2) halves {authors} of n = {n} features")
    if split_sizes(n, 2) != authors or 2 * authors[0] < n:
        raise ValueError(f"for n = {n} features the authors' halves x[:, 0:{authors[0]}] and "
                         f"x[:, {authors[0]}:{2 * authors[0]}] differ from SpinalLinear's split "
                         f"{tuple(split_sizes(n, 2))}; refusing to load a head that would compute something else")
    return n


@dataclass(frozen=True)
class PaperHead:
    """What builds a SpinalLinear equal to one of the authors' heads: its sizes and options, and its state dict
    in SpinalLinear's per-layer layout (``num_batches_tracked`` of batch norms left to the new layer)."""

    in_features: int
    out_features: int
    options: dict[str, Any]
    state_dict: dict[str, Tensor]


def from_paper_state_dict(state_dict: Mapping[str, Tensor], *, activation: str | type[nn.Module] = "relu",
                          dropout: float | None = None, in_features: int | None = None,
                          prefix: str = "") -> PaperHead:
    """The options and state dict of a SpinalLinear whose eval-mode outputs equal the authors' head saved in
    ``state_dict`` (:meth:`spinalnet.SpinalLinear.from_paper` builds it).

    Sizes, the number of layers, batch norm and the presence of Dropout come from the keys and shapes.
    ``prefix`` selects the head inside a whole-model checkpoint (e.g. ``"fc."``, ``"classifier."``).
    ``activation`` is the head's activation (the authors use ReLU). ``dropout``: the state dict does
    not store the probability; ``None`` takes :data:`PAPER_DROPOUT` where the head has Dropout modules
    and 0 where it has none (eval outputs do not depend on it; pass the script's value to fine-tune).
    ``in_features``: the backbone's width, needed only to check an odd width (see the module docstring);
    by default it is the sum of the two halves the head reads.
    """
    in_features = _checked_arguments(state_dict, prefix, in_features)
    hidden, out = _parse_head(state_dict, prefix)
    width = hidden[0].weight.shape[0]
    chunks = (hidden[0].weight.shape[1], hidden[1].weight.shape[1] - width)
    n = _input_width(chunks[0], chunks[1], in_features)
    _check_layers(hidden, out, width, chunks)
    had_dropout = any(layer.dropout for layer in [*hidden, out])
    options = dict(layer_width=width, num_layers=len(hidden), num_splits=2, activation=activation,
                   dropout=(PAPER_DROPOUT if had_dropout else 0.0) if dropout is None else dropout,
                   batch_norm=hidden[0].norm is not None, bias=out.bias is not None)
    return PaperHead(n, out.weight.shape[0], options, _spinal_state_dict(hidden, out, chunks))


def _checked_arguments(state_dict: object, prefix: object, in_features: int | None) -> int | None:
    """Refuse arguments of the wrong kind before reading anything; ``in_features`` as a Python int (or None)."""
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict must be a mapping of names to tensors (a state dict), got {type(state_dict).__name__}")
    if not isinstance(prefix, str):
        raise ValueError(f"prefix must be a string such as 'fc.', got {prefix!r}")
    return None if in_features is None else positive_int("in_features", in_features)


def _parse_head(state_dict: Mapping[str, Tensor], prefix: str) -> tuple[list[_Linear], _Linear]:
    """The hidden Linears and the output Linear of the head under ``prefix``, in either of the authors' namings."""
    state = {k[len(prefix):]: v for k, v in state_dict.items() if isinstance(k, str) and k.startswith(prefix)}
    if any(_SEQUENTIAL_KEY.fullmatch(k) for k in state):
        hidden, out = _parse_sequential(state)
    elif "fc1.weight" in state and "fc2.weight" in state:
        hidden, out = _parse_mnist(state)
    else:
        where = f" under prefix {prefix!r}" if prefix else ""
        raise ValueError(f"not a Spinal head of the authors' scripts{where}: expected fc_spinal_layer1.. and "
                         f"fc_out.. keys, or fc1, fc1_1.. and fc2 keys; found {', '.join(list(state)[:6]) or 'none'}")
    if len(hidden) < 2:
        raise ValueError(f"the authors' heads have at least 2 hidden layers (one per half), found {len(hidden)}")
    return hidden, out


def _check_layers(hidden: list[_Linear], out: _Linear, width: int, chunks: tuple[int, int]) -> None:
    """Every Linear has the shape, bias and batch norm that the first hidden layer and the output imply."""
    has_bias, batch_norm = out.bias is not None, hidden[0].norm is not None
    for i, layer in enumerate(hidden):
        expected = (width, chunks[i % 2] + (width if i else 0))
        if tuple(layer.weight.shape) != expected:
            raise ValueError(f"hidden layer {i + 1} has a weight of shape {tuple(layer.weight.shape)}, expected "
                             f"{expected} (width {width}, halves {chunks[0]} and {chunks[1]})")
        if (layer.bias is not None) != has_bias:
            raise ValueError(f"hidden layer {i + 1} has {'a' if layer.bias is not None else 'no'} bias but the output "
                             f"Linear has {'one' if has_bias else 'none'}: the authors' Linears all have biases")
        if (layer.norm is not None) != batch_norm:
            raise ValueError(f"hidden layer {i + 1} has {'a' if layer.norm is not None else 'no'} batch norm but "
                             f"hidden layer 1 has {'one' if batch_norm else 'none'}")
    if tuple(out.weight.shape[1:]) != (len(hidden) * width,):
        raise ValueError(f"the output Linear reads {out.weight.shape[1]} features, expected {len(hidden) * width}")


def _spinal_state_dict(hidden: list[_Linear], out: _Linear, chunks: tuple[int, int]) -> dict[str, Tensor]:
    """The head's tensors under SpinalLinear's names: each hidden weight split into its input and chain halves."""
    converted: dict[str, Tensor] = {}
    for i, source in enumerate(hidden):
        converted[f"layers.{i}.input.weight"] = source.weight[:, : chunks[i % 2]]
        if i:
            converted[f"layers.{i}.chain.weight"] = source.weight[:, chunks[i % 2] :]
        if source.bias is not None:
            converted[f"layers.{i}.input.bias"] = source.bias
        for name, value in (source.norm or {}).items():
            converted[f"layers.{i}.norm.{name}"] = value
    converted["output.weight"] = out.weight
    if out.bias is not None:
        converted["output.bias"] = out.bias
    return converted
