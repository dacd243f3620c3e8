"""SpinalNet: deep neural networks with gradual input.

Importing the package imports no framework: the PyTorch names below load torch on first use
(PEP 562), so ``spinalnet.keras`` works in an environment without torch.
"""

from __future__ import annotations

from spinalnet.lazy import lazy_names
from spinalnet.version import __version__

#: public name -> the module that defines it (imported on first access)
_LAZY = {
    "SpinalLinear": "spinalnet.layers.spinal_linear",
    "split_sizes": "spinalnet.layers.split",
    "find_classifier": "spinalnet.heads.spinalize",
    "replace_classifier": "spinalnet.heads.spinalize",
    "spinalize": "spinalnet.heads.spinalize",
    "mlp": "spinalnet.heads.mlps",  # not spinalnet.mlp: that submodule would shadow the function
    "spinal_mlp": "spinalnet.heads.mlps",
    "load": "spinalnet.inference.load",
    "predict": "spinalnet.inference.load",
}
__all__ = ["SpinalLinear", "find_classifier", "load", "mlp", "predict", "replace_classifier", "spinal_mlp", "spinalize",
           "split_sizes", "__version__"]
__getattr__, __dir__ = lazy_names(__name__, _LAZY)
