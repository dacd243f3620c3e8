"""The linear-probe reference for a cached-feature comparison: logistic regression on the same features.

Reads one entry of the feature cache (the ``key`` in a comparison's ``results.json``), fits
scikit-learn's LogisticRegression on the training features (standardised), and prints its
validation and test accuracy: the accuracy the heads of that comparison should reach.

    python benchmarks/linear_probe.py ~/.cache/spinalnet/features/KEY.pt
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entry", type=Path, help="a feature-cache file, KEY.pt")
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength")
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = torch.load(args.entry, map_location="cpu", weights_only=True)
    x_train, y_train = data["train"]["x"].flatten(1).numpy(), data["train"]["y"].numpy()
    started = time.perf_counter()
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=args.max_iter))
    probe.fit(x_train, y_train)
    print(f"logistic regression on {x_train.shape[0]:,} x {x_train.shape[1]} features, "
          f"fitted in {time.perf_counter() - started:.1f} s")
    for split in ("val", "test"):
        x, y = data[split]["x"].flatten(1).numpy(), data[split]["y"].numpy()
        print(f"{split} accuracy: {100 * probe.score(x, y):.2f}%")


if __name__ == "__main__":
    main()
