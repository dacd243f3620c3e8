"""BatchNormalization with torch.nn.BatchNorm's moving statistics.

Keras' BatchNormalization updates its moving variance with the biased batch variance; torch's
``BatchNorm1d``/``2d`` use the unbiased one (``n / (n - 1)`` times larger) for ``running_var``, while both
normalise the batch with the biased variance. This layer follows torch, so moving statistics (and so
inference outputs) match a torch model trained on the same batches. Channels last; 16-bit inputs are
normalised in the variables' float32, as Keras' layer does.
"""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="spinalnet")
class BatchNorm(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9)`` with torch's unbiased moving variance."""

    def __init__(self, epsilon: float = 1e-5, momentum: float = 0.9, **kwargs) -> None:
        super().__init__(epsilon=epsilon, momentum=momentum, **kwargs)
        if self.axis not in (-1,) or not (self.center and self.scale):
            raise ValueError("BatchNorm normalises the last axis, with scale and center")

    def build(self, input_shape) -> None:
        super().build(input_shape)
        # any number of leading axes, as call (and torch's BatchNorm over (N, C, L)) handles them
        self.input_spec = keras.InputSpec(min_ndim=2, axes={-1: int(input_shape[-1])})

    def call(self, inputs, training=None, mask=None):
        x = ops.cast(inputs, self.variable_dtype)
        if training and self.trainable:
            axes = list(range(len(x.shape) - 1))
            mean, variance = ops.moments(x, axes=axes)
            # samples per channel; a tensor when the batch size is only known at run time (TF graphs)
            count = ops.cast(math.prod(ops.shape(x)[:-1]), self.variable_dtype)
            unbiased = ops.multiply(variance, ops.divide(count, ops.maximum(ops.subtract(count, 1.0), 1.0)))
            m = self.momentum
            seen = ops.greater(count, 0.0)  # an empty batch has no statistics (its mean is NaN): keep the old ones
            for moving, batch in ((self.moving_mean, mean), (self.moving_variance, unbiased)):
                old = moving.value
                moving.assign(ops.where(seen, ops.add(ops.multiply(old, m), ops.multiply(batch, 1.0 - m)), old))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        scale = ops.multiply(ops.rsqrt(ops.add(variance, self.epsilon)), self.gamma)
        y = ops.add(ops.multiply(ops.subtract(x, mean), scale), self.beta)
        return ops.cast(y, self.compute_dtype)
