"""Dataset registry: file formats, resolution order, splits, errors, download through a loopback server."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_images
from spinalnet.data import ArrayLoader, DataOptions, load_dataset
from spinalnet.data.idx import read_idx, write_idx
from spinalnet.errors import DataNotFoundError, UsageError


def opts(data_dir: Path | None = None, **kw) -> DataOptions:
    return DataOptions(data_dir=data_dir, system_dirs=(), **kw)


def test_idx_round_trip_and_errors_name_the_file(tmp_path):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a.idx", "a.idx.gz"):
        write_idx(tmp_path / name, x)
        assert np.array_equal(read_idx(tmp_path / name), x)
    raw = (tmp_path / "a.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(raw[:-3])
    with pytest.raises(UsageError, match=r"short.idx is truncated or corrupted"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "junk.idx").write_bytes(b"hello world")
    with pytest.raises(UsageError, match=r"junk.idx is not an IDX file"):
        read_idx(tmp_path / "junk.idx")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(raw)[:20])
    with pytest.raises(UsageError, match=r"cannot read IDX file .*bad.gz"):
        read_idx(tmp_path / "bad.gz")


def test_idx_dataset_from_data_dir_with_seeded_validation_split(idx_dir):
    splits = load_dataset("fashion-mnist", opts(idx_dir, val_fraction=0.25, split_seed=3))
    assert splits.in_memory and splits.num_classes == 10 and splits.channels == 1
    assert (len(splits.train), len(splits.val), len(splits.test)) == (300, 100, 100)
    assert splits.train.images.dtype == torch.uint8 and splits.image_size == (28, 28)
    again = load_dataset("fashion-mnist", opts(idx_dir, val_fraction=0.25, split_seed=3))
    assert torch.equal(again.val.images, splits.val.images)
    other = load_dataset("fashion-mnist", opts(idx_dir, val_fraction=0.25, split_seed=4))
    assert not torch.equal(other.val.labels, splits.val.labels) or not torch.equal(other.val.images, splits.val.images)
    # validation images come from the training file only: none equals a test image
    test_rows = {bytes(t.numpy()) for t in splits.test.images}
    assert not any(bytes(v.numpy()) in test_rows for v in splits.val.images)


def test_data_dir_wins_over_system_copy(idx_dir, tmp_path):
    system = tmp_path / "system"
    (system / "fashion-mnist").mkdir(parents=True)
    for prefix, n in (("train", 50), ("t10k", 20)):
        x, y = make_images(n)
        write_idx(system / "fashion-mnist" / f"{prefix}-images-idx3-ubyte", x)
        write_idx(system / "fashion-mnist" / f"{prefix}-labels-idx1-ubyte", y)
    both = DataOptions(data_dir=idx_dir, system_dirs=(system,))
    assert len(load_dataset("fashion-mnist", both).test) == 100
    only_system = DataOptions(data_dir=None, system_dirs=(system,))
    assert len(load_dataset("fashion-mnist", only_system).test) == 20


def test_missing_dataset_offline_says_where_and_how(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"dataset 'fashion-mnist' not found; looked in .*empty.*--data-dir.*dataset-fashion-mnist.*--download"):
        load_dataset("fashion-mnist", opts(tmp_path / "empty"))


def test_unknown_dataset_suggests_the_closest():
    with pytest.raises(UsageError, match=r"unknown dataset 'fasion-mnist' \(did you mean 'fashion-mnist'\?\)"):
        load_dataset("fasion-mnist", opts())


def serve_idx_set(served: Path, train: int, test: int) -> list[tuple[str, str]]:
    """Four gzipped IDX files in ``served``; returns torchvision's ``resources`` list (name, md5) for them."""
    resources = []
    for prefix, n in (("train", train), ("t10k", test)):
        x, y = make_images(n)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            name = f"{prefix}-{kind}-ubyte.gz"
            write_idx(served / name, arr)
            resources.append((name, hashlib.md5((served / name).read_bytes()).hexdigest()))
    return resources


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def loopback_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = lambda *a, **k: _Quiet(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_download_through_torchvision_from_loopback_server(tmp_path, loopback_server, monkeypatch):
    import torchvision

    served, url = loopback_server
    resources = serve_idx_set(served, train=80, test=40)
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "mirrors", [url])
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "resources", resources)
    options = opts(tmp_path / "dl", download=True)
    splits = load_dataset("fashion-mnist", options)
    assert len(splits.test) == 40 and len(splits.train) + len(splits.val) == 80
    # a second call finds the downloaded files without downloading again
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "mirrors", ["http://127.0.0.1:9/"])
    assert len(load_dataset("fashion-mnist", opts(tmp_path / "dl")).test) == 40


def test_npz_with_and_without_test_arrays(npz_file, tmp_path):
    splits = load_dataset(f"npz:{npz_file}", opts())
    assert splits.num_classes == 4 and len(splits.test) == 64 and len(splits.train) + len(splits.val) == 256
    x, y = make_images(40, classes=4, channels=3, size=16)
    path = tmp_path / "colour.npz"
    np.savez(path, x=x, y=y, x_test=x[:8], y_test=y[:8])
    splits = load_dataset(f"npz:{path}", opts())
    assert splits.channels == 3 and splits.image_size == (16, 16) and len(splits.test) == 8


@pytest.mark.parametrize("arrays,match", [
    (dict(x=np.zeros((4, 5, 5))), r"missing array\(s\) \['y'\]"),
    (dict(x=np.zeros((4, 5, 5)), y=np.zeros(3, int)), "expected 4 labels"),
    (dict(x=np.zeros((4, 5)), y=np.zeros(4, int)), "images must be N x H x W or N x C x H x W"),
    (dict(x=np.full((4, 5, 5), np.nan), y=np.zeros(4, int)), "NaN or inf"),
    (dict(x=np.zeros((4, 5, 5)), y=np.array([0, 1, -1, 0])), "labels must be >= 0"),
    (dict(x=np.zeros((4, 5, 5)), y=np.array([0.5, 1, 1, 0])), "labels must be integers"),
    (dict(x=np.zeros((10, 5, 5)), y=np.zeros(10, int), x_test=np.zeros((2, 5, 5))), "x_test and y_test must be given together"),
])
def test_bad_npz_is_a_clear_error(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(UsageError, match=match):
        load_dataset(f"npz:{path}", opts())


def test_corrupted_npz_names_the_file(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UsageError, match=r"broken.npz: not a readable .npz file"):
        load_dataset(f"npz:{path}", opts())


def test_quickdraw_categories_and_samples_per_class(quickdraw_dir):
    splits = load_dataset("quickdraw", opts(quickdraw_dir, categories=["cat", "sun"], samples_per_class=50))
    assert splits.num_classes == 2 and splits.classes == ["cat", "sun"]
    assert len(splits.train) + len(splits.val) + len(splits.test) == 100
    assert splits.image_size == (28, 28)


def test_quickdraw_missing_category_and_bad_file(quickdraw_dir):
    with pytest.raises(DataNotFoundError, match=r"Missing owl.npy"):
        load_dataset("quickdraw", opts(quickdraw_dir, categories=["cat", "owl"]))
    np.save(quickdraw_dir / "quickdraw" / "dog.npy", np.zeros((5, 10), np.uint8))
    with pytest.raises(UsageError, match=r"dog.npy: expected an N x 784 uint8 array"):
        load_dataset("quickdraw", opts(quickdraw_dir, categories=["cat", "dog"]))


def test_image_folder_train_test_and_single_folder(image_folder):
    splits = load_dataset(f"folder:{image_folder}", opts(image_size=32, val_fraction=0.25))
    assert splits.in_memory and splits.num_classes == 2 and splits.classes == ["ants", "bees"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (18, 6, 8)
    x, y = splits.train.images[0], splits.train.labels[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8 and int(y) in (0, 1) and splits.source == "files"
    single = load_dataset(f"folder:{image_folder / 'train'}", opts(image_size=32))
    assert len(single.test) == 5 and single.num_classes == 2


def test_named_folder_dataset_is_found_under_data_dir(image_folder):
    root = image_folder.parent
    image_folder.rename(root / "hymenoptera")
    splits = load_dataset("hymenoptera", opts(root, image_size=32))
    assert splits.num_classes == 2 and len(splits.test) == 8


def test_array_loader_is_seeded_complete_and_sharded():
    x, y = make_images(50)
    from spinalnet.data import ImageArrays

    data = ImageArrays(torch.from_numpy(x[:, None]), torch.from_numpy(y.astype(np.int64)))
    a = ArrayLoader(data, 8, shuffle=True, seed=1)
    b = ArrayLoader(data, 8, shuffle=True, seed=1)
    first = [yb for _, yb, _ in a]
    assert all(torch.equal(p, q) for p, q in zip(first, (yb for _, yb, _ in b)))
    assert all(torch.equal(data.labels[i], yb) for _, yb, i in a)  # the indices name the examples served
    a.set_epoch(1)
    assert not all(torch.equal(p, q) for p, q in zip(first, (yb for _, yb, _ in a)))
    assert len(a) == 7 and sum(len(yb) for _, yb, _ in a) == 50
    ranks = [ArrayLoader(data, 5, shuffle=True, seed=1, rank=r, world_size=2) for r in (0, 1)]
    seen = [torch.cat([xb.flatten(1) for xb, _, _ in loader]) for loader in ranks]
    assert len(seen[0]) == len(seen[1]) == 25


def test_a_folder_read_per_sample_is_fingerprinted_by_its_files(image_folder, monkeypatch):
    """A folder too large for memory is read per sample; replacing one of its images must change the data's
    fingerprint (the feature cache's key, eval's 'data differs' warning), as it does for an in-memory folder."""
    from PIL import Image

    from spinalnet.data import DataOptions, folders, load_dataset

    monkeypatch.setattr(folders, "IN_MEMORY_BYTES", 0)
    before = load_dataset(f"folder:{image_folder}", DataOptions())
    assert not before.in_memory
    assert load_dataset(f"folder:{image_folder}", DataOptions()).fingerprint == before.fingerprint
    Image.new("RGB", (30, 30), (0, 0, 0)).save(image_folder / "test" / "bees" / "0.png")  # same name, other picture
    assert load_dataset(f"folder:{image_folder}", DataOptions()).fingerprint != before.fingerprint
