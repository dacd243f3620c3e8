"""Plain-text tables whose columns line up whatever the cells hold (long names, two-digit std)."""

from __future__ import annotations

from typing import Sequence


def align(rows: Sequence[Sequence[str]], left: int = 1, gap: int = 2) -> list[str]:
    """One line per row; the first ``left`` columns are left-aligned (names), the rest right-aligned (numbers)."""
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(max(map(len, rows)))]
    lines = []
    for row in rows:
        cells = [cell.ljust(w) if i < left else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append((" " * gap).join(cells).rstrip())
    return lines

