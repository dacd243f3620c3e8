"""spinalnet.keras next to PyTorch: weights both ways, torch.nn.BatchNorm1d parity, the zoo's VGG-5 counts."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from spinalnet import SpinalLinear  # noqa: E402
from spinalnet.keras import BatchNorm, from_torch, to_torch, vgg5  # noqa: E402
from spinalnet.models import create_model  # noqa: E402


def _np(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


@pytest.mark.parametrize("kwargs", [
    dict(layer_width=5, num_layers=5, num_splits=3, activation="gelu", batch_norm=True),
    dict(layer_width=8, num_layers=6, num_splits=2, activation="leaky_relu"),
    dict(layer_width=4, num_layers=1, num_splits=1, activation="tanh", bias=False),
    dict(layer_width=4, num_layers=3, num_splits=2, activation="ReLU", batch_norm=True),
    dict(layer_width=4, num_layers=3, num_splits=2, activation=nn.ReLU),
    dict(layer_width=4, num_layers=3, num_splits=2, activation=nn.LeakyReLU),
    dict(layer_width=4, num_layers=3, num_splits=2, activation=nn.LeakyReLU(0.01)),
])
def test_weights_transfer_both_ways_with_identical_outputs(kwargs):
    torch.manual_seed(0)
    layer = SpinalLinear(11, 3, **kwargs).eval()
    with torch.no_grad():
        for name, buffer in layer.named_buffers():
            if name.endswith("running_mean"):
                buffer.uniform_(-1, 1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 2)
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
    assert dense.count_params() - 2 * len(dense.norms) * dense.layer_width == layer.num_params


def test_activation_with_a_custom_argument_is_refused_by_from_torch():
    layer = SpinalLinear(6, 2, layer_width=3, activation=nn.LeakyReLU(0.2))
    with pytest.raises(ValueError, match="unknown activation"):
        from_torch(layer)


def test_batchnorm_moving_statistics_match_torch_after_training_steps():
    torch_bn, keras_bn = nn.BatchNorm1d(4), BatchNorm()
    keras_bn.build((None, 4))
    rng = np.random.default_rng(0)
    for step in range(5):
        x = rng.normal(step, 3.0, (7, 4)).astype("float32")
        y_torch = torch_bn.train()(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(_np(keras_bn(x, training=True)), y_torch, atol=1e-5)
    np.testing.assert_allclose(_np(keras_bn.moving_mean), torch_bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(keras_bn.moving_variance), torch_bn.running_var.numpy(), rtol=1e-5)
    x = rng.normal(0, 1, (3, 4)).astype("float32")
    np.testing.assert_allclose(_np(keras_bn(x, training=False)), torch_bn.eval()(torch.from_numpy(x)).detach().numpy(),
                               atol=1e-5)


@pytest.mark.parametrize("head", ["fc", "spinal"])
def test_vgg5_has_the_torch_zoos_parameter_counts(head):
    model = vgg5((28, 28, 1), 24, head=head)
    zoo = create_model("vgg5", 24, in_channels=1, image_size=(28, 28), head=head)
    params = sum(p.numel() for p in zoo.parameters())
    statistics = sum(b.numel() for name, b in zoo.named_buffers() if not name.endswith("num_batches_tracked"))
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == params
    assert model.count_params() == params + statistics  # Keras counts BN's moving statistics as weights
