"""``compare``'s arms on cached features, in Keras: every (arm, seed) run trains a head on the same features. The
runs are what ``spinalnet.comparison.summary.summarize`` reads (torch-free), so a Keras comparison writes the same
``results.json`` as ``spinalnet compare`` and ``spinalnet report`` reads it (``examples/keras_transfer.py``).

One run follows ``compare``'s engine on cached features: the head from the seed (``keras.utils.set_random_seed``),
the training split in a seeded order each epoch without its last partial batch, SGD with momentum and a step
schedule (``lr * gamma ** (epoch // step_size)``), cross-entropy on logits, the weights of the epoch with the best
validation accuracy (the first such), tested once. Where it differs: the batch order and the head's initial values
are drawn by numpy and Keras, not torch (the same rule, other draws), and Keras' SGD keeps the learning rate inside
its momentum buffer (``v = m * v - lr * g``; torch scales the buffer by the new rate at a step of the schedule).
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import keras
import numpy as np

from spinalnet.errors import UsageError
from spinalnet.heads.spec import parse_arms
from spinalnet.keras.arms import KerasArm, resolve_arm

Split = tuple[np.ndarray, np.ndarray]  # (features, labels)


@dataclass(frozen=True)
class TrainOptions:
    """The options of a run on cached features (``compare``'s names and meanings)."""

    epochs: int = 30
    batch_size: int = 256
    lr: float = 0.01
    momentum: float = 0.9
    step_size: int | None = 20  # None: a constant learning rate
    gamma: float = 0.1

    def check(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or not 0 <= self.momentum < 1:
            raise UsageError(f"lr must be > 0 and momentum in [0, 1), got {self.lr} and {self.momentum}")

    def lr_at(self, epoch: int) -> float:
        return self.lr * self.gamma ** (epoch // self.step_size) if self.step_size else self.lr


def _accuracy(model: keras.Model, split: Split, batch_size: int) -> tuple[float, np.ndarray]:
    # one batch per split (up to 16,384 rows): one compiled shape per split instead of a last partial batch too
    logits = model.predict(split[0], batch_size=max(batch_size, min(len(split[1]), 16_384)), verbose=0)
    predicted = np.asarray(logits).argmax(1)
    return 100.0 * float(np.mean(predicted == split[1])), predicted


def train_run(arm: KerasArm, seed: int, splits: dict[str, Split], options: TrainOptions,
              backbone_params: int = 0) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One (arm, seed) run: its result (the fields ``compare``'s summary reads) and its test predictions."""
    x, y = splits["train"]
    steps = len(y) // options.batch_size
    if steps < 1:
        raise UsageError(f"{len(y)} training examples are fewer than one batch of {options.batch_size}")
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((x.shape[1],))
    model = keras.Model(inputs, arm.build()(inputs))
    optimizer = keras.optimizers.SGD(learning_rate=options.lr, momentum=options.momentum)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    order = np.random.default_rng(seed)
    best, best_epoch, best_weights, curve, lrs = None, None, None, [], []
    start = time.perf_counter()
    for epoch in range(options.epochs):
        lrs.append(options.lr_at(epoch))
        optimizer.learning_rate.assign(lrs[-1])
        take = order.permutation(len(y))[: steps * options.batch_size]
        model.fit(x[take], y[take], batch_size=options.batch_size, epochs=1, shuffle=False, verbose=0)
        val_acc, _ = _accuracy(model, splits["val"], options.batch_size)
        curve.append(round(val_acc, 4))
        if best is None or val_acc > best:  # strictly better: the first best epoch, as compare's checkpoint
            best, best_epoch, best_weights = val_acc, epoch + 1, model.get_weights()
    seconds = time.perf_counter() - start
    model.set_weights(best_weights)
    test_acc, predicted = _accuracy(model, splits["test"], options.batch_size)
    # the fields of compare's run record (spinalnet.engine.run_record.RunResult); no checkpoint is written
    result = {"head": arm.spec.name, "seed": seed, "config": {"head": arm.spec.name}, "head_info": arm.info,
              "test_acc": round(test_acc, 4), "tested": True, "val_acc": round(best, 4), "val_acc_curve": curve,
              "lr_curve": lrs, "best_epoch": best_epoch, "stopped_early": False, "best_checkpoint": None,
              "params": backbone_params + arm.params, "head_params": arm.params, "epochs": options.epochs,
              "train_seconds": round(seconds, 3),
              "images_per_second": round(options.epochs * steps * options.batch_size / seconds, 1)}
    return result, {"y_true": np.asarray(splits["test"][1]), "y_pred": predicted}


@dataclass
class ArmRuns:
    """Every run of a comparison: per arm (by spec, in the given order) its results over seeds, the test
    predictions per (arm, seed), the resolved arms, and the options, as a results file's ``config``."""

    runs: dict[str, list[dict[str, Any]]]
    predictions: dict[tuple[str, int], dict[str, np.ndarray]]
    arms: dict[str, KerasArm]
    config: dict[str, Any]


def train_arms(splits: dict[str, Split], heads: list[str], seeds: list[int], options: TrainOptions = TrainOptions(),
               *, reference: str = "spinal", spinal_defaults: dict[str, Any] | None = None, own_dropout: float = 0.0,
               backbone_params: int = 0, log: Callable[[str], None] = print) -> ArmRuns:
    """Every arm of ``heads`` (specs as ``compare --heads`` takes them) over ``seeds`` on cached features
    (``splits``: train, val, test as (features, labels)); ``mlp`` and ``mlp2`` are sized by ``reference``."""
    options.check()
    arms_given = parse_arms(heads)
    names = [a.name for a in arms_given]
    if reference not in names:
        raise UsageError(f"the reference arm {reference!r} is not among the heads {', '.join(names)}")
    if len(seeds) < 1 or len(set(seeds)) != len(seeds):
        raise UsageError(f"seeds must be distinct and at least one, got {seeds}")
    n, classes = splits["train"][0].shape[1], int(max(int(s[1].max()) for s in splits.values()) + 1)
    ref = arms_given[names.index(reference)]
    arms = {a.name: resolve_arm(a, n, classes, reference=ref, spinal_defaults=spinal_defaults, own_dropout=own_dropout)
            for a in arms_given}
    found = ArmRuns({name: [] for name in arms}, {}, arms,
                    {**asdict(options), "seeds": len(seeds), "seed": seeds[0], "heads": names, "reference": reference})
    for seed in seeds:
        for name, arm in arms.items():
            result, predicted = train_run(arm, seed, splits, options, backbone_params)
            found.runs[name].append(result)
            found.predictions[(name, seed)] = predicted
            log(f"[{name} seed {seed}] test accuracy {result['test_acc']:.2f}% (val {result['val_acc']:.2f}%, "
                f"{result['train_seconds']:.1f} s)")
    return found


def provenance() -> dict[str, Any]:
    """``versions`` and ``hardware`` for a Keras results file (``spinalnet.provenance`` reports torch's)."""
    from spinalnet.provenance import git_commit
    from spinalnet.version import __version__

    backend = keras.backend.backend()
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    version = __import__(module).__version__ if module else None
    return {"versions": {"spinalnet": __version__, "python": platform.python_version(), "keras": keras.__version__,
                         backend: version, "numpy": np.__version__, "git_commit": git_commit()},
            "hardware": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                         "cpu_count": os.cpu_count(), "keras_backend": backend}}
