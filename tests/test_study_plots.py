"""The study's pictures: each is a PNG of a sensible size, written atomically, with its marks drawn and no two
texts overlapping at 20 settings and 5 arms; the edge cases (nothing pooled, two settings, one setting) draw."""

from __future__ import annotations

import struct
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import spinalnet.plots  # noqa: E402
from spinalnet.meta import SettingEffect, pool, pool_contrasts, rank_arms  # noqa: E402
from spinalnet.study.plots import plot_cd_diagram, plot_forest, plot_heatmap  # noqa: E402

ARMS = ["fc", "linear", "mlp", "mlp2", "spinal"]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def settings(n: int) -> list[str]:
    return [f"efficientnet-lite{i % 3} / {'fashion-mnist' if i % 2 else 'digits'} ({i})" for i in range(n)]


@pytest.fixture
def overlaps(monkeypatch) -> list[str]:
    """Every picture saved during the test is checked first: pairs of non-empty texts whose boxes overlap."""
    found: list[str] = []
    save = spinalnet.plots.save_figure

    def checked(fig, path, **kwargs):
        fig.canvas.draw()  # lay out first: titles and colour-bar labels move when drawn
        renderer = fig.canvas.get_renderer()
        hidden = {id(t) for ax in fig.axes if not ax.axison for t in ax.get_xticklabels() + ax.get_yticklabels()}
        texts = [t for t in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_window_extent"))
                 if t.get_visible() and t.get_text().strip() and id(t) not in hidden]
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
        found.extend(f"{a!r} / {b!r}" for (a, ba), (b, bb) in combinations(boxes, 2) if ba.overlaps(bb))
        save(fig, path, **kwargs)

    monkeypatch.setattr(spinalnet.plots, "save_figure", checked)
    return found


def test_forest_plot(tmp_path, overlaps):
    from matplotlib.image import imread

    rng = np.random.default_rng(0)
    found = [SettingEffect(s, float(rng.normal(0.2, 0.4)), float(rng.uniform(0.08, 0.25)), 9,
                           float(rng.uniform(0, 0.1))) for s in settings(20)]
    found.append(SettingEffect("one seed", 0.3, None))
    pooled = pool_contrasts({"spinal vs mlp": found})["spinal vs mlp"]
    path = tmp_path / "forest-mlp.png"
    plot_forest(found, pooled, path, "spinal vs mlp (same parameters)", "spinal minus mlp: accuracy points")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forest-mlp.png"]  # no temporary file left
    width, height = png_size(path)
    assert 700 < width < 1600 and 800 < height < 1400 and height > width * 0.7  # a row per setting
    pixels = imread(path)[..., :3]
    diamond = np.all(np.abs(pixels - np.array([0xDD, 0x84, 0x52]) / 255) < 0.02, axis=-1)
    assert diamond.sum() > 200  # the pooled diamond is drawn
    assert not overlaps, overlaps[:5]


def test_critical_difference_diagram(tmp_path, overlaps):
    rng = np.random.default_rng(1)
    accuracy = {s: {a: 90 + rng.normal(0, 0.5) + 0.3 * j for j, a in enumerate(ARMS)} for s in settings(20)}
    ranking = rank_arms(accuracy)
    assert ranking.cliques  # the picture has group bars to draw
    path = tmp_path / "cd.png"
    plot_cd_diagram(ranking, path, "arms ranked over 20 settings")
    width, height = png_size(path)
    assert 600 < width < 1400 and 200 < height < width
    from matplotlib.image import imread

    dark = np.all(imread(path)[..., :3] < 0.1, axis=-1)
    assert dark[:, width // 3: 2 * width // 3].sum(axis=1).max() > width // 6  # the axis or a clique bar spans it
    assert not overlaps, overlaps[:5]


def test_heatmap(tmp_path, overlaps):
    from matplotlib.image import imread

    rng = np.random.default_rng(2)
    accuracy = {s: {a: 85 + 5 * (i % 2) + rng.normal(0, 0.6) for a in ARMS} for i, s in enumerate(settings(20))}
    del accuracy[settings(20)[3]]["mlp2"]  # a missing cell is drawn grey, not dropped
    path = tmp_path / "heatmap.png"
    plot_heatmap(accuracy, path, "test accuracy")
    width, height = png_size(path)
    assert 700 < width < 1500 and 700 < height < 1400
    pixels = imread(path)[..., :3]
    grey = np.all(np.abs(pixels - 0xDD / 255) < 0.01, axis=-1).sum()
    assert grey > 500  # the missing cell
    red = (pixels[..., 0] > 0.6) & (pixels[..., 2] < 0.3)
    blue = (pixels[..., 2] > 0.5) & (pixels[..., 0] < 0.3)
    assert red.sum() > 500 and blue.sum() > 500  # cells below and above their row's mean
    assert not overlaps, overlaps[:5]


def test_edge_cases_draw(tmp_path):
    """Two settings (no prediction interval), one (nothing pooled), none with a standard error; one setting's
    ranking (no test, no CD)."""
    small = [SettingEffect("a", 0.4, 0.2, 4, 0.03), SettingEffect("b", -0.1, 0.3, 4, 0.7)]
    for i, effects in enumerate((small, small[:1], [SettingEffect("flat", 0.0, None)])):
        plot_forest(effects, pool(effects), tmp_path / f"forest{i}.png", "edge")
        width, height = png_size(tmp_path / f"forest{i}.png")
        assert 500 < width < 1300 and 200 < height < 600
    plot_cd_diagram(rank_arms({"only": {a: float(j) for j, a in enumerate(ARMS)}}), tmp_path / "cd.png", "one")
    assert png_size(tmp_path / "cd.png")[0] > 300


def test_the_overlap_check_sees_an_overlap(tmp_path, overlaps):
    fig, ax = spinalnet.plots.plt.subplots(figsize=(2, 2))
    ax.text(0.5, 0.5, "one label")
    ax.text(0.52, 0.5, "another label")
    spinalnet.plots.save_figure(fig, tmp_path / "overlap.png")
    assert overlaps == ["'one label' / 'another label'"]
