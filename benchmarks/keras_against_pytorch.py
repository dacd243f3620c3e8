"""Do a Keras comparison and a PyTorch comparison of the same arms agree within seed noise?

    python benchmarks/keras_against_pytorch.py docs/results/fashion-mnist-lite0-keras-jax-arms-30epochs \\
        docs/results/fashion-mnist-lite0-arms-30epochs

Reads two ``results.json`` (no framework import) and prints, per arm both have: its mean ± std over seeds in each,
the difference and Welch's t-test over the two sets of seeds (the frameworks draw initial weights, batch orders
and the validation split from different generators, so nothing pairs a Keras seed with a PyTorch one); then each
contrast (the reference arm minus the arm, paired by seed within each comparison) side by side, with the
difference of the two contrasts and a normal-approximation test from the two intervals' half-widths.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from scipy import stats


def load(path: Path) -> dict:
    return json.loads((path / "results.json" if path.is_dir() else path).read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("keras", type=Path, help="the Keras comparison's directory or results.json")
    parser.add_argument("pytorch", type=Path, help="the PyTorch comparison's directory or results.json")
    args = parser.parse_args()
    ours, theirs = load(args.keras), load(args.pytorch)
    shared = [arm for arm in ours["arms"] if arm in theirs["arms"]]
    only = sorted(set(ours["arms"]) ^ set(theirs["arms"]))
    print(f"arms in both: {', '.join(shared)}" + (f"; in one only: {', '.join(only)}" if only else ""))
    for arm in shared:
        a, b = ours["arms"][arm], theirs["arms"][arm]  # mean and std as each results file has them
        test = stats.ttest_ind(a["test_acc"], b["test_acc"], equal_var=False)
        print(f"{arm:8s} Keras {a['test_acc_mean']:.2f} ± {a['test_acc_std']:.2f} ({len(a['test_acc'])} seeds), "
              f"PyTorch {b['test_acc_mean']:.2f} ± {b['test_acc_std']:.2f} ({len(b['test_acc'])}): Keras - PyTorch "
              f"{a['test_acc_mean'] - b['test_acc_mean']:+.2f} points, Welch p = {test.pvalue:.2g}")
    contrasts = {c["arm"]: c for c in theirs["contrasts"]}
    z = stats.norm.ppf(0.975)
    for c in ours["contrasts"]:
        other = contrasts.get(c["arm"])
        if other is None or c["reference"] != other["reference"]:
            continue
        se = [(ci[1] - ci[0]) / (2 * z) for ci in (c["difference_ci95"], other["difference_ci95"])]
        gap = c["difference_mean"] - other["difference_mean"]
        p = 2 * stats.norm.sf(abs(gap) / math.hypot(*se))
        print(f"{c['reference']} - {c['arm']:6s} Keras {c['difference_mean']:+.2f} (CI {c['difference_ci95'][0]:+.2f} to "
              f"{c['difference_ci95'][1]:+.2f}), PyTorch {other['difference_mean']:+.2f} (CI "
              f"{other['difference_ci95'][0]:+.2f} to {other['difference_ci95'][1]:+.2f}): gap {gap:+.2f}, p = {p:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
