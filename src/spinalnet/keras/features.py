"""A frozen Keras backbone's features, computed once per split: the linear-probe protocol of ``compare``'s feature
cache, on any Keras backend.

Images go in as stored (uint8 or float pixels in [0, 255], grey or colour, channels last) and reach the backbone
as ``compare`` feeds its PyTorch backbone: scaled to [0, 1], normalised with the weights' mean and std, resized
bilinearly (half-pixel centres, as ``torch.nn.functional.interpolate(align_corners=False)``) and grey repeated to
the backbone's channels. The backbone runs in inference mode (batch norm reads its moving statistics).
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="spinalnet")
class ImageInput(keras.layers.Layer):
    """Stored pixels -> a backbone's input: ``(x / 255 - mean) / std`` per channel at ``size`` x ``size``."""

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float], **kwargs) -> None:
        super().__init__(**kwargs)
        if len(mean) != len(std) or not mean:
            raise ValueError(f"mean and std need one value per channel, got {list(mean)} and {list(std)}")
        self.size, self.mean, self.std = int(size), [float(m) for m in mean], [float(s) for s in std]

    def call(self, images):
        x = ops.cast(images, "float32")
        if len(x.shape) == 3:
            x = ops.expand_dims(x, -1)
        channels = len(self.mean)
        if x.shape[-1] == 1 and channels > 1:
            x = ops.repeat(x, channels, axis=-1)
        scale = ops.convert_to_tensor([1.0 / (255.0 * s) for s in self.std])
        shift = ops.convert_to_tensor([-m / s for m, s in zip(self.mean, self.std)])
        x = x * scale + shift
        if tuple(x.shape[1:3]) != (self.size, self.size):
            x = ops.image.resize(x, (self.size, self.size), interpolation="bilinear", antialias=True)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, len(self.mean))

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size, "mean": self.mean, "std": self.std}


def extract_features(backbone: keras.Model, images: np.ndarray, *, size: int, mean: Sequence[float],
                     std: Sequence[float], batch_size: int = 256) -> np.ndarray:
    """``backbone``'s outputs for every image, as float32 numpy, computed in batches of ``batch_size``.

    The last batch is padded to full size and its padding dropped: every batch has one shape, so the JAX and
    TensorFlow backends compile the model once.
    """
    if len(images) == 0:
        raise ValueError("no images to extract features from")
    model = _with_inputs(backbone, images.shape[1:], str(images.dtype), size, tuple(mean), tuple(std))
    pad = (-len(images)) % batch_size
    padded = np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)]) if pad else images
    out = model.predict(padded, batch_size=batch_size, verbose=0)
    return np.asarray(out, dtype=np.float32)[: len(images)]


#: the last backbone's model with an input layer in front: the next split of the same images reuses its compiled
#: prediction instead of compiling the whole backbone again (one kept, so no backbone outlives its use for long)
_LAST: dict[str, object] = {}


def _with_inputs(backbone: keras.Model, shape: tuple[int, ...], dtype: str, size: int, mean: tuple[float, ...],
                 std: tuple[float, ...]) -> keras.Model:
    key = (tuple(shape), dtype, size, mean, std)
    if _LAST.get("backbone") is not backbone or _LAST.get("key") != key:
        model = keras.Sequential([keras.Input(shape, dtype=dtype), ImageInput(size, mean, std), backbone])
        _LAST.update(backbone=backbone, key=key, model=model)
    return _LAST["model"]
