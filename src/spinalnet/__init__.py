"""SpinalNet: deep neural networks with gradual input.

Importing the package imports no framework: the PyTorch names below load torch on first use
(PEP 562), so ``spinalnet.keras`` works in an environment without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it (imported on first access)
_LAZY = {
    "SpinalLinear": "spinalnet.layers",
    "split_sizes": "spinalnet.split",
    "find_classifier": "spinalnet.heads",
    "replace_classifier": "spinalnet.heads",
    "spinalize": "spinalnet.heads",
    "mlp": "spinalnet.mlps",  # not spinalnet.mlp: that submodule would shadow the function
    "spinal_mlp": "spinalnet.mlps",
}
__all__ = ["SpinalLinear", "find_classifier", "mlp", "replace_classifier", "spinal_mlp", "spinalize", "split_sizes",
           "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'spinalnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
