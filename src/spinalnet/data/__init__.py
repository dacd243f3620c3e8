"""Datasets: a registry of names giving train / validation / test splits.

The names below load torch on first use (PEP 562), so torch-free modules such as
:mod:`spinalnet.data.quickdraw`'s reader import without it.
"""

from __future__ import annotations

from spinalnet.lazy import lazy_names

_LAZY = {
    "ArrayLoader": "spinalnet.data.arrays", "ImageArrays": "spinalnet.data.arrays",
    "AUGMENTATIONS": "spinalnet.data.augment", "AugmentSpec": "spinalnet.data.augment",
    "DeviceTransform": "spinalnet.data.augment", "augment_spec": "spinalnet.data.augment",
    "DataOptions": "spinalnet.data.locate",
    "DATASETS": "spinalnet.data.registry", "PREFIXED": "spinalnet.data.registry",
    "DataSplits": "spinalnet.data.registry", "dataset_names": "spinalnet.data.registry",
    "load_dataset": "spinalnet.data.registry",
}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_names(__name__, _LAZY)
