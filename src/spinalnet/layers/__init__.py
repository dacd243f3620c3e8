"""The SpinalNet layer: :class:`SpinalLinear` and what it needs (split rule, argument checks, activations,
the fused training step, the authors' head layout).

Importing this package imports no framework: ``SpinalLinear`` loads torch on first use (PEP 562), so
the torch-free modules here (:mod:`.split`, :mod:`.arguments`, :mod:`.activation_names`) serve the Keras
layer too.
"""

from __future__ import annotations

from spinalnet.lazy import lazy_names

_LAZY = {"SpinalLinear": "spinalnet.layers.spinal_linear", "split_sizes": "spinalnet.layers.split"}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_names(__name__, _LAZY)
