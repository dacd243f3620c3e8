"""SpinalNet: deep neural networks with gradual input.

The names below are imported on first use, so ``import spinalnet`` (and the ``spinalnet`` command's
start-up, ``--version``, ``--help``) does not import torch.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"
# The MLP builders live in ``spinalnet.mlps``: a submodule named ``mlp`` would, once imported,
# replace the function ``spinalnet.mlp`` on the package.
_WHERE = {"SpinalLinear": "layers", "split_sizes": "layers", "find_classifier": "heads",
          "replace_classifier": "heads", "spinalize": "heads", "mlp": "mlps", "spinal_mlp": "mlps"}
__all__ = [*sorted(_WHERE), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"spinalnet.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'spinalnet' has no attribute {name!r}")
