"""``spinalnet list``: dataset and model names."""

from __future__ import annotations

import argparse


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list dataset and model names", description="List dataset and model names.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from spinalnet.data import DATASETS, PREFIXED as DATA_PREFIXED
    from spinalnet.models import MODELS
    from spinalnet.models.registry import PREFIXED as MODEL_PREFIXED

    print("datasets:")
    for name, info in DATASETS.items():
        print(f"  {name:<18}{info.description}")
    for prefix, text in DATA_PREFIXED.items():
        print(f"  {prefix + 'PATH':<18}{text}")
    print("models:")
    for name, info in MODELS.items():
        print(f"  {name:<18}{info.description}")
    for prefix, text in MODEL_PREFIXED.items():
        print(f"  {prefix + 'NAME':<18}{text}")
