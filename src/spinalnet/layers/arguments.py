"""Checks of the layers' constructor arguments, shared by the PyTorch and Keras layers (no torch import).

Each returns the value as a plain Python type or raises one ValueError naming the argument, its value
and its type. numpy scalars are accepted; a string such as "False" is refused, not read as true.
"""

from __future__ import annotations

import numbers

import numpy as np


def positive_int(name: str, value: object) -> int:
    """An integer >= 1 (numpy integers too), as a Python int."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1:
        return int(value)
    raise ValueError(f"{name} must be an integer >= 1, got {value!r} ({type(value).__name__})")


def flag(name: str, value: object) -> bool:
    """True or False (numpy's too), as a Python bool."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")


def dropout_probability(value: object) -> float:
    """A dropout probability in [0, 1), as a Python float."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and 0.0 <= value < 1.0:
        return float(value)
    raise ValueError(f"dropout must be a probability in [0, 1), got {value!r}")
