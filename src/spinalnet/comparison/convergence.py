"""Whether a comparison's runs had finished learning when their budget ran out (no framework import).

A run **was still improving** at its last epoch when all of these hold:

1. ``--patience`` did not stop it (a stopped run went ``patience`` epochs without improving);
2. its best validation accuracy came in the last 10% of its epochs (at least its last epoch);
3. over the last half of its epochs (at least 3 of them) its validation accuracy rose faster than its own noise:
   the least-squares slope is positive and more than twice its standard error. With fewer than 3 epochs there is
   no slope to read, and 2 alone decides.

An arm counts as unconverged when at least half of its runs were still improving; a comparison when any arm is.
Its verdict then says so, and suggests twice the epochs (with ``--patience`` so that runs stop once they plateau):
an unconverged comparison measures the heads' speed of learning as much as what they can learn.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

#: The share of the last epochs in which a best epoch counts as "at the end".
LAST_SHARE = 0.1
#: A slope counts as rising when it exceeds this many standard errors.
SLOPE_T = 2.0


def still_improving(curve: Sequence[float], stopped_early: bool = False) -> bool:
    """Whether a run with validation curve ``curve`` (one value per epoch) was still learning at its end."""
    if stopped_early or not curve:
        return False
    epochs = len(curve)
    best = curve.index(max(curve)) + 1
    if best <= epochs - max(1, math.ceil(LAST_SHARE * epochs)):
        return False
    tail = list(curve[epochs // 2:]) if epochs >= 6 else list(curve[-3:])
    if len(tail) < 3:
        return True
    slope, se = _slope(tail)
    return slope > 0 and (se == 0 or slope > SLOPE_T * se)


def _slope(values: list[float]) -> tuple[float, float]:
    """Least-squares slope of ``values`` against 0, 1, 2, ... and its standard error."""
    n = len(values)
    mx, my = (n - 1) / 2, sum(values) / n
    sxx = sum((i - mx) ** 2 for i in range(n))
    slope = sum((i - mx) * (v - my) for i, v in enumerate(values)) / sxx
    residual = sum((v - my - slope * (i - mx)) ** 2 for i, v in enumerate(values))
    return slope, math.sqrt(residual / (n - 2) / sxx) if n > 2 else 0.0


@dataclass(frozen=True)
class Convergence:
    """A comparison's convergence: runs still improving per arm, and a fairer budget when any arm is."""

    converged: bool
    epochs: int
    runs: int
    still_improving: int
    arms: dict[str, list[int]]  # arm -> [runs still improving, runs]
    suggested_epochs: int | None
    suggested_patience: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def sentence(self) -> str:
        """The verdict's line about convergence (empty when the runs had converged)."""
        if self.converged:
            return ""
        arms = ", ".join(f"{arm} {k} of {n}" for arm, (k, n) in self.arms.items() if k)
        return (f"not converged: {self.still_improving} of {self.runs} runs were still improving at epoch "
                f"{self.epochs} ({arms}), so these differences may be differences in speed of learning; a fairer "
                f"budget: --epochs {self.suggested_epochs} --patience {self.suggested_patience}")


def assess(curves: dict[str, list[list[float]]], stopped: dict[str, list[bool]], epochs: int) -> Convergence:
    """``curves``: per arm, each run's validation curve; ``stopped``: per arm, whether --patience stopped each run."""
    arms = {arm: [sum(still_improving(c, s) for c, s in zip(runs, stopped[arm])), len(runs)]
            for arm, runs in curves.items()}
    unconverged = any(k * 2 >= n and k > 0 for k, n in arms.values())
    total, improving = sum(n for _, n in arms.values()), sum(k for k, _ in arms.values())
    return Convergence(not unconverged, epochs, total, improving, arms,
                       2 * epochs if unconverged else None, max(3, epochs // 5) if unconverged else None)
