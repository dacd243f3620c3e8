"""Load the user's tabular data (CSV or npz) as float arrays, with clear errors."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from spinalnet.errors import UsageError, require_file
from spinalnet.data.npz_file import read_npz


def load_csv(path: Path, y_column: str | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every column but ``y_column`` is an input; all must be numeric and finite."""
    require_file(path, "CSV file")
    if not y_column:
        raise UsageError("--y-column NAME is required with --data csv:PATH")
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UsageError(f"{path}: not a readable CSV file ({err})") from None
    if len(rows) < 2:
        raise UsageError(f"{path}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    if y_column not in header:
        raise UsageError(f"{path}: no column {y_column!r}; columns are {header}")
    if len(header) < 2:
        raise UsageError(f"{path}: needs at least one input column besides {y_column!r}")
    values = np.empty((len(rows) - 1, len(header)), dtype=np.float64)
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise UsageError(f"{path}, line {r}: {len(row)} fields, the header has {len(header)}")
        for c, cell in enumerate(row):
            try:
                value = float(cell)
            except ValueError:
                raise UsageError(f"{path}, line {r}, column {header[c]!r}: {cell!r} is not a number") from None
            if not math.isfinite(value):
                raise UsageError(f"{path}, line {r}, column {header[c]!r}: {cell!r} (NaN or inf) is not allowed")
            values[r - 2, c] = value
    y_index = header.index(y_column)
    inputs = [h for i, h in enumerate(header) if i != y_index]
    return np.delete(values, y_index, axis=1), values[:, y_index], inputs


def load_npz_table(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``x`` (N x D) and ``y`` (N) arrays."""
    arrays = read_npz(path)
    if "x" not in arrays or "y" not in arrays:
        raise UsageError(f"{path}: needs arrays x (N x D) and y (N); found {sorted(arrays)}")
    x, y = arrays["x"], arrays["y"]
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise UsageError(f"{path}: x must be N x D and y of length N, got {x.shape} and {y.shape}")
    if not (np.issubdtype(x.dtype, np.number) and np.issubdtype(y.dtype, np.number)):
        raise UsageError(f"{path}: x and y must be numeric, got dtypes {x.dtype} and {y.dtype}")
    if np.iscomplexobj(x) or np.iscomplexobj(y):
        raise UsageError(f"{path}: x and y must be real numbers, got complex dtypes {x.dtype} and {y.dtype}")
    x, y = x.astype(np.float64), y.astype(np.float64)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise UsageError(f"{path}: x or y contains NaN or inf")
    return x, y, [f"x{i}" for i in range(x.shape[1])]


def load_table(spec: str, y_column: str | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if spec.startswith("csv:"):
        return load_csv(Path(spec[4:]).expanduser(), y_column)
    if spec.startswith("npz:"):
        return load_npz_table(Path(spec[4:]).expanduser())
    raise UsageError(f"--data must be csv:PATH or npz:PATH, got {spec!r}")
