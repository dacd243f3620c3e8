"""SpinalNet: deep neural networks with gradual input."""

from spinalnet.heads import find_classifier, replace_classifier, spinalize
from spinalnet.layers import SpinalLinear, split_sizes
from spinalnet.mlp import mlp, spinal_mlp

__version__ = "0.1.0"
__all__ = ["SpinalLinear", "find_classifier", "mlp", "replace_classifier", "spinal_mlp", "spinalize", "split_sizes",
           "__version__"]
