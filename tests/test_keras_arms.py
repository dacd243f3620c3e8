"""spinalnet.keras.arms: compare's arms as Keras heads, on whatever backend runs the tests; against the PyTorch
arms where torch is installed."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from spinalnet.errors import UsageError  # noqa: E402
from spinalnet.keras import SpinalDense, resolve_arm  # noqa: E402

SPECS = ["fc", "linear", "mlp", "mlp2", "spinal", "mlp:hidden=7,batch_norm=true,dropout=0.2,activation=gelu",
         "spinal:layer_width=6,num_layers=3,num_splits=3,batch_norm=true", "fc:dropout=0.3"]
REFERENCE = "spinal:layer_width=8,num_layers=4"


def _np(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


def _kernels(head) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(kernel, bias) of every matrix the head multiplies by, in order."""
    if isinstance(head, SpinalDense):
        return [(_np(k), _np(b)) for k, b in zip(head.kernels, head.biases)] + [(_np(head.out_kernel),
                                                                                 _np(head.out_bias))]
    return [(_np(layer.kernel), _np(layer.bias)) for layer in head.layers if isinstance(layer, keras.layers.Dense)]


@pytest.mark.parametrize("spec", SPECS)
def test_every_arm_has_the_pytorch_heads_size_and_initialisation_rule(spec):
    keras.utils.set_random_seed(0)
    arm = resolve_arm(spec, 300, 5, reference=REFERENCE)
    head = arm.build()
    head.build((None, 300))
    assert _kernels(head)[-1][0].shape[1] == 5  # 5 classes out
    assert sum(math.prod(w.shape) for w in head.trainable_weights) == arm.params  # the formula's count
    for kernel, bias in _kernels(head):
        bound = 1 / math.sqrt(kernel.shape[0])  # torch.nn.Linear: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))
        assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound
        if kernel.size >= 200:  # filled out to the bound, and not Keras' glorot_uniform (a wider bound here)
            assert np.abs(kernel).max() > 0.95 * bound and abs(kernel.std() - bound / math.sqrt(3)) < 0.1 * bound
    dropouts = [layer.rate for layer in getattr(head, "layers", []) if isinstance(layer, keras.layers.Dropout)]
    assert sorted(set(dropouts)) == [p for p in arm.info["dropout"] if p] or isinstance(head, SpinalDense)


def test_arms_resolve_as_the_pytorch_comparison_records_them():
    """The committed PyTorch run (docs/results/fashion-mnist-lite0-arms-30epochs): 1280 features, 10 classes, the
    Spinal arm 4 x 20; its mlp is 1280-41-10 (52,941 parameters) and its mlp2 1280-40-40-10 (53,290)."""
    ref = "spinal:layer_width=20,num_layers=4"
    arms = {s: resolve_arm(s, 1280, 10, reference=ref) for s in ("fc", "linear", "mlp", "mlp2", ref)}
    assert arms["mlp"].spec.name == "mlp:hidden=41,dropout=0.0,batch_norm=false,activation=relu"
    assert [arms[s].params for s in arms] == [12_810, 12_810, 52_941, 53_290, 53_290]
    assert arms["mlp2"].info["layers"] == ["Linear(1280->40)", "Linear(40->40)", "Linear(40->10)"]
    assert arms[ref].info["layers"] == ["SpinalLinear(1280->10, 4 x 20, splits 640/640)"]


def test_one_seed_gives_one_head():
    """fc and linear are the same Dense on these features: one seed draws the same weights for both."""
    drawn = []
    for spec in ("fc", "linear", "fc"):
        keras.utils.set_random_seed(3)
        head = resolve_arm(spec, 16, 4).build()
        head.build((None, 16))
        drawn.append(_kernels(head)[0][0])
    np.testing.assert_array_equal(drawn[0], drawn[1])
    keras.utils.set_random_seed(4)
    other = resolve_arm("fc", 16, 4).build()
    other.build((None, 16))
    assert not np.array_equal(drawn[0], _kernels(other)[0][0])


@pytest.mark.parametrize("spec,message", [
    ("spinal:widht=3", r"unknown option of 'spinal' heads 'widht'; known: activation, batch_norm"),
    ("mpl", r"unknown head 'mpl' \(did you mean 'mlp'\?\)"),
    ("mlp:hidden=0", r"hidden must be a whole number >= 1, got '0'"),
])
def test_a_bad_spec_is_one_error(spec, message):
    with pytest.raises(UsageError, match=message):
        resolve_arm(spec, 10, 3)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the PyTorch arms need torch")
@pytest.mark.parametrize("spec", SPECS)
def test_each_arm_has_the_layers_of_its_pytorch_twin(spec):
    from torch import nn

    from spinalnet.heads.arms import HeadContext, build, count_params, describe_head, resolve
    from spinalnet.heads.spec import parse_arm

    context = HeadContext(300, 5, {"layer_width": 128, "num_layers": 4}, lambda: nn.Linear(300, 5))
    torch_spec = resolve(parse_arm(spec), context, parse_arm(REFERENCE))
    torch_head = build(torch_spec, context)
    arm = resolve_arm(spec, 300, 5, reference=REFERENCE)
    assert arm.spec.name == torch_spec.name and arm.params == count_params(torch_spec, context)
    described = describe_head(torch_head)
    assert arm.info["layers"] == described["layers"] and arm.info["batch_norm"] == described["batch_norm"]
    assert arm.info["dropout"] == described["dropout"] or spec.startswith("fc")  # fc: the model's own dropout
    if arm.spec.kind == "spinal":
        return  # SpinalLinear keeps a chunk's and the chain's weights apart: test_keras_torch.py compares the two
    linears = [m for m in torch_head.modules() if isinstance(m, nn.Linear)]
    head = arm.build()
    head.build((None, 300))
    keras_shapes = [k.shape for k, _ in _kernels(head)]
    assert keras_shapes == [tuple(m.weight.shape[::-1]) for m in linears]  # (in, out) per layer, in order
