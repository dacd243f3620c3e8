"""The split rule shared by the PyTorch and Keras layers (no framework import)."""

from __future__ import annotations


def split_sizes(in_features: int, num_splits: int) -> list[int]:
    """Chunk sizes of ``torch.tensor_split(x, num_splits)``: the first ``in % splits`` are one larger."""
    base, extra = divmod(in_features, num_splits)
    return [base + 1 if s < extra else base for s in range(num_splits)]
