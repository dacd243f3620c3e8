"""Keras 3 SpinalNet: the same split rule and math as :class:`spinalnet.SpinalLinear`, on any backend.

Written against ``keras.ops`` only, so it runs on the JAX, TensorFlow and PyTorch backends, and imports
no torch (``pip install 'spinalnet[keras]'`` plus your backend). The backend is Keras' choice: set
``KERAS_BACKEND`` (``jax``, ``tensorflow`` or ``torch``) before the first ``import keras``; unset,
Keras picks the one in ``~/.keras/keras.json``, by default ``tensorflow``. Only :func:`from_torch` and
:func:`to_torch` need torch, and import it when called.

Transfer learning: :func:`efficientnet_lite` builds EfficientNet-Lite with the ImageNet weights of a timm preset
directory, :func:`extract_features` runs a frozen backbone once over images, :func:`resolve_arm` and
:func:`with_head` give the arms of ``spinalnet compare --heads`` as Keras heads, :func:`train_arms` trains them on
cached features as ``compare`` does (``examples/keras_transfer.py`` writes compare's ``results.json``).

A ``.keras`` file with these layers loads once this package is imported (it registers them; Keras imports
only its own packages when it reads a file): ``import spinalnet.keras`` before ``keras.saving.load_model``, or
:func:`load_model`.
"""

from pathlib import Path
from typing import Any

from spinalnet.keras.arms import KerasArm, resolve_arm
from spinalnet.keras.batchnorm import BatchNorm
from spinalnet.keras.compare import ArmRuns, TrainOptions, train_arms
from spinalnet.keras.efficientnet_lite import efficientnet_lite
from spinalnet.keras.features import ImageInput, extract_features
from spinalnet.keras.layer import SpinalDense
from spinalnet.keras.models import head_params, spinal_vgg5, vgg5, with_head, with_spinal_head
from spinalnet.keras.preset import Preset, read_preset
from spinalnet.keras.torch_weights import from_torch, to_torch


def load_model(path: str | Path, **kwargs: Any):
    """``keras.saving.load_model`` with spinalnet's layers registered (this module's import does it)."""
    import keras

    return keras.saving.load_model(path, **kwargs)


__all__ = ["ArmRuns", "BatchNorm", "ImageInput", "KerasArm", "Preset", "SpinalDense", "TrainOptions",
           "efficientnet_lite", "extract_features", "from_torch", "head_params", "load_model", "read_preset",
           "resolve_arm", "spinal_vgg5", "to_torch", "train_arms", "vgg5", "with_head", "with_spinal_head"]
