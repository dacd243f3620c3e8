"""Write scikit-learn's 8 x 8 digits as an image folder (``train/<class>/*.png``, ``test/<class>/*.png``), the layout
a user's own data comes in, so that the folder path of ``spinalnet compare``, ``eval`` and ``predict`` can be tried
offline on real images.

    python examples/digits_folder.py digits-png
    spinalnet compare --dataset folder:digits-png --model timm:tf_efficientnet_lite0 \\
        --pretrained efficientnet-lite0 --freeze-backbone --image-size 64 --seeds 10

The split is the ``digits`` dataset's (stratified, ``--split-seed``: 1,438 training images, 359 test), so
``--dataset digits`` and ``--dataset folder:DIR`` hold the same test images. Grey PNGs, 8 x 8, 0..16 scaled to 0..255;
the class folders are named by the digit, so their sorted order is the digits' order.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

from spinalnet.data.digits import load_digits_arrays


def write_folder(root: Path, split_seed: int = 0) -> dict[str, int]:
    """The two splits as PNGs under ``root``; returns how many images each holds."""
    counts = {}
    for name, split in zip(("train", "test"), load_digits_arrays(split_seed)):
        for i, (image, label) in enumerate(zip(split.images.numpy(), split.labels.tolist())):
            folder = root / name / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[0]).save(folder / f"{i:04d}.png")
        counts[name] = len(split.labels)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="the folder to write (must not exist yet)")
    parser.add_argument("--split-seed", type=int, default=0, help="the digits dataset's split seed (default: 0)")
    args = parser.parse_args()
    if args.output.exists():
        print(f"digits_folder: error: {args.output} exists; name a new folder", file=sys.stderr)
        return 2
    counts = write_folder(args.output, args.split_seed)
    print(f"wrote {args.output}: {counts['train']} training and {counts['test']} test images in 10 class folders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
