"""DepthwiseConv2D that runs as a sum of shifted products on JAX, where XLA's CPU grouped convolution is slow.

XLA lowers a depthwise convolution (``feature_group_count`` = channels) on the CPU to a generic grouped
convolution; the same result as ``k * k`` shifted slices, each multiplied by one kernel tap and summed, is one
fused elementwise loop. EfficientNet-Lite0 at 64 px on JAX extracted about 8 times as many images per second this
way (benchmarks/keras_extraction.py with and without ``--native-depthwise``; docs/BENCHMARKS.md, section 8).
TensorFlow and PyTorch call oneDNN's depthwise kernel, so they keep Keras' own path. Weights, config and
``padding="same"`` (TensorFlow's ``SAME``) are Keras'.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="spinalnet")
class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """``keras.layers.DepthwiseConv2D`` (channels last, multiplier 1, no dilation); shifted products on JAX."""

    def call(self, inputs):
        if keras.backend.backend() != "jax" or self.data_format != "channels_last" or self.depth_multiplier != 1 \
                or tuple(self.dilation_rate) != (1, 1):
            return super().call(inputs)
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        height, width = inputs.shape[1], inputs.shape[2]
        out_h, out_w, pads = _same(height, kh, sh), _same(width, kw, sw), None
        if self.padding == "same":
            pads = _same_pads(height, kh, sh), _same_pads(width, kw, sw)
            x = ops.pad(inputs, ((0, 0), pads[0], pads[1], (0, 0)))
        else:
            x = inputs
            out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
        kernel = ops.cast(self.kernel, x.dtype)
        out = None
        for i in range(kh):
            for j in range(kw):
                tap = x[:, i : i + (out_h - 1) * sh + 1 : sh, j : j + (out_w - 1) * sw + 1 : sw, :] * kernel[i, j, :, 0]
                out = tap if out is None else out + tap
        if self.use_bias:
            out = out + self.bias
        return self.activation(out) if self.activation is not None else out


def _same(size: int, kernel: int, stride: int) -> int:
    return -(-size // stride)


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding: the total as needed for ``ceil(size / stride)`` outputs, the extra pixel after."""
    total = max((_same(size, kernel, stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2
