"""Heads on top of a backbone: ``spinalize`` for torchvision and timm models, ordinary and Spinal MLPs."""

from spinalnet.heads.mlps import mlp, spinal_mlp
from spinalnet.heads.spinalize import ClassifierSite, find_classifier, replace_classifier, spinalize

__all__ = ["ClassifierSite", "find_classifier", "mlp", "replace_classifier", "spinal_mlp", "spinalize"]
