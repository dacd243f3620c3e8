"""examples/keras_quickdraw.py: VGG-5 vs SpinalVGG-5 with model.fit on CATEGORY.npy files, any backend."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("keras")

from test_keras import MLP_WIDTH, vgg5_param_count  # noqa: E402

EXAMPLES = Path(__file__).parent.parent / "examples"


def load_example(name: str):
    """``examples/NAME.py`` as a module (the examples are scripts, not a package; they import their shared
    examples/keras_results.py as a script's directory lets them)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _example():
    return load_example("keras_quickdraw")


@pytest.mark.slow
def test_trains_every_head_for_every_seed_and_prints_the_compare_table(quickdraw_dir, capsys):
    code = _example().main(["--data-dir", str(quickdraw_dir), "--categories", "cat,dog,sun", "--samples-per-class",
                            "20", "--seeds", "2", "--epochs", "1", "--batch-size", "64", "--run-eagerly"])
    out = capsys.readouterr().out
    assert code == 0
    for head in ("fc", "mlp", "spinal"):
        for seed in (0, 1):
            assert f"[{head} seed {seed}] test accuracy" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] in (["fc"], ["mlp"], ["spinal"])}
    width = MLP_WIDTH[3]
    heads = {"fc": 256 * 512 + 512 + 2 * 512 + 512 * 3 + 3, "mlp": 256 * width + width + 2 * width + width * 3 + 3,
             "spinal": (128 + 3 * 256) * 128 + 4 * 128 + 8 * 128 + 512 * 3 + 3}
    assert abs(heads["mlp"] - heads["spinal"]) <= 0.01 * heads["spinal"]  # the same size as the Spinal head
    for head, head_count in heads.items():  # trainable parameters, as torch counts them: the row's last 4 cells
        assert rows[head][-4:-2] == [f"{vgg5_param_count(3, head)[0]:,}", f"{head_count:,}"]
    assert "Spinal vs fc (the paper's baseline): " in out and "Spinal vs mlp (same parameters): " in out
    assert "p (Holm)" in out and "2 seed(s) x 1 epoch(s)" in out


def test_missing_category_files_are_one_error_line(tmp_path, capsys):
    code = _example().main(["--data-dir", str(tmp_path), "--categories", "cat,dog"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("keras_quickdraw: error: dataset 'quickdraw' not found") \
        and len(err.strip().splitlines()) == 1
