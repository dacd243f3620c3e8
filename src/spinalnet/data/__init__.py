"""Datasets: a registry of names giving train / validation / test splits."""

from spinalnet.data.arrays import ArrayLoader, ImageArrays
from spinalnet.data.augment import AUGMENTATIONS, AugmentSpec, DeviceTransform, augment_spec
from spinalnet.data.locate import DataOptions
from spinalnet.data.registry import DATASETS, PREFIXED, DataSplits, dataset_names, load_dataset

__all__ = ["AUGMENTATIONS", "ArrayLoader", "AugmentSpec", "DATASETS", "DataOptions", "DataSplits",
           "DeviceTransform", "ImageArrays", "PREFIXED", "augment_spec", "dataset_names", "load_dataset"]
