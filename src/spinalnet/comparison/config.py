"""The options of ``spinalnet compare``: those of one run, plus the grid (seeds) and how it is spread."""

from __future__ import annotations

from dataclasses import dataclass, fields

from spinalnet.comparison.shards import parse_shard
from spinalnet.engine.config import MAX_SEEDS, TrainConfig, option


@dataclass
class CompareConfig(TrainConfig):
    seeds: int = option(3, "number of seeds per head (seeds are --seed, --seed + 1, ...)", ge=1, le=MAX_SEEDS)
    feature_cache: str | None = option(None, "with --freeze-backbone and pretrained weights: run the backbone once "
                                             "per split and train the heads on its cached features, stored in "
                                             "DIR (default: the user's cache directory, e.g. "
                                             "~/.cache/spinalnet/features); off: run the backbone in every step")
    jobs: int = option(1, "train this many (head, seed) runs at once, each in its own worker process with an "
                          "even share of the CPU threads (or its own GPU)", ge=1)
    shard: str | None = option(None, "K/N: train only the K-th of N shares of the (head, seed) runs into the "
                                     "shared --output; the last shard to finish writes the summary")
    feature_views: int = option(0, "cached features: 0 = the training images without augmentation; K >= 1 = "
                                   "K augmented views of the training set, one per epoch in turn", ge=0)

    def validate(self) -> "CompareConfig":
        super().validate()
        parse_shard(self.shard)
        return self


#: Options only ``compare`` takes (``train --config`` on a compare YAML drops them with a note).
COMPARE_ONLY = tuple(f.name for f in fields(CompareConfig) if f.name not in TrainConfig.__dataclass_fields__)
