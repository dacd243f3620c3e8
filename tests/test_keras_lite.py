"""spinalnet.keras.efficientnet_lite and its preset directory, on whatever backend runs the tests (no torch needed).

The weights here are random, in timm's key layout, with narrow channels (the builder reads the widths from the
weights) so that a build and a pass take little time; tests/test_keras_pretrained.py checks the real ImageNet
weights against timm on every backend.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("safetensors")

from safetensors.numpy import save_file  # noqa: E402

from spinalnet.errors import UsageError  # noqa: E402
from spinalnet.keras import efficientnet_lite, read_preset  # noqa: E402
from spinalnet.keras.depthwise import DepthwiseConv2D  # noqa: E402
from spinalnet.keras.efficientnet_lite import STAGES  # noqa: E402

#: narrow stand-ins for Lite0's channels: stem, each stage's output, the head
STEM, OUTS, HEAD = 8, (4, 8, 12, 16, 20, 24, 28), 32  # a new width per stage, as in Lite0
DEPTHS = (1, 2, 2, 3, 3, 4, 1)  # Lite0's blocks per stage


def lite0_tensors(seed: int = 0, classes: int = 5) -> dict[str, np.ndarray]:
    """Random weights for every tensor timm's tf_efficientnet_lite0 has, with narrow channels."""
    rng = np.random.default_rng(seed)
    t: dict[str, np.ndarray] = {}

    def conv(key: str, out: int, inp: int, k: int) -> None:
        t[f"{key}.weight"] = rng.normal(0, (2 / (inp * k * k)) ** 0.5, (out, inp, k, k)).astype("float32")

    def norm(key: str, c: int) -> None:
        t.update({f"{key}.weight": rng.uniform(0.5, 1.5, c), f"{key}.bias": rng.normal(0, 0.1, c),
                  f"{key}.running_mean": rng.normal(0, 0.1, c), f"{key}.running_var": rng.uniform(0.5, 2, c),
                  f"{key}.num_batches_tracked": np.array(7)})

    conv("conv_stem", STEM, 3, 3), norm("bn1", STEM)
    width = STEM
    for s, ((_, k, _), out, depth) in enumerate(zip(STAGES, OUTS, DEPTHS)):
        for j in range(depth):
            p = f"blocks.{s}.{j}"
            if s == 0:
                conv(f"{p}.conv_dw", width, 1, k), norm(f"{p}.bn1", width)
                conv(f"{p}.conv_pw", out, width, 1), norm(f"{p}.bn2", out)
            else:
                mid = 2 * width
                conv(f"{p}.conv_pw", mid, width, 1), norm(f"{p}.bn1", mid)
                conv(f"{p}.conv_dw", mid, 1, k), norm(f"{p}.bn2", mid)
                conv(f"{p}.conv_pwl", out, mid, 1), norm(f"{p}.bn3", out)
            width = out
    conv("conv_head", HEAD, width, 1), norm("bn2", HEAD)
    t["classifier.weight"] = rng.normal(0, 0.1, (classes, HEAD))
    t["classifier.bias"] = rng.normal(0, 0.1, classes)
    return {k: np.asarray(v, dtype="int64" if k.endswith("tracked") else "float32") for k, v in t.items()}


def write_preset(directory: Path, tensors: dict[str, np.ndarray] | None = None,
                 architecture: str = "tf_efficientnet_lite0") -> Path:
    """A timm preset directory: config.json as timm writes it (the fields read here) and model.safetensors."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {"architecture": architecture, "num_classes": 5, "num_features": HEAD,
              "pretrained_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "input_size": [3, 224, 224]}}
    (directory / "config.json").write_text(json.dumps(config))
    save_file(lite0_tensors() if tensors is None else tensors, str(directory / "model.safetensors"))
    return directory


@pytest.fixture(scope="module")
def preset(tmp_path_factory) -> Path:
    return write_preset(tmp_path_factory.mktemp("preset") / "lite0")


def _np(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


@pytest.mark.slow  # builds the whole (narrow) Lite0 graph and compiles a pass through it
def test_the_weights_land_where_timm_keeps_them_and_the_classifier_reads_the_pooled_map(preset):
    tensors = lite0_tensors()
    net = efficientnet_lite(preset, input_shape=(64, 64, 3), include_top=True)
    np.testing.assert_array_equal(_np(net.get_layer("conv_stem").kernel), tensors["conv_stem.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(_np(net.get_layer("blocks_2_1_conv_dw").kernel),
                                  tensors["blocks.2.1.conv_dw.weight"].transpose(2, 3, 0, 1))
    norm = net.get_layer("blocks_5_3_bn3")
    np.testing.assert_array_equal(_np(norm.moving_variance), tensors["blocks.5.3.bn3.running_var"])
    assert norm.epsilon == 1e-3  # TensorFlow's, which the tf_ weights were trained with
    x = np.random.default_rng(1).uniform(-1, 1, (3, 64, 64, 3)).astype("float32")
    both = keras.Model(net.input, [net.get_layer("bn2_relu6").output, net.output])  # one compiled pass
    feature_map, logits = both.predict(x, verbose=0)
    assert feature_map.shape == (3, 2, 2, HEAD) and feature_map.min() >= 0 and feature_map.max() <= 6  # ReLU6
    expected = feature_map.mean((1, 2)) @ tensors["classifier.weight"].T + tensors["classifier.bias"]
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    # residual blocks where the shapes allow (stride 1, same width), none elsewhere: Lite0 has 9
    assert sum(layer.name.endswith("_skip") for layer in net.layers) == 9


@pytest.mark.parametrize("size,kernel,stride", [(9, 3, 2), (8, 5, 2)])  # padded 1+1; 1+2 (TF: the odd pixel after)
def test_depthwise_convolution_is_tensorflow_same_padding_and_a_sum_of_shifted_products(size, kernel, stride):
    """On JAX it runs as shifted products, elsewhere as Keras' own layer: the same numbers either way."""
    x = np.random.default_rng(0).standard_normal((2, size, size, 4)).astype("float32")
    layer = DepthwiseConv2D(kernel, stride, padding="same", use_bias=True)
    layer.build(x.shape)
    weights = [np.random.default_rng(1).standard_normal(w.shape).astype("float32") for w in layer.weights]
    layer.set_weights(weights)
    got = keras.Sequential([layer]).predict(x, verbose=0)  # compiled: eager JAX compiles every operation alone
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    padded = np.pad(x, ((0, 0), (total // 2, total - total // 2), (total // 2, total - total // 2), (0, 0)))
    k = weights[0][..., 0]
    manual = sum(padded[:, i : i + (out - 1) * stride + 1 : stride, j : j + (out - 1) * stride + 1 : stride] * k[i, j]
                 for i in range(kernel) for j in range(kernel)) + weights[1]
    np.testing.assert_allclose(got, manual, atol=1e-5)


def test_an_unknown_architecture_is_one_error_naming_the_known_ones(tmp_path):
    directory = write_preset(tmp_path / "p", architecture="tf_efficientnet_lite9")
    with pytest.raises(UsageError, match=r"architecture 'tf_efficientnet_lite9' is not one this builder has.*"
                                         r"tf_efficientnet_lite0.*did you mean"):
        efficientnet_lite(directory)


def test_a_missing_or_truncated_weights_file_is_one_error(tmp_path):
    directory = write_preset(tmp_path / "p")
    weights = directory / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match=r"model.safetensors: not a readable safetensors file \(truncated"):
        efficientnet_lite(directory)
    weights.unlink()
    with pytest.raises(UsageError, match=r"no weights file model.safetensors"):
        efficientnet_lite(directory)
    with pytest.raises(UsageError, match=r"missing, not a directory with config.json"):
        efficientnet_lite(tmp_path / "nowhere")
    (directory / "config.json").write_text("{not json")
    with pytest.raises(UsageError, match=r"config.json: not readable JSON"):
        read_preset(directory)


def test_weights_of_another_shape_are_one_error_naming_the_tensor(tmp_path):
    fewer = {k: v for k, v in lite0_tensors().items() if not k.startswith("blocks.5.3.")}
    with pytest.raises(UsageError, match=r"stage 5 of the weights has 3 blocks where tf_efficientnet_lite0 has 4"):
        efficientnet_lite(write_preset(tmp_path / "a", fewer))
    wrong = lite0_tensors()
    wrong["blocks.3.0.conv_pwl.weight"] = np.zeros((16, 7, 1, 1), "float32")  # reads 24 channels
    with pytest.raises(UsageError, match=r"blocks.3.0.conv_pwl.weight has shape \(1, 1, 7, 16\) where"):
        efficientnet_lite(write_preset(tmp_path / "b", wrong))
    extra = {**lite0_tensors(), "blocks.9.0.conv_dw.weight": np.zeros((8, 1, 3, 3), "float32")}
    with pytest.raises(UsageError, match=r"1 tensors this tf_efficientnet_lite0 does not use, e.g. 'blocks.9.0"):
        efficientnet_lite(write_preset(tmp_path / "c", extra))
