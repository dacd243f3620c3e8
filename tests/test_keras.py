"""Keras 3 SpinalDense: same math as SpinalLinear, weight transfer both ways, saving, training."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

from spinalnet import SpinalLinear  # noqa: E402
from spinalnet.keras import SpinalDense, from_torch, spinal_vgg5, to_torch, with_spinal_head  # noqa: E402


def _np(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


@pytest.mark.parametrize("kwargs", [
    dict(layer_width=5, num_layers=5, num_splits=3, activation="gelu", batch_norm=True),
    dict(layer_width=8, num_layers=6, num_splits=2, activation="leaky_relu"),
    dict(layer_width=4, num_layers=1, num_splits=1, activation="tanh", bias=False),
])
def test_weights_transfer_both_ways_with_identical_outputs(kwargs):
    torch.manual_seed(0)
    layer = SpinalLinear(11, 3, **kwargs).eval()
    for hidden in layer.layers:
        if hidden.norm is not None:
            hidden.norm.running_mean.uniform_(-1, 1), hidden.norm.running_var.uniform_(0.5, 2)
    dense = from_torch(layer)
    x = np.random.default_rng(0).standard_normal((6, 11)).astype("float32")
    expected = layer(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(_np(dense(x, training=False)), expected, atol=1e-5)
    back = to_torch(dense).eval()
    np.testing.assert_allclose(back(torch.from_numpy(x)).detach().numpy(), expected, atol=1e-5)
    original = layer.state_dict()
    for name, value in back.state_dict().items():  # every tensor, BatchNorm and output included
        if not name.endswith("num_batches_tracked"):
            torch.testing.assert_close(value, original[name], msg=name)


def test_split_rule_matches_spinal_linear():
    dense = SpinalDense(2, layer_width=3, num_layers=5, num_splits=3)
    dense.build((None, 10))
    assert dense.split_sizes == [4, 3, 3]
    assert [tuple(k.shape) for k in dense.kernels] == [(4, 3), (6, 3), (6, 3), (7, 3), (6, 3)]
    torch_layer = SpinalLinear(10, 2, layer_width=3, num_layers=5, num_splits=3)
    assert dense.count_params() == torch_layer.num_params


def test_save_and_load_keras_file_round_trips(tmp_path):
    inputs = keras.Input((12,))
    model = keras.Model(inputs, SpinalDense(4, layer_width=6, num_layers=4, batch_norm=True, dropout=0.3)(inputs))
    x = np.random.default_rng(1).standard_normal((5, 12)).astype("float32")
    path = tmp_path / "spinal.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(_np(loaded(x, training=False)), _np(model(x, training=False)), atol=1e-6)
    config = loaded.layers[-1].get_config()
    assert (config["units"], config["layer_width"], config["batch_norm"], config["dropout"]) == (4, 6, True, 0.3)


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="num_layers \\(1\\) must be >= num_splits \\(2\\)"):
        SpinalDense(3, layer_width=4, num_layers=1)
    with pytest.raises(ValueError, match="unknown activation 'swish2'"):
        SpinalDense(3, layer_width=4, activation="swish2")
    with pytest.raises(ValueError, match="layer_width must be an integer >= 1"):
        SpinalDense(3, layer_width=0)


def test_training_lowers_the_loss_out_of_the_box():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 20)).astype("float32")
    y = (x[:, :5].sum(1) > 0).astype("int64") + 2 * (x[:, 10:15].sum(1) > 0)
    inputs = keras.Input((20,))
    model = keras.Model(inputs, SpinalDense(4, layer_width=16, num_layers=4)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.6 * losses[0] and history.history["accuracy"][-1] > 0.8


def test_vgg5_and_applications_head():
    for head in ("spinal", "fc"):
        model = spinal_vgg5((28, 28, 1), 7, head=head)
        assert model(np.zeros((2, 28, 28, 1), "float32")).shape == (2, 7)
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, pooling="avg", weights=None)
    model = with_spinal_head(base, 5, layer_width=16, freeze_base=True)
    assert isinstance(model.layers[-1], SpinalDense) and model(np.zeros((2, 32, 32, 3), "float32")).shape == (2, 5)
    assert all(not w.trainable for layer in base.layers for w in layer.weights)


OTHER_BACKENDS = [b for b, module in (("tensorflow", "tensorflow"), ("jax", "jax")) if importlib.util.find_spec(module)]


@pytest.mark.parametrize("backend", OTHER_BACKENDS or [pytest.param("none", marks=pytest.mark.skip(
    reason="neither TensorFlow nor JAX is installed"))])
def test_other_backends_give_the_same_outputs(backend):
    script = (
        "import numpy as np, torch\n"
        "from spinalnet import SpinalLinear\n"
        "from spinalnet.keras import from_torch\n"
        "import keras\n"
        "torch.manual_seed(0)\n"
        "layer = SpinalLinear(9, 2, layer_width=4, num_layers=4, batch_norm=True).eval()\n"
        "x = np.random.default_rng(0).standard_normal((3, 9)).astype('float32')\n"
        "diff = np.abs(keras.ops.convert_to_numpy(from_torch(layer)(x, training=False))"
        " - layer(torch.from_numpy(x)).detach().numpy()).max()\n"
        "assert diff < 1e-5, diff\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "KERAS_BACKEND": backend},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
