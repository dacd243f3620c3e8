"""Figures shared by the comparison and the regression study: one colour per head, PNGs written atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from spinalnet.files import atomic_write  # noqa: E402

COLORS = {"fc": "#4C72B0", "spinal": "#DD8452"}


def save_figure(fig, path: Path, **savefig: object) -> None:
    """Write ``fig`` as a PNG atomically (with the umask's permissions) and close it."""
    try:
        atomic_write(path, lambda handle: fig.savefig(handle, format="png", **savefig))
    finally:
        plt.close(fig)
