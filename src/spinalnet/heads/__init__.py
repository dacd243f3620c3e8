"""Heads on top of a backbone: ``spinalize`` for torchvision and timm models, ordinary and Spinal MLPs, and the
arms a comparison trains (:mod:`.spec`, torch-free; :mod:`.arms`).

The torch names load on first use (PEP 562), so :mod:`spinalnet.heads.spec` imports without torch.
"""

from __future__ import annotations

from spinalnet.lazy import lazy_names

_LAZY = {"mlp": "spinalnet.heads.mlps", "spinal_mlp": "spinalnet.heads.mlps",
         "ClassifierSite": "spinalnet.heads.spinalize", "find_classifier": "spinalnet.heads.spinalize",
         "replace_classifier": "spinalnet.heads.spinalize", "spinalize": "spinalnet.heads.spinalize"}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_names(__name__, _LAZY)
