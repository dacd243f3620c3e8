"""Many heads on cached features at once: the runs of an arm (every seed and tuning value) trained together, one
process step updating them all, beside the engine and tested against it.

Each run keeps what it would have through :func:`spinalnet.engine.train.fit`: its seed's head initialisation
(the head is built from its own seed), its seed's batch order (:class:`~spinalnet.data.ArrayLoader`), its own
optimiser state, schedule and random restarts, its own checkpoint picked on validation, and the same run files
(``result.json``, ``predictions.npz``, ``metrics.csv``, ``checkpoints/best.ckpt`` and ``last.ckpt``, loadable
by ``eval`` and ``export``). What differs is the arithmetic's order (batched products instead of one per run)
and the dropout masks (each run's drawn from its own generator, not the engine's global one); a test trains a
grid both ways. A group of runs restarts from its last saved epoch after an interruption.

Runs go together when they share the head, the optimiser, the schedule's kind, the batch size, the epochs and
the epoch to start from; a head this path cannot stack (:func:`~spinalnet.engine.stacked.stackable`), another
precision than float32, or a checkpoint the engine wrote trains run by run through :func:`fit` instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spinalnet.data import ArrayLoader, DataSplits
from spinalnet.engine.config import TrainConfig
from spinalnet.engine.module import Classifier, FeatureHead, augment_seed, data_facts
from spinalnet.engine.predictions import accuracy_pct, predictions_from
from spinalnet.engine.run_files import RunFiles, checkpoint_saver
from spinalnet.engine.run_record import RunResult
from spinalnet.engine.stacked import Batch, StackedHeads, stackable
from spinalnet.engine.stacked_optim import BETAS, StackedOptimizer, run_optimizer
from spinalnet.engine.callbacks import RandomRestart
from spinalnet.engine.checkpoints import load_file
from spinalnet.engine.train import best_epoch, fit, resume_state
from spinalnet.engine.trainer import keep_earlier_metrics, loggers, quiet_lightning, rank_zero_print
from spinalnet.errors import TrainingError, UsageError
from spinalnet.heads.arms import INIT_RULE, describe_head, input_dropout, resolve
from spinalnet.heads.spec import parse_arm
from spinalnet.models.registry import build_head
from spinalnet.provenance import hardware, versions

#: Validation and test rows per product: bounds the memory of R runs' activations at once.
EVAL_ROWS = 2048
METRICS = ("epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc")


@dataclass
class Run:
    """One run of a group and what it carries from epoch to epoch."""

    config: TrainConfig
    name: str
    path: Path
    dummy: torch.optim.Optimizer
    schedule: Any
    restart: RandomRestart | None
    logs: list[Any] = field(default_factory=list)  # metrics.csv's writer, and TensorBoard's or MLflow's
    files: RunFiles | None = None
    module: Classifier | None = None  # the run's head as a Classifier: what its checkpoints save
    stopped: bool = False  # --patience: validation stopped improving; its parameters stay as they are
    wait: int = 0  # epochs since its last improvement
    val_curve: list[float] = field(default_factory=list)
    lr_curve: list[float] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    best: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, Tensor] | None = None
    seconds: float = 0.0  # its share of the group's training-loop time
    epoch_seconds: float = 0.0  # its share of whole epochs (training and validation)
    images: int = 0


def group_key(config: TrainConfig, start: int) -> tuple:
    """Runs step together when everything but their per-run numbers (seed, lr, momentum, decay, ...) agrees."""
    return (config.head, config.optimizer, config.schedule, config.batch_size, config.epochs, config.limit_batches,
            config.patience, start)


def train_together(configs: list[TrainConfig], splits: DataSplits, model: nn.Module, *, test: bool = True,
                   log: Callable[[str], None] = rank_zero_print,
                   names: dict[str, str] | None = None) -> list[RunResult]:
    """Train checked ``configs`` (cached-feature runs of one comparison) on ``splits`` (features) in groups;
    ``model`` is the comparison's model, whose head context builds every run's head. Results in config order."""
    quiet_lightning()
    names = names or {}
    results: dict[str, RunResult] = {}
    groups: dict[tuple, list[tuple[TrainConfig, int, dict | None]]] = {}
    for config in configs:
        state = resume_state(config, None)
        saved = _saved(state.checkpoint) if state.checkpoint is not None else None
        if state.finished is not None:
            results[config.output] = state.finished
            continue
        why = _not_together(config, model, saved is None and state.checkpoint is not None)
        if why is not None:
            log(f"[{names.get(config.output, config.output)}] trains on its own ({why})")
            results[config.output] = fit(config, splits, test=test, announce=False)
            continue
        start = saved["epoch"] + 1 if saved is not None else 0
        groups.setdefault(group_key(config, start), []).append((config, start, saved))
    cohorts: dict[tuple, list[Group]] = {}
    for members in groups.values():
        group = Group(members, splits, model, log, names)
        cohorts.setdefault(group.batches_key, []).append(group)
    for cohort in cohorts.values():
        for group in train_cohort(cohort, splits):
            results.update(group.finish(test))
    return [results[c.output] for c in configs]


def _saved(checkpoint: Path) -> dict[str, Any] | None:
    """The batched state of a last.ckpt (None when the engine wrote it)."""
    data = load_file(checkpoint)
    return data.get("batched") and {**data["batched"], "epoch": int(data["epoch"]), "state_dict": data["state_dict"]}


def _not_together(config: TrainConfig, model: nn.Module, engine_checkpoint: bool) -> str | None:
    if engine_checkpoint:
        return "it continues a checkpoint of run-by-run training"
    if config.precision not in ("32-true", "32"):
        return f"precision {config.precision}"
    head = build_run_head(config, model)[0]
    return stackable(head)


def build_run_head(config: TrainConfig, model: nn.Module) -> tuple[nn.Module, float]:
    """A run's head, initialised from its seed as the whole model's would be, and its input dropout."""
    context = model.head_context
    spec = resolve(parse_arm(config.head), context)
    return build_head(spec, context, config.head_seed), input_dropout(spec, context)


# ---------------------------------------------------------------------------------------------- one group
class Group:
    """The runs of one group (:func:`group_key`) and everything they carry: built once, then stepped; the groups
    of a cohort (the same seeds in the same order, batch size, steps and epochs: the same batches) step in lockstep
    so that each step's rows are gathered once for all of them."""

    def __init__(self, members: list[tuple[TrainConfig, int, dict | None]], splits: DataSplits, model: nn.Module,
                 log: Callable[[str], None], names: dict[str, str]) -> None:
        self.start = members[0][1]
        self.outputs = [m[0].output for m in members]  # the caller's order
        members = sorted(members, key=lambda m: (m[0].seed, m[0].output))  # seeds together: they share batches
        configs = [m[0] for m in members]
        heads = [build_run_head(c, model) for c in configs]
        self.stacked = StackedHeads([h for h, _ in heads], heads[0][1])
        self.splits, self.facts, self.log, self.template = splits, data_facts(splits, configs[0]), log, configs[0]
        self.loaders = [ArrayLoader(splits.train, c.batch_size, shuffle=True, seed=c.seed,
                                    drop_last=len(splits.train) > c.batch_size) for c in configs]
        self.steps = _steps(len(self.loaders[0]), self.template.limit_batches)
        self.runs = [Run(c, names.get(c.output, c.output), Path(c.output), *run_optimizer(c, self.steps * c.epochs),
                         RandomRestart(c.lr, c.seed, c.restart_exponent) if c.schedule == "random-restart" else None)
                     for c in configs]
        self.optimizer = StackedOptimizer(self.template.optimizer, self.stacked.params, self.stacked.decays)
        if self.start > 0:
            _restore(self.stacked, self.optimizer, self.runs, [m[2] for m in members])
        total = sum(p.numel() for p in model.parameters()) - sum(
            p.numel() for p in model.get_submodule(model.head_path).parameters())
        self.saver = checkpoint_saver()
        for run, (head, dropout) in zip(self.runs, heads):
            resume_state(run.config, None).run.create()  # the run directories, once nothing can fail any more
            run.files = RunFiles(run.path)
            run.logs = loggers(run.config, run.files)
            keep_earlier_metrics(run.logs[0], list(METRICS), [{k: r.get(k) for k in METRICS} for r in run.metrics])
            feature_head = FeatureHead(head, dropout, total + sum(p.numel() for p in head.parameters()),
                                       resolve(parse_arm(run.config.head), model.head_context), None)
            run.module = Classifier(run.config, self.facts, model=feature_head)
        self.backbone = sum(p.numel() for p in model.parameters()) - sum(
            p.numel() for p in model.get_submodule(model.head_path).parameters())
        self.label = (f"{self.runs[0].name.split(' seed ')[0]} x {len(self.runs)} runs" if len(self.runs) > 1
                      else self.runs[0].name)
        self.shared = _shared_groups(configs)
        self.slots = (list(range(0, len(self.runs), len(self.runs) // self.shared)) if self.shared
                      else list(range(len(self.runs))))
        self.smoothing = torch.tensor([c.label_smoothing for c in configs]).view(-1, 1)
        log(f"[{self.label}] training together on cached features for {self.template.epochs} epoch(s)")

    @property
    def batches_key(self) -> tuple:
        """What decides the rows a step reads: its slots' seeds, the batch size, the steps and the epochs."""
        return (tuple(self.runs[r].config.seed for r in self.slots), self.template.batch_size, self.steps,
                self.template.epochs, self.start)

    def begin_epoch(self, epoch: int) -> Tensor:
        """Seed the epoch's randomness and return the slots' batch indices, ``(steps, G or R, B)``."""
        self.stacked.training = True
        self.active = [not run.stopped for run in self.runs]  # runs --patience stopped train no more
        for run, gen in zip(self.runs, self.stacked.generators):
            gen.manual_seed(augment_seed(run.config.seed, epoch))
            if not run.stopped:
                run.lr_curve.append(float(run.dummy.param_groups[0]["lr"]))
        for loader in self.loaders:
            loader.set_epoch(epoch)
        orders = torch.stack([torch.stack(loader.batches()[:self.steps]) for loader in self.loaders], 1)
        self.labels = self.splits.train.labels[orders]  # (steps, R, B)
        self.epoch, self.sums, self.seconds = epoch, torch.zeros(len(self.runs), 3), 0.0
        return orders[:, self.slots]

    def step(self, step: int, rows: Tensor) -> None:
        """One update of every run on ``rows`` (the slots' batches of this step)."""
        y = self.labels[step]
        logits = self.stacked.forward(Batch(rows, len(self.slots) if self.shared else 0))
        loss = _cross_entropy(logits, y, self.smoothing)  # (R,)
        if not torch.isfinite(loss).all():
            bad = self.runs[int((~torch.isfinite(loss)).nonzero()[0])]
            raise TrainingError(f"[{bad.name}] the training loss became {loss[~torch.isfinite(loss)][0].item()} at "
                                f"epoch {self.epoch}, batch {step}; try a lower --lr; {_kept(bad)}")
        self.optimizer.zero_grad()
        loss.sum().backward()  # each run's gradient is that of its own mean loss
        self.optimizer.step([run.dummy.param_groups[0] for run in self.runs])
        for run in self.runs:
            if run.config.schedule == "onecycle":
                run.schedule.step()
        with torch.no_grad():
            n = y.shape[1]
            # max(2).indices: argmax's answer (the first maximum), 28 against 82 us on (10, 256, 10) logits
            hits = (logits.max(2).indices == y).sum(1).float()
            self.sums += torch.stack([loss * n, hits, torch.full_like(loss, n)], 1)

    @property
    def done(self) -> bool:
        """Every run of the group was stopped by --patience."""
        return all(run.stopped for run in self.runs)

    def end_epoch(self, elapsed: float) -> None:
        """The epoch's metrics, validation, checkpoints and line; ``elapsed``: seconds since the cohort began."""
        epoch = self.epoch
        runs = [run for run, active in zip(self.runs, self.active) if active]
        seconds = self.seconds / len(runs)  # each active run's share of the group's time
        for r, run in enumerate(self.runs):
            if not self.active[r]:
                continue
            total, correct, count = self.sums[r].tolist()
            run.metrics.append({"epoch": epoch, "train_loss": total / count, "train_acc": 100.0 * correct / count})
            run.seconds += seconds
            run.epoch_seconds += seconds
            run.images += int(count)
        validate(self.stacked, self.runs, self.splits, epoch, (epoch + 1) * self.steps)
        for r, run in enumerate(self.runs):
            if not self.active[r]:
                continue
            self._save(run, r, epoch)
            for logger in run.logs:
                logger.log_metrics({k: v for k, v in run.metrics[-1].items() if k != "step"},
                                   step=run.metrics[-1]["step"])
                logger.save()
        epochs, done = self.template.epochs, epoch + 1 - self.start
        accs = [run.val_curve[-1] for run in runs]
        stopped = sum(run.stopped for run in runs)
        self.log(f"[{self.label}] epoch {epoch + 1}/{epochs}: train loss "
                 f"{sum(r.metrics[-1]['train_loss'] for r in runs) / len(runs):.4f}, val acc "
                 f"{sum(accs) / len(accs):.2f}% (runs {min(accs):.2f} to {max(accs):.2f}), {elapsed:.1f} s elapsed, "
                 f"ETA {elapsed / done * (epochs - epoch - 1):.0f} s"
                 + (f"; {stopped} run(s) stopped: no improvement in {self.template.patience} epochs" if stopped else ""))

    def _save(self, run: Run, r: int, epoch: int) -> None:
        """The run's last.ckpt (with what the group restarts from) and, when this epoch was its best, best.ckpt."""
        global_step = (epoch + 1) * self.steps
        head = run.module.model.head
        if run.best_state is not None and run.best_epoch == epoch:
            head.load_state_dict(run.best_state)
            run.module.batched_state = None
            run.files.save_checkpoint(self.saver, run.module, "best", epoch, global_step)
        head.load_state_dict(self.stacked.state_of(r))
        run.module.batched_state = {
            "format": 1, "optimizer": self.optimizer.state_of(r), "dummy": run.dummy.state_dict(),
            "schedule": run.schedule.state_dict() if run.schedule is not None else None,
            "restart": run.restart.state_dict() if run.restart is not None else None,
            "val_curve": run.val_curve, "lr_curve": run.lr_curve, "metrics": run.metrics, "best": run.best,
            "best_epoch": run.best_epoch, "seconds": run.seconds, "epoch_seconds": run.epoch_seconds,
            "images": run.images, "stopped": run.stopped, "wait": run.wait}
        run.files.save_checkpoint(self.saver, run.module, "last", epoch, global_step)

    def finish(self, test: bool) -> dict[str, RunResult]:
        """Test every run (when ``test``), write its files; results by run directory."""
        results = [_finish(run, self.stacked, r, self.splits, self.facts, test, self.backbone)
                   for r, run in enumerate(self.runs)]
        for run in self.runs:
            for logger in run.logs:
                logger.finalize("success")
        return {run.config.output: result for run, result in zip(self.runs, results)}


def train_cohort(groups: list[Group], splits: DataSplits) -> list[Group]:
    """Step ``groups`` (one cohort: the same batches) together, epoch by epoch; each step's rows are gathered once
    and the gather's time is shared out among the groups."""
    first = groups[0]
    started = time.perf_counter()
    rows = torch.empty(0)
    for epoch in range(first.start, first.template.epochs):
        live = [group for group in groups if not group.done]  # --patience may have stopped every run of a group
        if not live:
            break
        orders = [group.begin_epoch(epoch) for group in live][0]  # equal for every group of a cohort
        images = splits.train.epoch_images(epoch)
        for step in range(first.steps):
            clock = time.perf_counter()
            rows = gather(images, orders[step], rows)
            share = (time.perf_counter() - clock) / len(live)
            for group in live:
                clock = time.perf_counter()
                group.step(step, rows)
                group.seconds += time.perf_counter() - clock + share
        for group in live:
            group.end_epoch(time.perf_counter() - started)
    return groups


def _steps(batches: int, limit: float) -> int:
    """Training batches per epoch under --limit-batches, as Lightning counts them."""
    if limit == 1.0:
        return batches
    return min(batches, int(limit)) if limit > 1 else max(1, int(batches * limit))


def _shared_groups(configs: list[TrainConfig]) -> int:
    """How many batches a step draws: one per seed when every seed has the same number of runs (they then
    share them), else one per run (0: the ``runs`` layout)."""
    seeds = [c.seed for c in configs]
    per = {s: seeds.count(s) for s in seeds}
    return len(per) if len(set(per.values())) == 1 and len(per) < len(configs) else 0


def gather(images: Tensor, index: Tensor, into: Tensor) -> Tensor:
    """``images[index]`` written into ``into`` (reshaped when the batch size changes): a fresh tensor of
    R x 256 x 1280 features each step took 1.6 ms, the same rows into one buffer 1.0 ms (docs/BENCHMARKS.md,
    section 5). Safe to reuse: a step's backward is done before the next step gathers."""
    shape = (*index.shape, *images.shape[1:])
    if into.shape != shape:
        into = torch.empty(shape, dtype=images.dtype)
    torch.index_select(images, 0, index.view(-1), out=into.view(-1, *images.shape[1:]))
    return into


def _cross_entropy(logits: Tensor, y: Tensor, smoothing: Tensor) -> Tensor:
    """Each run's mean cross-entropy, with its own label smoothing (``F.cross_entropy``'s formula), written with
    ``logsumexp``: -log p(y) = lse(z) - z_y. On (10, 256, 10) logits its step (forward and backward) took 0.19 ms
    against 0.33 through ``log_softmax``, whose kernel is slow for 10 classes."""
    lse = torch.logsumexp(logits, dim=2)
    nll = lse - logits.gather(2, y.unsqueeze(2)).squeeze(2)
    if not smoothing.any():
        return nll.mean(1)
    return ((1 - smoothing) * nll + smoothing * (lse - logits.mean(2))).mean(1)


@torch.no_grad()
def evaluate(stacked: StackedHeads, x: Tensor) -> Tensor:
    """Logits ``(R, N, C)`` of every run on shared inputs, in eval mode, in slices of :data:`EVAL_ROWS`."""
    stacked.training = False
    parts = [stacked.forward(Batch(x[i: i + EVAL_ROWS].unsqueeze(0), 1)) for i in range(0, len(x), EVAL_ROWS)]
    return torch.cat(parts, 1)


def validate(stacked: StackedHeads, runs: list[Run], splits: DataSplits, epoch: int, global_step: int) -> None:
    started = time.perf_counter()
    logits = evaluate(stacked, splits.val.images)
    y = splits.val.labels
    losses = F.cross_entropy(logits.transpose(1, 2), y.expand(len(runs), -1), reduction="none").mean(1)
    accs = (logits.max(2).indices == y).float().mean(1) * 100
    seconds = (time.perf_counter() - started) / len(runs)
    for r, run in enumerate(runs):
        if run.stopped:
            continue
        acc = round(float(accs[r]), 4)
        run.val_curve.append(acc)
        run.metrics[-1].update(step=global_step - 1, val_loss=float(losses[r]), val_acc=float(accs[r]))
        run.epoch_seconds += seconds
        if run.best is None or float(accs[r]) > run.best:  # strictly better, as ModelCheckpoint(mode="max")
            run.best, run.best_state, run.best_epoch, run.wait = float(accs[r]), stacked.state_of(r), epoch, 0
        else:
            run.wait += 1
        if run.config.patience is not None and run.wait >= run.config.patience:  # Lightning's EarlyStopping rule
            run.stopped = True
            run.dummy.param_groups[0]["lr"] = 0.0  # no optimiser moves a parameter at a zero learning rate
            continue
        if run.schedule is not None and run.config.schedule in ("step", "cosine"):
            run.schedule.step()
        if run.restart is not None:
            lr = run.restart.after_validation(float(accs[r]))
            if lr is not None:
                run.dummy.param_groups[0]["lr"] = lr


# ---------------------------------------------------------------------------------------------- files
def _kept(run: Run) -> str:
    last = RunFiles(run.path).last
    return f"the last good checkpoint is kept: {last}" if last.is_file() else "no checkpoint was written"


def _restore(stacked: StackedHeads, optimizer: StackedOptimizer, runs: list[Run], saved: list[dict | None]) -> None:
    """Every run of a group from its last.ckpt (all saved after the same epoch)."""
    for r, (run, state) in enumerate(zip(runs, saved)):
        stacked.load_run(r, {k[len("model.head."):]: v for k, v in state["state_dict"].items()})
        run.dummy.load_state_dict(state["dummy"])
        if run.schedule is not None:
            run.schedule.load_state_dict(state["schedule"])
        if run.restart is not None:
            run.restart.load_state_dict(state["restart"])
        run.val_curve, run.lr_curve, run.metrics = list(state["val_curve"]), list(state["lr_curve"]), list(state["metrics"])
        run.best, run.best_epoch = state["best"], state["best_epoch"]
        run.stopped, run.wait = state.get("stopped", False), state.get("wait", 0)
        run.seconds, run.epoch_seconds, run.images = state["seconds"], state["epoch_seconds"], state["images"]
        best = RunFiles(run.path).best
        if best.is_file():
            data = load_file(best)
            run.best_state = {k[len("model.head."):]: v for k, v in data["state_dict"].items()}
    optimizer.load_runs([s["optimizer"] for s in saved])


def _finish(run: Run, stacked: StackedHeads, r: int, splits: DataSplits, facts: dict[str, Any], test: bool,
            backbone: int) -> RunResult:
    """Test the run's best checkpoint (when ``test``), write its predictions and result.json."""
    tested, predictions = None, None
    if test:
        single = StackedHeads([_head_with(run.best_state, stacked)], stacked.input_dropout)
        logits = evaluate(single, splits.test.images)[0]
        predictions = predictions_from(logits, splits.test.labels)
        loss = float(F.cross_entropy(logits, splits.test.labels))
        tested = {"test_acc": accuracy_pct(predictions), "test_loss": round(loss, 6)}
    head_params = sum(v.numel() for k, v in stacked.params.items()) // stacked.runs
    result = RunResult(
        head=run.config.head, seed=run.config.seed, test_acc=tested and tested["test_acc"],
        test_loss=tested and tested["test_loss"], tested=tested is not None,
        val_acc=round(run.best, 4) if run.best is not None else None,
        val_acc_curve=run.val_curve, lr_curve=run.lr_curve, epochs=len(run.val_curve),
        params=backbone + head_params, head_params=head_params,
        head_info={**describe_head(stacked.template, stacked.input_dropout), "init": INIT_RULE},
        train_seconds=round(run.epoch_seconds, 3),
        images_per_second=round(run.images / run.seconds, 1) if run.seconds else 0.0,
        best_checkpoint=str(run.files.best.resolve()), config=run.config.to_dict(),
        data={k: v for k, v in facts.items() if k != "classes"}, classes=facts["classes"],
        versions=versions(), hardware=hardware(), trained=f"together with {stacked.runs - 1} other run(s)",
        best_epoch=best_epoch(run.val_curve), stopped_early=run.stopped)
    run.files.finish(result, predictions, run.config.save_logits)
    return result


def _head_with(state: dict[str, Tensor], stacked: StackedHeads) -> nn.Module:
    import copy

    head = copy.deepcopy(stacked.template)
    head.load_state_dict(state)
    return head
