"""Batched device augmentation: exact pixel shifts and flips, seeded, shapes kept."""

from __future__ import annotations

import pytest
import torch

from spinalnet.data import AUGMENTATIONS, AugmentSpec, DeviceTransform, augment_spec
from spinalnet.errors import UsageError


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_without_augmentation_it_only_normalises():
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    out = DeviceTransform((0.5,), (0.25,))(x, _gen())
    torch.testing.assert_close(out, (x.float() / 255 - 0.5) / 0.25)


def test_translation_moves_pixels_by_whole_steps_without_blurring():
    x = torch.zeros(64, 1, 16, 16, dtype=torch.uint8)
    x[:, 0, 8, 8] = 255
    out = DeviceTransform((0.0,), (1.0,), AugmentSpec(translate=4))(x, _gen())
    for img in out[:, 0]:
        ys, xs = torch.nonzero(img > 1e-4, as_tuple=True)
        assert len(ys) == 1 and abs(int(ys[0]) - 8) <= 4 and abs(int(xs[0]) - 8) <= 4
        assert img.max().item() == pytest.approx(1.0, abs=1e-5)
    shifts = {tuple(torch.nonzero(img > 1e-4)[0].tolist()) for img in out[:, 0]}
    assert len(shifts) > 10  # shifts really vary


def test_flip_mirrors_about_half_of_the_batch():
    x = torch.zeros(200, 1, 8, 8, dtype=torch.uint8)
    x[:, 0, :, 0] = 255
    out = DeviceTransform((0.0,), (1.0,), AugmentSpec(hflip=True))(x, _gen())
    flipped = (out[:, 0, :, 7] > 0.99).all(1)
    kept = (out[:, 0, :, 0] > 0.99).all(1)
    assert bool((flipped ^ kept).all()) and 60 < int(flipped.sum()) < 140


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_presets_are_seeded_and_keep_shape(name):
    x = torch.randint(0, 256, (8, 3, 20, 20), dtype=torch.uint8)
    t = DeviceTransform((0.5,) * 3, (0.5,) * 3, augment_spec(name))
    a, b = t(x, _gen(7)), t(x, _gen(7))
    assert a.shape == x.shape and torch.isfinite(a).all() and torch.equal(a, b)
    if name != "none":
        assert not torch.equal(t(x, _gen(8)), a)


def test_rotation_keeps_the_centre_and_mass_roughly():
    x = torch.zeros(16, 1, 28, 28, dtype=torch.uint8)
    x[:, :, 10:18, 10:18] = 255
    out = DeviceTransform((0.0,), (1.0,), AugmentSpec(rotate=10))(x, _gen())
    assert torch.allclose(out[:, 0, 14, 14], torch.ones(16))
    assert torch.allclose(out.sum((1, 2, 3)), torch.full((16,), 64.0), rtol=0.08)


def test_resize_and_channel_expansion_for_imagenet_backbones():
    x = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    out = DeviceTransform((0.5,), (0.5,), size=(64, 64), channels=3)(x)
    assert out.shape == (2, 3, 64, 64) and torch.equal(out[:, 0], out[:, 2])


def test_unknown_augmentation_suggests():
    with pytest.raises(UsageError, match=r"unknown augmentation 'crop-flop' \(did you mean 'crop-flip'\?\)"):
        augment_spec("crop-flop")
