"""The options of ``spinalnet regress`` (the paper's regression study; it trains without the engine)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from spinalnet.engine.config import MAX_LAYERS, MAX_SAMPLES, MAX_SEEDS, ConfigBase, option
from spinalnet.errors import UsageError


@dataclass
class RegressConfig(ConfigBase):
    """Options of ``spinalnet regress`` (the paper's regression study)."""

    target: Literal["all", "sum", "sin_sum", "prod", "sin_prod"] = option("all", "synthetic target, or all of them "
                                                                          "(ignored with --data)")
    data: str | None = option(None, "your tabular data instead: csv:PATH (with --y-column) or npz:PATH (x, y)")
    y_column: str | None = option(None, "the CSV column to predict")
    samples: int = option(1000, "samples per synthetic target", ge=1, le=MAX_SAMPLES)
    noise: float = option(0.2, "scale of the U(0, 1) noise added to synthetic targets", ge=0)
    epochs: int = option(200, "training epochs", ge=1)
    seeds: int = option(5, "seeds (each draws its own data, split and initialisation)", ge=1, le=MAX_SEEDS)
    seed: int = option(0, "first seed", ge=0, le=2**32 - 1)
    batch_size: int = option(64, "batch size", ge=1)
    lr: float = option(0.01, "Adam learning rate", gt=0)
    limit_batches: float = option(1.0, "fraction (or count, if > 1) of training batches per epoch, for quick runs",
                                  gt=0)
    val_fraction: float = option(0.15, "validation fraction (picks each model's epoch)", gt=0, lt=1)
    test_fraction: float = option(0.15, "test fraction (used once, for the report)", gt=0, lt=1)
    standardize: bool | None = option(None, "standardise inputs and target with training statistics "
                                            "(default: on for --data, off for synthetic targets)")
    fc_hidden: list[int] = option([200, 100], "hidden sizes of the ordinary MLP", ge=1)
    layer_width: int = option(50, "width of the Spinal hidden layers", ge=1)
    num_layers: int = option(6, "number of Spinal hidden layers", ge=1, le=MAX_LAYERS)
    num_splits: int = option(2, "input splits of the Spinal layers (1 to the number of input features)", ge=1)
    activation: str = option("leaky_relu", "activation of both models")
    output: str | None = option(None, "output directory (default: runs/regress-<time>)")
    force: bool = option(False, "overwrite a finished study in --output")

    def validate(self) -> "RegressConfig":
        self.check_ranges()
        if self.data is not None and not self.data.strip():
            raise UsageError("--data needs csv:PATH or npz:PATH, got ''")
        return self
