"""What installing KerasHub costs in each of this project's environments: the time, the disk, the packages it adds.

    python3 benchmarks/keras_hub_install.py .venv-jax .venv-tf .venv       # needs PyPI; leaves the environments as they are

Each environment is left untouched: a throw-away virtual environment sees its packages (a ``.pth`` file naming its
site-packages) and ``pip install keras-hub`` goes there, so pip adds only what the environment lacks, as it would
in place. Printed per environment: the wall time of the install (download included, no pip cache), the size of
what it added and the added distributions, whose largest are named with their sizes.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def site_packages(python: Path) -> Path:
    return Path(subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                               capture_output=True, text=True, check=True).stdout.strip())


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def measure(env: Path, requirement: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="keras-hub-install-"))
    try:
        subprocess.run([str(env / "bin" / "python"), "-m", "venv", "--clear", str(work)], check=True)
        python = work / "bin" / "python"
        own = site_packages(python)
        (own / "base-environment.pth").write_text(f"{site_packages(env / 'bin' / 'python')}\n")
        before = size(own)  # the throw-away environment's own pip
        start = time.perf_counter()
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-cache-dir", requirement], check=True)
        seconds = time.perf_counter() - start
        ignore = {"pip", "setuptools", "_distutils_hack", "pkg_resources"}
        added = [p.name.removesuffix(".dist-info") for p in own.iterdir() if p.name.endswith(".dist-info")
                 and p.name.split("-")[0] not in ignore]
        dirs = sorted(((size(p), p.name) for p in own.iterdir() if p.is_dir() and not p.name.endswith("-info")
                       and p.name not in ignore and p.name != "__pycache__"), reverse=True)
        print(f"{env}: {requirement} in {seconds:.0f} s, {(size(own) - before) / 2**30:.2f} GiB added; "
              f"{len(added)} distributions: {', '.join(sorted(added))}")
        print("  largest: " + ", ".join(f"{name} {bytes_ / 2**20:,.0f} MiB" for bytes_, name in dirs[:4]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("envs", nargs="+", type=Path, help="virtual environments (.venv-jax, .venv-tf, .venv)")
    parser.add_argument("--requirement", default="keras-hub")
    args = parser.parse_args()
    for env in args.envs:
        measure(env, args.requirement)
    return 0


if __name__ == "__main__":
    sys.exit(main())
