"""Where data comes from: --data-dir before system copies, and downloads that fail with one line and leave nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torchvision

from conftest import make_images
from spinalnet.commands.cli import main
from spinalnet.data import DataOptions, load_dataset
from spinalnet.data.idx import write_idx
from spinalnet.data.locate import SYSTEM_DATA_DIRS
from test_data import loopback_server, serve_idx_set  # noqa: F401  (loopback_server is a fixture)

CLASSES = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}


def _write_idx_set(directory: Path, label: int, gz: bool = True) -> None:
    """Four IDX files whose labels are all ``label`` (the real sets have every class)."""
    directory.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for prefix, n in (("train", 60), ("t10k", 30)):
        x, _ = make_images(n)
        write_idx(directory / f"{prefix}-images-idx3-ubyte{ext}", x)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{ext}", np.full(n, label, np.uint8))


@pytest.mark.parametrize("name", list(CLASSES))
@pytest.mark.parametrize("layout", ["{cls}/raw", "{name}/{cls}/raw", "{name}"])
def test_every_layout_under_data_dir_wins_over_a_system_copy(tmp_path, name, layout):
    system = tmp_path / "system"
    _write_idx_set(system / name, label=1)
    mine = tmp_path / "mine"
    _write_idx_set(mine / layout.format(cls=CLASSES[name], name=name), label=7, gz=False)
    splits = load_dataset(name, DataOptions(data_dir=mine, system_dirs=(system,)))
    assert len(splits.test) == 30 and set(splits.test.labels.tolist()) == {7}
    assert set(load_dataset(name, DataOptions(system_dirs=(system,))).test.labels.tolist()) == {1}


@pytest.mark.skipif(not (SYSTEM_DATA_DIRS[0] / "fashion-mnist").is_dir(), reason="needs dataset-fashion-mnist")
def test_torchvision_layout_wins_over_the_installed_fashion_mnist(tmp_path, capsys):
    _write_idx_set(tmp_path / "FashionMNIST" / "raw", label=3)
    splits = load_dataset("fashion-mnist", DataOptions(data_dir=tmp_path))  # the default system dirs
    assert len(splits.test) == 30 and set(splits.test.labels.tolist()) == {3}
    assert "note" not in capsys.readouterr().err


def test_data_found_outside_data_dir_is_named(tmp_path, capsys):
    system = tmp_path / "system"
    _write_idx_set(system / "mnist", label=2)
    load_dataset("mnist", DataOptions(data_dir=tmp_path / "elsewhere", system_dirs=(system,)))
    err = capsys.readouterr().err
    assert "not under --data-dir" in err and str(system / "mnist") in err


def _assert_one_line(err: str, *parts: str) -> None:
    assert err.startswith("spinalnet: error: ") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, (part, err)


@pytest.mark.parametrize("name", ["mnist", "kmnist", "fashion-mnist"])
@pytest.mark.parametrize("server", ["404", "closed port"])
def test_failed_idx_download_is_one_line_and_leaves_no_folder(tmp_path, loopback_server, monkeypatch, capsys,
                                                              name, server):
    _, url = loopback_server  # serves an empty folder: every file is a 404
    mirror = url if server == "404" else "http://127.0.0.1:9/"
    cls = getattr(torchvision.datasets, CLASSES[name])
    monkeypatch.setattr(cls, "mirrors", [mirror])
    monkeypatch.setattr("spinalnet.data.locate.SYSTEM_DATA_DIRS", ())
    data, out = tmp_path / "data", tmp_path / "run"
    code = main(["train", "--dataset", name, "--data-dir", str(data), "--download", "--epochs", "1",
                 "--output", str(out), "--no-progress"])
    assert code == 2
    _assert_one_line(capsys.readouterr().err, f"dataset {name!r}", f"{mirror}{cls.resources[0][0]}",
                     "--data-dir DIR", "--download")
    assert not data.exists() and not out.exists()


def test_failed_download_keeps_what_was_there_and_removes_the_rest(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("spinalnet.data.locate.SYSTEM_DATA_DIRS", ())
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    data = tmp_path / "data"
    (data / "notes").mkdir(parents=True)
    (data / "notes" / "keep.txt").write_text("mine")
    assert main(["train", "--dataset", "mnist", "--data-dir", str(data), "--download", "--epochs", "1",
                 "--output", str(tmp_path / "run")]) == 2
    assert sorted(p.relative_to(data).as_posix() for p in data.rglob("*")) == ["notes", "notes/keep.txt"]


@pytest.mark.parametrize("name,patch", [
    ("emnist-digits", ("torchvision.datasets.EMNIST.url", "{url}gzip.zip")),
    ("cifar10", ("torchvision.datasets.CIFAR10.url", "{url}cifar-10-python.tar.gz")),
    ("hymenoptera", None),
    ("quickdraw", ("spinalnet.data.quickdraw.URL", "{url}{{category}}.npy")),
])
def test_failed_downloads_of_other_datasets_name_dataset_and_url(tmp_path, loopback_server, monkeypatch, capsys,
                                                                 name, patch):
    _, url = loopback_server
    if patch is None:
        from spinalnet.data import folders

        monkeypatch.setitem(folders.DOWNLOADS, "hymenoptera", f"{url}hymenoptera_data.zip")
        expected = f"{url}hymenoptera_data.zip"
    else:
        monkeypatch.setattr(patch[0], patch[1].format(url=url))
        expected = patch[1].format(url=url).replace("{category}", "airplane")
    monkeypatch.setattr("spinalnet.data.locate.SYSTEM_DATA_DIRS", ())
    data = tmp_path / "data"
    assert main(["train", "--dataset", name, "--data-dir", str(data), "--download", "--epochs", "1",
                 "--output", str(tmp_path / "run")]) == 2
    _assert_one_line(capsys.readouterr().err, f"dataset {name!r}", expected, "--data-dir DIR", "--download")
    assert not data.exists() and not (tmp_path / "run").exists()


def test_mnist_downloads_from_a_loopback_mirror_into_torchvisions_layout(tmp_path, loopback_server, monkeypatch):
    served, url = loopback_server
    resources = serve_idx_set(served, train=60, test=30)
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/", url])  # the first one fails
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", resources)
    data = tmp_path / "data"
    splits = load_dataset("mnist", DataOptions(data_dir=data, download=True, system_dirs=()))
    assert len(splits.test) == 30
    raw = data / "mnist" / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(name for name, _ in resources)  # no partial files


def test_a_wrong_checksum_is_a_failed_download(tmp_path, loopback_server, monkeypatch, capsys):
    served, url = loopback_server
    for prefix in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            (served / f"{prefix}-{kind}-ubyte.gz").write_bytes(b"not the real file")
    monkeypatch.setattr(torchvision.datasets.KMNIST, "mirrors", [url])
    monkeypatch.setattr("spinalnet.data.locate.SYSTEM_DATA_DIRS", ())
    data = tmp_path / "data"
    assert main(["train", "--dataset", "kmnist", "--data-dir", str(data), "--download"]) == 2
    _assert_one_line(capsys.readouterr().err, "dataset 'kmnist'", "checksum mismatch")
    assert not data.exists()


def _labelled(labels: list[int], n: int = 40) -> dict[str, np.ndarray]:
    x, _ = make_images(n)
    return dict(x=x, y=np.resize(np.asarray(labels, np.int64), n))


@pytest.mark.parametrize("arrays,message", [
    (_labelled([0, 5, 9]), "labels must be 0..K-1 without gaps; found 3 distinct labels (0, 5, 9) with none for "
                           "1, 2, 3, 4, 6, 7, ...; renumber them"),
    # one huge label: the gaps are listed without building the whole range (that filled 24 GB)
    (_labelled([0, 1, 2**40]), "found 3 distinct labels (0, 1, 1099511627776) with none for 2, 3, 4, 5, 6, 7, ...;"),
    (_labelled([3]), "only 1 class found; a classifier needs at least two"),
    (dict(_labelled([0, 1]), x=make_images(40)[0] * (1 + 1j)), "images must be real numbers, got complex"),
    (dict(_labelled([0, 1]), x=np.where(make_images(40)[0] > 200, np.inf, 0.5)), "images contain NaN or inf"),
    (dict(_labelled([0, 1]), y=np.resize([0.0, 1.5], 40)), "labels must be integers"),
    (dict(_labelled([0, 1]), y=np.resize([0, -1], 40)), "labels must be >= 0"),
    (dict(_labelled([0, 1]), y=np.zeros(39, np.int64)), "expected 40 labels"),
    (dict(_labelled([0, 1]), x_test=make_images(4)[0], y_test=np.array([0, 1, 2, 1])),
     "test label(s) 2 never appear in the training labels"),
    (dict(x=np.zeros((0, 5, 5)), y=np.zeros(0, np.int64), x_test=np.zeros((2, 5, 5)), y_test=np.array([0, 1])),
     "the training set has no samples"),
])
def test_silently_wrong_npz_labels_and_images_are_refused_through_the_cli(tmp_path, capsys, arrays, message):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    out = tmp_path / "run"
    assert main(["train", "--dataset", f"npz:{path}", "--epochs", "1", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    _assert_one_line(err, str(path), message)
    assert not out.exists()


def test_a_folder_with_one_class_is_refused(image_folder, capsys, tmp_path):
    import shutil

    for split in ("train", "test"):
        shutil.rmtree(image_folder / split / "bees")
    assert main(["train", "--dataset", f"folder:{image_folder}", "--epochs", "1", "--output", str(tmp_path / "r")]) == 2
    _assert_one_line(capsys.readouterr().err, "only 1 class found")
    assert not (tmp_path / "r").exists()


def test_channels_last_images_and_path_like_categories_are_refused(tmp_path, quickdraw_dir, capsys):
    path = tmp_path / "hwc.npz"
    np.savez(path, x=np.zeros((20, 32, 32, 3), np.uint8), y=np.arange(20) % 2)
    assert main(["train", "--dataset", f"npz:{path}", "--epochs", "1", "--output", str(tmp_path / "r")]) == 2
    _assert_one_line(capsys.readouterr().err, "look channels-last (N x H x W x C)", "x.transpose(0, 3, 1, 2)")
    assert main(["train", "--dataset", "quickdraw", "--data-dir", str(quickdraw_dir), "--categories", "cat,../dog",
                 "--epochs", "1", "--output", str(tmp_path / "r")]) == 2
    _assert_one_line(capsys.readouterr().err, "category names are file names without folders, got ['../dog']")
    assert not (tmp_path / "r").exists()


def test_a_partial_idx_copy_under_data_dir_is_named_not_skipped(tmp_path, capsys):
    raw = tmp_path / "FashionMNIST" / "raw"
    _write_idx_set(raw, label=1)
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    assert main(["train", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path), "--epochs", "1",
                 "--output", str(tmp_path / "r")]) == 2
    _assert_one_line(capsys.readouterr().err, f"{raw} holds", "but not t10k-labels-idx1-ubyte")
    assert not (tmp_path / "r").exists()
