"""One normalisation of activation names for both frameworks; the table itself imports no torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from spinalnet.layers.activation_names import ACTIVATION_KEYS, activation_key


def test_names_in_any_spelling_normalise_to_one_key():
    assert [activation_key(n) for n in ("relu", "ReLU", "RELU", "leaky_relu", "LeakyReLU", "leaky-relu", "GELU",
                                        "SiLU", "swish", "Hardswish", "hard_swish", "Identity", "linear")] == \
        ["relu", "relu", "relu", "leaky_relu", "leaky_relu", "leaky_relu", "gelu", "silu", "silu", "hardswish",
         "hardswish", "identity", "identity"]
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        activation_key("swishy")


def test_the_name_table_imports_no_torch():
    code = "import sys, spinalnet.layers.activation_names; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_torch_classes_and_instances_normalise_and_build():
    nn = pytest.importorskip("torch.nn")
    from spinalnet.layers.activations import ACTIVATIONS, create_activation

    assert set(ACTIVATIONS) == set(ACTIVATION_KEYS)
    for spec in ("ReLU", "relu", nn.ReLU, nn.ReLU(), nn.LeakyReLU(0.01), nn.LeakyReLU, "leaky_relu"):
        key = activation_key(spec)
        assert isinstance(create_activation(spec), ACTIVATIONS[key])
    assert all(activation_key(cls) == key for key, cls in ACTIVATIONS.items())
    with pytest.raises(ValueError, match="negative_slope=0.2 differs from the default 0.01"):
        activation_key(nn.LeakyReLU(0.2))
    with pytest.raises(ValueError, match="approximate='tanh' differs"):
        activation_key(nn.GELU(approximate="tanh"))
    slope = create_activation(nn.LeakyReLU(0.2))  # PyTorch itself keeps any instance (a copy)
    assert slope.negative_slope == 0.2
