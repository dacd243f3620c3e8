"""Batched device augmentation: exact pixel shifts and flips, drawn per sample, shapes kept."""

from __future__ import annotations

import pytest
import torch

from spinalnet.data import AUGMENTATIONS, AugmentSpec, DeviceTransform, augment_spec
from spinalnet.data.augment import centre_crop, epoch_draws
from spinalnet.errors import UsageError

N = 200  # rows of the draws table the tests below index


def _gen(seed: int = 0, n: int = N) -> torch.Tensor:
    """Each sample's augmentation numbers, as an epoch draws them: row i for sample i."""
    return epoch_draws(n, seed)


def test_without_augmentation_it_only_normalises():
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    out = DeviceTransform((0.5,), (0.25,))(x, _gen(0, 4))
    torch.testing.assert_close(out, (x.float() / 255 - 0.5) / 0.25)


def test_translation_moves_pixels_by_whole_steps_without_blurring():
    x = torch.zeros(64, 1, 16, 16, dtype=torch.uint8)
    x[:, 0, 8, 8] = 255
    out = DeviceTransform((0.0,), (1.0,), AugmentSpec(translate=4))(x, _gen(0, 64))
    for img in out[:, 0]:
        ys, xs = torch.nonzero(img > 1e-4, as_tuple=True)
        assert len(ys) == 1 and abs(int(ys[0]) - 8) <= 4 and abs(int(xs[0]) - 8) <= 4
        assert img.max().item() == pytest.approx(1.0, abs=1e-5)
    shifts = {tuple(torch.nonzero(img > 1e-4)[0].tolist()) for img in out[:, 0]}
    assert len(shifts) > 10  # shifts really vary


def test_flip_mirrors_about_half_of_the_batch():
    x = torch.zeros(200, 1, 8, 8, dtype=torch.uint8)
    x[:, 0, :, 0] = 255
    out = DeviceTransform((0.0,), (1.0,), AugmentSpec(hflip=True))(x, _gen(0, 200))
    flipped = (out[:, 0, :, 7] > 0.99).all(1)
    kept = (out[:, 0, :, 0] > 0.99).all(1)
    assert bool((flipped ^ kept).all()) and 60 < int(flipped.sum()) < 140


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_presets_are_seeded_and_keep_shape(name):
    x = torch.randint(0, 256, (8, 3, 20, 20), dtype=torch.uint8)
    t = DeviceTransform((0.5,) * 3, (0.5,) * 3, augment_spec(name), crop=0.75)
    a, b = t(x, _gen(7, 8)), t(x, _gen(7, 8))
    assert a.shape == (8, 3, 15, 15) and torch.isfinite(a).all() and torch.equal(a, b)
    if name != "none":
        assert not torch.equal(t(x, _gen(8, 8)), a)


def test_rotation_keeps_the_centre_and_mass_roughly():
    x = torch.zeros(16, 1, 28, 28, dtype=torch.uint8)
    x[:, :, 10:18, 10:18] = 255
    out = DeviceTransform((0.0,), (1.0,), AugmentSpec(rotate=10))(x, _gen(0, 16))
    assert torch.allclose(out[:, 0, 14, 14], torch.ones(16))
    assert torch.allclose(out.sum((1, 2, 3)), torch.full((16,), 64.0), rtol=0.08)


def test_resize_and_channel_expansion_for_imagenet_backbones():
    x = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    out = DeviceTransform((0.5,), (0.5,), size=(64, 64), channels=3)(x)
    assert out.shape == (2, 3, 64, 64) and torch.equal(out[:, 0], out[:, 2])


def test_unknown_augmentation_suggests():
    with pytest.raises(UsageError, match=r"unknown augmentation 'crop-flop' \(did you mean 'crop-flip'\?\)"):
        augment_spec("crop-flop")


def test_a_sample_looks_the_same_in_any_batch():
    """Its augmentation is its row of the epoch's table: batch composition and order change nothing (so neither
    do data-loading workers, processes or an interruption)."""
    x = torch.randint(0, 256, (10, 1, 16, 16), dtype=torch.uint8)
    t = DeviceTransform((0.5,), (0.5,), augment_spec("perspective-rotate"))
    draws = _gen(3, 10)
    whole = t(x, draws)
    order = torch.tensor([7, 2, 9])
    torch.testing.assert_close(t(x[order], draws[order]), whole[order], rtol=0, atol=1e-6)


def test_centre_crop_at_eval_and_a_random_crop_inside_the_image_in_training():
    x = torch.arange(16 * 16, dtype=torch.float32).view(1, 1, 16, 16).repeat(50, 1, 1, 1) / 256
    assert torch.equal(centre_crop(x, 0.5)[0, 0], x[0, 0, 4:12, 4:12])
    t = DeviceTransform((0.0,), (1.0,), AugmentSpec(random_crop=True), crop=0.5)
    torch.testing.assert_close(t(x), x[:, :, 4:12, 4:12])  # no draws: the centre
    out = t(x, _gen(1, 50))
    assert out.shape == (50, 1, 8, 8)  # the window's size, as the centre crop's
    values = x[0, 0]
    assert out.min() >= values.min() - 1e-6 and out.max() <= values.max() + 1e-6  # inside: no zero padding
    corners = {float(img[0, 0, 0]) * 256 for img in out}
    assert len(corners) > 20  # the window moves ...
    assert all(torch.equal(img[0], x[0, 0, int(c) // 16:int(c) // 16 + 8, int(c) % 16:int(c) % 16 + 8])
               for img, c in zip(out, [float(i[0, 0, 0]) * 256 for i in out]))  # ... by whole pixels, unblurred


def test_transfer_recipes():
    assert augment_spec("transfer") == AugmentSpec(rotate=15, random_crop=True, hflip=True)
    assert augment_spec("rotate-crop") == AugmentSpec(rotate=15, random_crop=True)
    assert augment_spec("transfer").describe() == "rotation 15, random crop, horizontal flip"
