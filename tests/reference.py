"""The authors' Spinal heads, written module for module as their scripts write them.

Independent of the library's internals: only state-dict names connect the two. Used to check that
the fast grouped :class:`spinalnet.SpinalLinear` computes exactly the same function and gradients, that
:meth:`spinalnet.SpinalLinear.from_paper` loads the authors' checkpoints, and as the per-layer
baseline of ``benchmarks/layer_speed.py``.

- :class:`ReferenceSpinal`: the VGG / ResNet / transfer-learning scripts' ``fc_spinal_layer1..L``
  (``Sequential([Dropout], Linear(chunk or chunk + w, w), [BatchNorm1d(w)], activation)``) and
  ``fc_out`` (``Sequential([Dropout], Linear(L*w, C))``). The authors use two halves; the chunks here
  follow ``torch.tensor_split`` so that any number of splits can be compared.
- :class:`AuthorsMnistHead`: ``MNIST/SpinalNet_MNIST.py``'s ``fc1``, ``fc1_1``..``fc1_5`` and ``fc2``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class ReferenceSpinal(nn.Module):
    """One ``Sequential`` per hidden layer, fed by slicing the input and concatenating the previous output."""

    def __init__(self, in_features: int, out_features: int, *, layer_width: int, num_layers: int,
                 num_splits: int = 2, activation: str | type[nn.Module] = "relu", dropout: float = 0.0,
                 batch_norm: bool = False, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features, self.num_splits = in_features, out_features, num_splits
        chunks = [c.shape[1] for c in torch.tensor_split(torch.zeros(1, in_features), num_splits, dim=1)]
        act = ACTIVATIONS[activation] if isinstance(activation, str) else activation
        for i in range(num_layers):
            fan_in = chunks[i % num_splits] + (layer_width if i else 0)
            modules = [nn.Dropout(dropout)] if dropout else []
            modules.append(nn.Linear(fan_in, layer_width, bias=bias))
            modules += [nn.BatchNorm1d(layer_width)] if batch_norm else []
            modules.append(act())
            setattr(self, f"fc_spinal_layer{i + 1}", nn.Sequential(*modules))
        self.num_layers = num_layers
        out = [nn.Dropout(dropout)] if dropout else []
        self.fc_out = nn.Sequential(*out, nn.Linear(num_layers * layer_width, out_features, bias=bias))

    @classmethod
    def like(cls, fast: nn.Module) -> ReferenceSpinal:
        """The reference with the same configuration and parameters as a SpinalLinear (copied by name)."""
        ref = cls(fast.in_features, fast.out_features, layer_width=fast.layer_width, num_layers=fast.num_layers,
                  num_splits=fast.num_splits, activation=fast.activation if fast.activation in ACTIVATIONS
                  else type(fast.layers[0].act), dropout=fast.dropout, batch_norm=fast.batch_norm,
                  bias=fast.has_bias).to(next(fast.parameters()).dtype)  # before copying: no rounding
        ref.load_spinal_state_dict(fast.state_dict())
        return ref

    def hidden(self) -> list[nn.Sequential]:
        return [getattr(self, f"fc_spinal_layer{i + 1}") for i in range(self.num_layers)]

    @staticmethod
    def _find(seq: nn.Sequential, kind: type[nn.Module]) -> nn.Module | None:
        return next((m for m in seq if isinstance(m, kind)), None)

    @torch.no_grad()
    def load_spinal_state_dict(self, state: dict[str, Tensor]) -> None:
        """Copy a SpinalLinear state dict (``layers.{i}.input/chain/norm``, ``output``) by name."""
        for i, seq in enumerate(self.hidden()):
            linear = self._find(seq, nn.Linear)
            parts = [state[f"layers.{i}.input.weight"]] + ([state[f"layers.{i}.chain.weight"]] if i else [])
            linear.weight.copy_(torch.cat(parts, dim=1))
            if linear.bias is not None:
                linear.bias.copy_(state[f"layers.{i}.input.bias"])
            norm = self._find(seq, nn.BatchNorm1d)
            if norm is not None:
                for name, value in norm.state_dict().items():
                    value.copy_(state[f"layers.{i}.norm.{name}"])
        self._find(self.fc_out, nn.Linear).load_state_dict(
            {k[len("output."):]: v for k, v in state.items() if k.startswith("output.")})

    def spinal_grads(self) -> dict[str, Tensor]:
        """Gradients of the reference parameters under the SpinalLinear names they correspond to."""
        grads: dict[str, Tensor] = {}
        for i, seq in enumerate(self.hidden()):
            linear = self._find(seq, nn.Linear)
            chunk = linear.in_features - (linear.out_features if i else 0)
            grads[f"layers.{i}.input.weight"] = linear.weight.grad[:, :chunk]
            if i:
                grads[f"layers.{i}.chain.weight"] = linear.weight.grad[:, chunk:]
            if linear.bias is not None:
                grads[f"layers.{i}.input.bias"] = linear.bias.grad
            norm = self._find(seq, nn.BatchNorm1d)
            if norm is not None:
                grads[f"layers.{i}.norm.weight"], grads[f"layers.{i}.norm.bias"] = norm.weight.grad, norm.bias.grad
        out = self._find(self.fc_out, nn.Linear)
        grads["output.weight"] = out.weight.grad
        if out.bias is not None:
            grads["output.bias"] = out.bias.grad
        return grads

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.in_features)
        chunks = torch.tensor_split(x, self.num_splits, dim=1)
        outs: list[Tensor] = []
        for i, layer in enumerate(self.hidden()):
            chunk = chunks[i % self.num_splits]
            outs.append(layer(chunk if i == 0 else torch.cat([chunk, outs[-1]], dim=1)))
        return self.fc_out(torch.cat(outs, dim=1)).reshape(*lead, self.out_features)


class AuthorsMnistHead(nn.Module):
    """``MNIST/SpinalNet_MNIST.py``: ``fc1`` reads ``x[:, 0:half]``, ``fc1_k`` alternate halves plus the previous output."""

    def __init__(self, half: int = 160, first_hl: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        self.half = half
        self.fc1 = nn.Linear(half, first_hl)
        for k in range(1, 6):
            setattr(self, f"fc1_{k}", nn.Linear(half + first_hl, first_hl))
        self.fc2 = nn.Linear(first_hl * 6, num_classes)

    def forward(self, x: Tensor) -> Tensor:  # the script's forward after x.view(-1, 320), without log_softmax
        h = self.half
        x1 = F.relu(self.fc1(x[:, 0:h]))
        x2 = F.relu(self.fc1_1(torch.cat([x[:, h:2 * h], x1], dim=1)))
        x3 = F.relu(self.fc1_2(torch.cat([x[:, 0:h], x2], dim=1)))
        x4 = F.relu(self.fc1_3(torch.cat([x[:, h:2 * h], x3], dim=1)))
        x5 = F.relu(self.fc1_4(torch.cat([x[:, 0:h], x4], dim=1)))
        x6 = F.relu(self.fc1_5(torch.cat([x[:, h:2 * h], x5], dim=1)))
        return self.fc2(torch.cat([x1, x2, x3, x4, x5, x6], dim=1))


def authors_transfer_head(num_ftrs: int, layer_width: int, num_classes: int, *, dropout: bool,
                          batch_norm: bool, num_layers: int = 4) -> ReferenceSpinal:
    """The transfer-learning scripts' head: ``half_in_size = round(num_ftrs / 2)``, Dropout(0.5) when used.

    Only for sizes where the authors' slices ``x[:, 0:half]``, ``x[:, half:2*half]`` equal
    ``torch.tensor_split`` halves (checked here, so a test cannot silently compare something else).
    """
    half = round(num_ftrs / 2)
    assert [c.shape[1] for c in torch.tensor_split(torch.zeros(1, num_ftrs), 2, 1)] == [half, min(half, num_ftrs - half)]
    return ReferenceSpinal(num_ftrs, num_classes, layer_width=layer_width, num_layers=num_layers,
                           dropout=0.5 if dropout else 0.0, batch_norm=batch_norm)
