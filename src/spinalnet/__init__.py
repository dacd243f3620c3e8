"""SpinalNet: deep neural networks with gradual input."""

from spinalnet.heads import find_classifier, replace_classifier, spinalize
from spinalnet.layers import SpinalLinear, split_sizes

__version__ = "0.1.0"
__all__ = ["SpinalLinear", "find_classifier", "replace_classifier", "spinalize", "split_sizes", "__version__"]
