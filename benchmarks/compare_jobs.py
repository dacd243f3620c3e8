"""``compare --jobs 1`` against ``--jobs 2``: the demo comparison (default CNN, its arms fc, mlp
and spinal, 2 seeds, real Fashion-MNIST), timed in one run, wall clock, through the command line a user runs.

    python benchmarks/compare_jobs.py                 # the demo's 8 epochs, both sides in turn (make demo: 3.4 min)
    python benchmarks/compare_jobs.py --epochs 2      # quicker
    python benchmarks/compare_jobs.py --quick         # 1 epoch, about a minute

Prints each run's wall time and accuracies, and the ratio (jobs 1 time / jobs 2 time: > 1 means the
workers are faster). Target: at least 1.4x on 2 cores, with the same accuracies within seed noise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spinalnet.engine.machine import cpu_cores

ROOT = Path(__file__).resolve().parent.parent


def run(jobs: int, out: Path, extra: list[str]) -> tuple[float, dict]:
    command = [sys.executable, "-m", "spinalnet", "compare", "--config", str(ROOT / "configs" / "demo.yaml"),
               "--jobs", str(jobs), "--no-progress", "--output", str(out), *extra]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"--jobs {jobs} failed:\n{done.stderr[-3000:]}")
    return seconds, json.loads((out / "results.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, help="override the demo's 8 epochs")
    parser.add_argument("--quick", action="store_true", help="1 epoch")
    parser.add_argument("--data-dir", help="where Fashion-MNIST is (default: the usual places)")
    args = parser.parse_args()
    if args.quick:
        args.epochs = 1
    extra = [*(["--epochs", str(args.epochs)] if args.epochs else []),
             *(["--data-dir", args.data_dir] if args.data_dir else [])]
    print(f"cores: {cpu_cores()}, load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        times, accs = {}, {}
        for jobs in (1, 2):
            times[jobs], results = run(jobs, Path(tmp) / f"jobs{jobs}", extra)
            accs[jobs] = {arm: values["test_acc"] for arm, values in results["arms"].items()}
            print(f"--jobs {jobs}: {times[jobs]:.1f} s wall clock; test accuracy "
                  + ", ".join(f"{arm} {acc}" for arm, acc in accs[jobs].items()))
    print(f"ratio (jobs 1 / jobs 2): {times[1] / times[2]:.2f}x; load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
