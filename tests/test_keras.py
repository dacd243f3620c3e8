"""spinalnet.keras on whatever backend runs the tests (make test: torch, then JAX and TensorFlow without torch)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.special import erf

keras = pytest.importorskip("keras")

from spinalnet.keras import BatchNorm, SpinalDense, from_torch, vgg5, with_spinal_head  # noqa: E402

BACKEND = keras.backend.backend()


def _np(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x)).astype(np.float64)


def reference(dense: SpinalDense, x: np.ndarray) -> np.ndarray:
    """The block's math in numpy, read from the paper (eval mode: BN uses its moving statistics)."""
    acts = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
            "gelu": lambda z: 0.5 * z * (1 + erf(z / np.sqrt(2)))}
    act = acts[dense.activation]
    chunks = np.array_split(x.astype(np.float64), dense.num_splits, axis=-1)
    hidden, h = [], None
    for i in range(dense.num_layers):
        inp = chunks[i % dense.num_splits] if h is None else np.concatenate([chunks[i % dense.num_splits], h], -1)
        z = inp @ _np(dense.kernels[i]) + (_np(dense.biases[i]) if dense.use_bias else 0)
        if dense.batch_norm:
            gamma, beta, mean, var = (_np(w) for w in dense.norms[i].weights)
            z = (z - mean) / np.sqrt(var + 1e-5) * gamma + beta
        h = act(z)
        hidden.append(h)
    return np.concatenate(hidden, -1) @ _np(dense.out_kernel) + (_np(dense.out_bias) if dense.use_bias else 0)


@pytest.mark.parametrize("kwargs", [
    dict(layer_width=5, num_layers=5, num_splits=3, activation="gelu", batch_norm=True),
    dict(layer_width=8, num_layers=6, num_splits=2, activation="LeakyReLU"),
    dict(layer_width=4, num_layers=1, num_splits=1, activation="tanh", use_bias=False),
])
def test_outputs_match_a_numpy_reference(kwargs):
    keras.utils.set_random_seed(0)
    dense = SpinalDense(3, **kwargs)
    dense.build((None, 11))
    for norm in dense.norms:  # non-trivial statistics
        rng = np.random.default_rng(1)
        norm.moving_mean.assign(rng.uniform(-1, 1, 5)), norm.moving_variance.assign(rng.uniform(0.5, 2, 5))
    x = np.random.default_rng(0).standard_normal((6, 11)).astype("float32")
    np.testing.assert_allclose(_np(dense(x, training=False)), reference(dense, x), atol=2e-5)


def test_split_rule_and_parameter_count():
    dense = SpinalDense(2, layer_width=3, num_layers=5, num_splits=3)
    dense.build((None, 10))
    assert dense.split_sizes == [4, 3, 3]
    assert [tuple(k.shape) for k in dense.kernels] == [(4, 3), (6, 3), (6, 3), (7, 3), (6, 3)]
    assert dense.count_params() == (4 + 6 + 6 + 7 + 6) * 3 + 5 * 3 + 15 * 2 + 2


def test_activation_names_are_normalised():
    assert [SpinalDense(2, 3, activation=a).activation for a in ("ReLU", "relu", "leaky-relu", "LeakyReLU", "swish")] \
        == ["relu", "relu", "leaky_relu", "leaky_relu", "silu"]
    assert SpinalDense(2, 3, activation="GELU").get_config()["activation"] == "gelu"


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="num_layers \\(1\\) must be >= num_splits \\(2\\)"):
        SpinalDense(3, layer_width=4, num_layers=1)
    with pytest.raises(ValueError, match="unknown activation 'swish2'"):
        SpinalDense(3, layer_width=4, activation="swish2")
    with pytest.raises(ValueError, match="layer_width must be an integer >= 1"):
        SpinalDense(3, layer_width=0)
    with pytest.raises(ValueError, match="batch_norm must be True or False, got 'False'"):
        SpinalDense(3, layer_width=4, batch_norm="False")
    with pytest.raises(ValueError, match="dropout must be a probability"):
        SpinalDense(3, layer_width=4, dropout=True)
    assert SpinalDense(np.int64(3), layer_width=np.int64(4), dropout=np.float32(0.5)).get_config()["units"] == 3
    with pytest.raises(ValueError, match="head must be one of"):
        vgg5((28, 28, 1), 3, head="spinal2")


def test_inputs_of_another_width_or_an_unknown_width_are_refused():
    """A wider input than the layer was built for was read only in part, with no error."""
    dense = SpinalDense(3, layer_width=4)
    dense(np.zeros((2, 6), "float32"))
    for width in (9, 5):
        with pytest.raises(ValueError, match=f"expected axis -1 of input shape to have value 6.*\\(2, {width}\\)"):
            dense(np.zeros((2, width), "float32"))
    with pytest.raises(ValueError, match="needs a known last dimension"):
        SpinalDense(3, layer_width=4)(keras.Input((None,)))


def test_a_model_that_has_predicted_once_still_refuses_a_wider_input():
    """TensorFlow re-traces predict with an unknown last dimension, past input_spec: the layer itself must
    not read only the first columns of a wider input (it did, silently)."""
    model = keras.Sequential([keras.Input((12,)), SpinalDense(3, layer_width=8)])
    rng = np.random.default_rng(0)
    model.predict(rng.random((8, 12)).astype("float32"), verbose=0)
    with pytest.raises(Exception):  # Keras' ValueError, or the backend's own shape error inside the graph
        model.predict(rng.random((2, 13)).astype("float32"), verbose=0)


def test_batch_norm_with_leading_dimensions_matches_the_reference():
    keras.utils.set_random_seed(0)
    dense = SpinalDense(3, layer_width=4, num_layers=3, batch_norm=True)
    inputs = keras.Input((5, 7))
    model = keras.Model(inputs, dense(inputs))
    x = np.random.default_rng(0).standard_normal((2, 5, 7)).astype("float32")
    y = _np(model(x, training=False))
    assert y.shape == (2, 5, 3)
    np.testing.assert_allclose(y, reference(dense, x), atol=1e-5)


def test_an_empty_training_batch_leaves_the_moving_statistics_alone():
    """Its mean is NaN: the moving statistics became NaN for good, and every later output with them."""
    dense = SpinalDense(3, layer_width=4, batch_norm=True)
    x = np.random.default_rng(0).standard_normal((8, 6)).astype("float32")
    dense(x, training=True)
    before = [_np(v) for norm in dense.norms for v in (norm.moving_mean, norm.moving_variance)]
    assert _np(dense(np.zeros((0, 6), "float32"), training=True)).shape == (0, 3)
    after = [_np(v) for norm in dense.norms for v in (norm.moving_mean, norm.moving_variance)]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(_np(dense(x, training=False)), reference(dense, x), atol=1e-5)


def test_a_keras_relu_with_other_arguments_is_refused():
    """``keras.layers.ReLU(max_value=6)`` is not the function "relu" names (it was taken as plain relu)."""
    for layer in (keras.layers.ReLU(max_value=6.0), keras.layers.ReLU(negative_slope=0.2),
                  keras.layers.ReLU(threshold=1.0)):
        with pytest.raises(ValueError, match="differs from the default"):
            SpinalDense(3, layer_width=4, activation=layer)
    assert SpinalDense(3, layer_width=4, activation=keras.layers.ReLU()).activation == "relu"


def test_save_and_load_keras_file_round_trips(tmp_path):
    inputs = keras.Input((12,))
    model = keras.Model(inputs, SpinalDense(4, layer_width=6, num_layers=4, batch_norm=True, dropout=0.3)(inputs))
    x = np.random.default_rng(1).standard_normal((5, 12)).astype("float32")
    model.save(tmp_path / "spinal.keras")
    loaded = keras.saving.load_model(tmp_path / "spinal.keras")
    np.testing.assert_allclose(_np(loaded(x, training=False)), _np(model(x, training=False)), atol=1e-6)
    config = loaded.layers[-1].get_config()
    assert (config["units"], config["layer_width"], config["batch_norm"], config["dropout"]) == (4, 6, True, 0.3)
    from spinalnet.keras import load_model

    again = load_model(tmp_path / "spinal.keras")
    np.testing.assert_allclose(_np(again(x, training=False)), _np(model(x, training=False)), atol=1e-6)


@pytest.mark.slow
def test_fit_lowers_the_loss_out_of_the_box():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 20)).astype("float32")
    y = (x[:, :5].sum(1) > 0).astype("int64") + 2 * (x[:, 10:15].sum(1) > 0)
    inputs = keras.Input((20,))
    model = keras.Model(inputs, SpinalDense(4, layer_width=16, num_layers=4, batch_norm=True)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit(x, y, epochs=8, batch_size=64, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.6 * losses[0] and history.history["accuracy"][-1] > 0.8


def test_batchnorm_moving_statistics_follow_torchs_rule():
    """torch: running = 0.9 running + 0.1 batch statistic, with the UNBIASED batch variance."""
    norm = BatchNorm()
    norm.build((None, 3))
    mean, var = np.zeros(3), np.ones(3)
    rng = np.random.default_rng(0)
    for step in range(3):
        x = rng.normal(step, 2.0, (5, 3)).astype("float32")
        y = _np(norm(x, training=True))
        np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), atol=1e-5)  # biased in the batch
        mean, var = 0.9 * mean + 0.1 * x.mean(0), 0.9 * var + 0.1 * x.var(0, ddof=1)
    np.testing.assert_allclose(_np(norm.moving_mean), mean, rtol=1e-5)
    np.testing.assert_allclose(_np(norm.moving_variance), var, rtol=1e-5)


def _mixed_and_float32_twins():
    x = np.random.default_rng(0).standard_normal((16, 24)).astype("float32")
    mixed = SpinalDense(5, layer_width=32, num_layers=4, batch_norm=True, dropout=0.1, dtype="mixed_bfloat16")
    plain = SpinalDense(5, layer_width=32, num_layers=4, batch_norm=True, dropout=0.1)
    mixed.build((None, 24)), plain.build((None, 24))
    plain.set_weights(mixed.get_weights())
    return x, mixed, plain


def test_per_layer_mixed_policy_computes_in_bfloat16():
    x, mixed, plain = _mixed_and_float32_twins()
    assert {w.dtype for w in mixed.weights} == {"float32"}  # variables stay float32
    assert {layer.compute_dtype for layer in [*mixed.drops, *mixed.norms]} == {"bfloat16"}
    got, exact = _np(mixed(x, training=False)), _np(plain(x, training=False))
    error = np.abs(got - exact).max() / np.abs(exact).max()
    assert 1e-4 < error < 3e-2, error  # bfloat16 rounding (8 bits of mantissa), not float32 and not garbage
    for training in (False, True):
        assert keras.backend.standardize_dtype(mixed(x, training=training).dtype) == "bfloat16"


def test_model_saved_under_a_mixed_policy_loads_and_runs_under_float32(tmp_path):
    x = np.random.default_rng(0).standard_normal((8, 12)).astype("float32")
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((12,))
        model = keras.Model(inputs, SpinalDense(3, layer_width=8, batch_norm=True)(inputs))
        model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, np.arange(8) % 3, epochs=1, verbose=0)
        expected = _np(model(x, training=False))
        model.save(tmp_path / "mixed.keras")
    finally:
        keras.config.set_dtype_policy("float32")
    loaded = keras.saving.load_model(tmp_path / "mixed.keras")
    np.testing.assert_allclose(_np(loaded(x, training=False)), expected, atol=1e-6)
    loaded.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert np.isfinite(loaded.fit(x, np.arange(8) % 3, epochs=1, verbose=0).history["loss"][0])


def _spinal_head_trainable(num_classes: int) -> int:
    """VGG-5's Spinal head by the paper's formula: 4 layers of width 128 over halves of 128, BN, output."""
    return (128 + 3 * 256) * 128 + 4 * 128 + 2 * 4 * 128 + 512 * num_classes + num_classes


#: VGG-5's mlp hidden width: the Spinal head's count over the 256 + 1 + C + 2 (BN) parameters of one hidden unit.
MLP_WIDTH = {c: round((_spinal_head_trainable(c) - c) / (256 + 1 + c + 2)) for c in (3, 7)}


def vgg5_param_count(num_classes: int, head: str) -> tuple[int, int]:
    """(trainable, all) parameters of VGG-5 by formula: convs + BN scale/shift (+ 2 moving statistics)."""
    convs, bn, c_in = 0, 0, 1
    for c_out in (64, 64, 128, 128, 256, 256, 256, 256, 256, 256):
        convs, bn, c_in = convs + 9 * c_in * c_out + c_out, bn + c_out, c_out
    if head in ("fc", "mlp"):  # the mlp head is the fc layout, as wide as the Spinal head is large
        width = 512 if head == "fc" else MLP_WIDTH[num_classes]
        top, bn = 256 * width + width + width * num_classes + num_classes, bn + width
    else:
        top, bn = (128 + 256 + 256 + 256) * 128 + 4 * 128 + 512 * num_classes + num_classes, bn + 4 * 128
    return convs + top + 2 * bn, convs + top + 4 * bn


@pytest.mark.parametrize("head", ["fc", "mlp", "spinal"])
def test_vgg5_builds_every_head(head):
    model = vgg5((28, 28, 1), 7, head=head)
    assert model(np.zeros((2, 28, 28, 1), "float32")).shape == (2, 7)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert (trainable, model.count_params()) == vgg5_param_count(7, head)


def _same_weights(a: keras.Model, b: keras.Model) -> None:
    assert len(a.weights) == len(b.weights) > 0
    for mine, theirs in zip(a.weights, b.weights):
        np.testing.assert_array_equal(_np(mine), _np(theirs))


def test_with_spinal_head_loads_a_local_weights_file_into_a_keras_applications_base(tmp_path):
    donor = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None)
    path = tmp_path / "mobilenet_v2_notop.weights.h5"
    donor.save_weights(path)
    model = with_spinal_head("MobileNetV2", 5, weights=path, input_shape=(32, 32, 3), layer_width=16)
    _same_weights(keras.Model(model.input, model.layers[-3].output), donor)
    assert isinstance(model.layers[-1], SpinalDense) and tuple(model.output.shape) == (None, 5)
    with pytest.raises(FileNotFoundError, match="backbone weights file not found"):
        with_spinal_head("MobileNetV2", 5, weights=tmp_path / "missing.h5")


def test_with_spinal_head_on_a_given_base_loads_weights_and_freezes(tmp_path):
    def base() -> keras.Model:
        inputs = keras.Input((8, 8, 3))
        return keras.Model(inputs, keras.layers.ReLU()(BatchNorm()(keras.layers.Conv2D(6, 3)(inputs))))

    donor = base()
    donor.save_weights(tmp_path / "base.weights.h5")
    frozen = base()
    model = with_spinal_head(frozen, 4, weights=tmp_path / "base.weights.h5", layer_width=8, freeze_base=True)
    _same_weights(frozen, donor)
    assert model(np.zeros((2, 8, 8, 3), "float32")).shape == (2, 4)  # the feature map is average-pooled
    assert not any(w.trainable for w in frozen.weights) and model.trainable_weights == model.layers[-1].trainable_weights


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed here")
def test_without_torch_import_is_clean_and_from_torch_says_what_to_install():
    assert "torch" not in sys.modules
    with pytest.raises(ImportError, match=r"pip install 'spinalnet\[torch\]'"):
        from_torch(object())
    done = subprocess.run([sys.executable, "-m", "spinalnet", "train"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("spinalnet: error: ") and \
        "pip install 'spinalnet[torch]'" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_readme_keras_example_runs_as_written():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("## For Keras users"):]
    start = section.index("```python\n") + len("```python\n")
    namespace: dict = {}
    exec(compile(section[start : section.index("```", start)], "README.md", "exec"), namespace)
    assert tuple(namespace["transfer"].output.shape) == (None, 200) and namespace["vgg"].name == "vgg5_spinal"
    assert {layer.compute_dtype for layer in namespace["fast"].drops} == {"bfloat16"}
