"""The options of ``spinalnet compare``: those of one run, plus the grid (arms, tuning values, seeds) and how it
is spread (jobs, shards, the feature cache)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import get_args

from spinalnet.comparison.grid import check_tune, parse_shard, parse_tune
from spinalnet.engine.config import MAX_SEEDS, TrainConfig, field_types, option
from spinalnet.errors import UsageError, did_you_mean
from spinalnet.heads.spec import ArmSpec, parse_arm, parse_arms, split_arms

DEFAULT_HEADS = ["fc", "mlp", "spinal"]


@dataclass
class CompareConfig(TrainConfig):
    heads: list[str] = option(DEFAULT_HEADS, "the arms to compare, KIND[:OPTION=VALUE,...] each: fc (the model's "
                                             "own head), linear, mlp (the Spinal arm's parameter count), mlp2 (the "
                                             "authors' 2-layer FC), spinal (see README, Arms)", parse=split_arms)
    reference: str | None = option(None, "the arm every other arm is compared with, one of --heads (default: "
                                         "spinal, else the first Spinal arm, else the last arm)")
    tune: dict[str, list[float]] = option({}, "OPTION=V1,V2,... (one or two options, e.g. lr=0.003,0.01,0.03): "
                                              "every arm trains every value for every seed and keeps the value with "
                                              "the best mean validation accuracy", parse=parse_tune)
    seeds: int = option(3, "number of seeds per arm (seeds are --seed, --seed + 1, ...)", ge=1, le=MAX_SEEDS)
    feature_cache: str | None = option(None, "with --freeze-backbone and pretrained weights: run the backbone once "
                                             "per split and train the heads on its cached features, stored in "
                                             "DIR (default: the user's cache directory, e.g. "
                                             "~/.cache/spinalnet/features); off: run the backbone in every step")
    batch_heads: bool = option(True, "on cached features, train the runs of an arm together (one step updates "
                                     "every seed and tuning value); --no-batch-heads trains them one by one")
    jobs: int = option(1, "train this many runs at once, each in its own worker process with an even share of "
                          "the CPU threads (or its own GPU)", ge=1)
    shard: str | None = option(None, "K/N: train only the K-th of N shares of the runs into the shared --output; "
                                     "the last shard to finish writes the summary")
    deploy_check: bool = option(True, "after the runs, evaluate one saved model per arm as spinalnet eval does and "
                                      "refuse a result its saved model does not reproduce (--no-deploy-check skips "
                                      "it)")
    feature_views: int = option(0, "cached features: 0 = the training images without augmentation; K >= 1 = "
                                   "K augmented views of the training set, one per epoch in turn", ge=0)

    def validate(self, resolve_weights: bool = True) -> "CompareConfig":
        """Also writes the arms (and the reference) in their normalised names (``spinal:layer_width=16`` for
        ``spinal: layer-width=16``): every directory, record and table of the comparison uses that one spelling."""
        super().validate(resolve_weights)
        arms = self.arms()
        self.heads = names = [arm.name for arm in arms]
        if self.reference is not None:
            try:
                self.reference = parse_arm(self.reference).name
            except UsageError:
                pass  # not an arm at all: refused below, with the closest name
            if self.reference not in names:
                raise UsageError(f"--reference {self.reference!r} is not one of --heads ({', '.join(names)})"
                                 + did_you_mean(self.reference, names))
        self.reference = self.reference_arm()
        types = field_types(TrainConfig)
        self.tune = check_tune(self.tune, {k for k in self.tune if k in types and int in (types[k], *get_args(types[k]))
                                           and float not in (types[k], *get_args(types[k]))})
        for key, values in self.tune.items():  # every value must be one the option itself takes
            for value in values:
                TrainConfig.from_dict({key: value})
        parse_shard(self.shard)
        return self

    def arms(self) -> list[ArmSpec]:
        """The arms, each once (their specs parsed)."""
        return parse_arms(self.heads)

    def reference_arm(self) -> str:
        """The arm the others are compared with: ``--reference``, else ``spinal``, the first Spinal arm, the last."""
        if self.reference is not None:
            return self.reference
        arms = self.arms()
        names = [a.name for a in arms]
        return "spinal" if "spinal" in names else next((a.name for a in arms if a.kind == "spinal"), names[-1])

    def run_options(self) -> dict:
        """The options of one of its runs (the run's head, seed and output are set per run)."""
        values = self.to_dict()
        return {k: values[k] for k in TrainConfig.__dataclass_fields__}

    def run_config(self, **changes) -> TrainConfig:
        """One run's config: the comparison's options with ``changes`` (``head=...``, ``seed=...``)."""
        return TrainConfig(**{**self.run_options(), **changes})


#: Options only ``compare`` takes (``train --config`` on a compare YAML drops them with a note).
COMPARE_ONLY = tuple(f.name for f in fields(CompareConfig) if f.name not in TrainConfig.__dataclass_fields__)
