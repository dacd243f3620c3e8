"""SpinalDense: the SpinalNet block as a Keras 3 layer (``keras.ops`` only, any backend)."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from spinalnet.layers.activation_names import activation_key
from spinalnet.layers.arguments import dropout_probability, flag, positive_int
from spinalnet.keras.activations import KERAS_ACTIVATIONS
from spinalnet.keras.batchnorm import BatchNorm
from spinalnet.layers.split import split_sizes


def torch_uniform(fan_in: int) -> keras.initializers.Initializer:
    """``torch.nn.Linear``'s initialisation (uniform, bound ``1/sqrt(fan_in)``), so PyTorch learning rates carry over."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


@keras.saving.register_keras_serializable(package="spinalnet")
class SpinalDense(keras.layers.Layer):
    """SpinalNet block for Keras: ``num_layers`` narrow layers with gradual input, one output Dense.

    Hidden layer ``i`` reads input chunk ``i % num_splits`` (contiguous chunks whose sizes differ by at
    most one, first chunks larger) concatenated with the output of layer ``i - 1``; the output reads
    all hidden outputs. Per hidden layer: Dropout -> Dense -> :class:`BatchNorm` (if batch_norm) ->
    activation; output: Dropout -> Dense. Kernels are stored per layer as ``(inputs, layer_width)``.
    A ``dtype`` policy (e.g. ``"mixed_bfloat16"``) applies to every sublayer and weight.
    """

    def __init__(self, units: int, layer_width: int, num_layers: int = 4, num_splits: int = 2,
                 activation: Any = "relu", dropout: float = 0.0, batch_norm: bool = False,
                 use_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        units, layer_width, num_layers, num_splits = (positive_int(name, value) for name, value in (
            ("units", units), ("layer_width", layer_width), ("num_layers", num_layers), ("num_splits", num_splits)))
        if num_layers < num_splits:
            raise ValueError(f"num_layers ({num_layers}) must be >= num_splits ({num_splits}): "
                             "otherwise some input features would never be read")
        self.units, self.layer_width, self.num_layers, self.num_splits = units, layer_width, num_layers, num_splits
        self.activation = activation_key(activation)
        self.dropout, self.batch_norm = dropout_probability(dropout), flag("batch_norm", batch_norm)
        self.use_bias = flag("use_bias", use_bias)
        policy = self.dtype_policy  # sublayers compute like this layer (a per-layer mixed policy included)
        self.drops = [keras.layers.Dropout(self.dropout, dtype=policy) for _ in range(num_layers + 1)]
        self.norms = [BatchNorm(dtype=policy) for _ in range(num_layers)] if self.batch_norm else []

    def build(self, input_shape) -> None:
        if input_shape[-1] is None:
            raise ValueError(f"SpinalDense needs a known last dimension (the number of input features), got input "
                             f"shape {tuple(input_shape)}")
        in_features = int(input_shape[-1])
        if in_features < self.num_splits:
            raise ValueError(f"in_features ({in_features}) must be >= num_splits ({self.num_splits})")
        self.in_features = in_features
        # Keras checks every later call against this: a wider input would otherwise be read only in part
        self.input_spec = keras.InputSpec(min_ndim=1, axes={-1: in_features})
        self.split_sizes = split_sizes(in_features, self.num_splits)
        self.split_offsets = [sum(self.split_sizes[:s]) for s in range(self.num_splits)]
        w = self.layer_width
        self.kernels, self.biases = [], []
        for i in range(self.num_layers):
            fan_in = self.split_sizes[i % self.num_splits] + (w if i else 0)
            self.kernels.append(self.add_weight(shape=(fan_in, w), initializer=torch_uniform(fan_in), name=f"kernel_{i}"))
            if self.use_bias:
                self.biases.append(self.add_weight(shape=(w,), initializer=torch_uniform(fan_in), name=f"bias_{i}"))
        for norm in self.norms:
            norm.build((None, w))
        fan_in = self.num_layers * w
        self.out_kernel = self.add_weight(shape=(fan_in, self.units), initializer=torch_uniform(fan_in), name="out_kernel")
        self.out_bias = self.add_weight(shape=(self.units,), initializer=torch_uniform(fan_in), name="out_bias") \
            if self.use_bias else None

    def call(self, inputs, training=None):
        act = KERAS_ACTIVATIONS[self.activation]
        outs, h = [], None
        last = self.num_splits - 1
        for i in range(self.num_layers):
            s = i % self.num_splits
            # The last chunk runs to the end of the input: a graph traced with an unknown last dimension (TF's
            # predict after its first call) then fails in that chunk's matmul on another width, instead of
            # silently reading the first in_features columns; input_spec refuses it where the width is known.
            end = None if s == last else self.split_offsets[s] + self.split_sizes[s]
            chunk = inputs[..., self.split_offsets[s] : end]
            x = chunk if h is None else ops.concatenate([chunk, h], axis=-1)
            z = ops.matmul(self.drops[i](x, training=training), self.kernels[i])
            if self.use_bias:
                z = ops.add(z, self.biases[i])
            if self.batch_norm:
                z = self.norms[i](z, training=training)
            h = act(z)
            outs.append(h)
        y = ops.matmul(self.drops[-1](ops.concatenate(outs, axis=-1), training=training), self.out_kernel)
        return ops.add(y, self.out_bias) if self.use_bias else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "layer_width": self.layer_width,
                "num_layers": self.num_layers, "num_splits": self.num_splits, "activation": self.activation,
                "dropout": self.dropout, "batch_norm": self.batch_norm, "use_bias": self.use_bias}
