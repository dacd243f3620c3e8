"""A plain per-layer SpinalNet block, written the way the paper's scripts write it.

Used only to check that the fast grouped :class:`spinalnet.SpinalLinear` computes exactly the same
function with the same parameters.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from spinalnet import SpinalLinear


class ReferenceSpinal(nn.Module):
    """One nn.Linear per hidden layer, fed by slicing the input and concatenating the previous output."""

    def __init__(self, fast: SpinalLinear) -> None:
        super().__init__()
        self.num_splits, self.dropout = fast.num_splits, fast.dropout
        self.in_features, self.out_features = fast.in_features, fast.out_features
        self.hidden = nn.ModuleList()
        for weight, bias in fast.per_layer_parameters():
            linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
            with torch.no_grad():
                linear.weight.copy_(weight)
                if bias is not None:
                    linear.bias.copy_(bias)
            self.hidden.append(linear)
        self.post = copy.deepcopy(fast.post)
        self.output = copy.deepcopy(fast.output)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.in_features)
        chunks = torch.tensor_split(x, self.num_splits, dim=1)
        drop = nn.Dropout(self.dropout).train(self.training)
        outs: list[Tensor] = []
        for i, (linear, post) in enumerate(zip(self.hidden, self.post)):
            inp = chunks[i % self.num_splits] if i == 0 else torch.cat([chunks[i % self.num_splits], outs[-1]], 1)
            outs.append(post(linear(drop(inp))))
        return self.output(drop(torch.cat(outs, 1))).reshape(*lead, self.out_features)

    def per_layer_grads(self) -> list[tuple[Tensor, Tensor | None]]:
        return [(l.weight.grad, None if l.bias is None else l.bias.grad) for l in self.hidden]


def fast_per_layer_grads(fast: SpinalLinear) -> list[tuple[Tensor, Tensor | None]]:
    """Gradients of the fast layer's grouped parameters, rearranged into the per-layer layout."""
    grads = []
    for i in range(fast.num_layers):
        a = fast.input_weights[i % fast.num_splits].grad[i // fast.num_splits]
        weight = torch.cat([a, fast.chain_weights[i - 1].grad], 1) if i else a
        bias = fast.input_biases[i % fast.num_splits].grad[i // fast.num_splits] if fast.has_bias else None
        grads.append((weight, bias))
    return grads
