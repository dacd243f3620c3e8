"""Dataset downloads that either finish or leave nothing behind, and fail with one line that names the
dataset, the URL tried and the other ways to get the data."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

from spinalnet.errors import DataNotFoundError, UsageError

#: Seconds to wait for a server before giving up on a URL.
TIMEOUT = 30
#: Debian packages that install a dataset under /usr/share/datasets/<name>.
DEBIAN_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}
#: What a failed download is: the network, the server, a wrong checksum, or torchvision's own refusal.
DOWNLOAD_ERRORS = (urllib.error.URLError, OSError, RuntimeError, ValueError)


def other_ways(name: str, layout: str) -> str:
    """The ways to get dataset ``name`` besides this download, for error messages."""
    ways = [f"--data-dir DIR with {layout}"]
    if name in DEBIAN_PACKAGES:
        ways.append(f"the Debian package {DEBIAN_PACKAGES[name]} (apt install {DEBIAN_PACKAGES[name]})")
    ways.append("--download on a machine with internet access")
    return "; ".join(ways)


def download_failed(name: str, url: str, err: BaseException, layout: str) -> DataNotFoundError:
    reason = getattr(err, "reason", None) or err
    return DataNotFoundError(f"cannot download dataset {name!r} from {url} "
                             f"({str(reason).splitlines()[0] if str(reason) else 'no reason given'}); "
                             f"other ways to get it: {other_ways(name, layout)}")


@contextlib.contextmanager
def nothing_left_on_failure(root: Path) -> Iterator[None]:
    """Run the body; if it fails, remove every file and folder it created under ``root`` (and ``root``
    itself and its missing parents, when it created them). What was there before is kept."""
    root = Path(root)
    top = root
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    before = set(root.rglob("*")) if root.exists() else set()
    existed = top.exists()
    try:
        yield
    except BaseException:
        if not existed:
            shutil.rmtree(top, ignore_errors=True)
        elif root.exists():
            for path in sorted(set(root.rglob("*")) - before, key=lambda p: len(p.parts), reverse=True):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise


def fetch(url: str, dest: Path, md5: str | None = None) -> None:
    """``url`` -> ``dest`` through a temporary file beside it; a wrong checksum is an error, not a file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if md5 is not None and digest.hexdigest() != md5:
            raise ValueError(f"checksum mismatch: expected md5 {md5}, got {digest.hexdigest()}")
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


def download(name: str, root: Path, url: str, layout: str, run: Callable[[], None]) -> None:
    """Run ``run`` (which downloads into ``root``); on failure remove what it wrote and raise one line."""
    try:
        with nothing_left_on_failure(root):
            run()
    except UsageError:
        raise
    except DOWNLOAD_ERRORS as err:
        raise download_failed(name, url, err, layout) from None
