"""The paper's regression study, with held-out data: an ordinary MLP against a SpinalNet.

The paper reports the lowest *training* minibatch MSE; we split train / validation / test, pick
each model's epoch on validation, and report test MSE (mean +- std over seeds). The paper's metric
is kept, labelled, for comparison. Tabular data is tiny, so a plain PyTorch loop trains it
(the Lightning engine would only add per-step overhead here).
"""

from __future__ import annotations

import copy
import csv
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from spinalnet.errors import UsageError, unknown_name
from spinalnet.heads.mlps import mlp, spinal_mlp
from spinalnet.comparison.results_file import write_regression_results
from spinalnet.files import atomic_write_text
from spinalnet.provenance import hardware, versions
from spinalnet.rundir import open_run_dir, timestamped
from spinalnet.stats import describe, mean_std, paired_stats
from spinalnet.tables import align
from spinalnet.data.tabular import load_table
from spinalnet.regression.config import RegressConfig
from spinalnet.engine.predictions import PREDICTIONS_FILE, save_npz

TARGETS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sum": lambda x: x.sum(1),
    "sin_sum": lambda x: np.sin(x.sum(1)),
    "prod": lambda x: x.prod(1),
    "sin_prod": lambda x: np.sin(x.prod(1)),
}
MODELS = ("fc", "spinal")


#: Inputs of the paper's synthetic targets.
FEATURES = 8


def make_targets(name: str, samples: int, noise: float, seed: int, features: int = FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """x ~ N(0, 1)^features, y = f(x) + noise * U(0, 1), as in the paper."""
    if name not in TARGETS:
        raise unknown_name("target", name, [*TARGETS, "all"])
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, features))
    return x, TARGETS[name](x) + noise * rng.uniform(0.0, 1.0, samples)


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """Seeded, disjoint train / validation / test indices covering ``range(n)``."""
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    if n_val < 1 or n_test < 1 or n - n_val - n_test < 1:
        raise UsageError(f"{n} samples cannot be split into train / {val_fraction} validation / "
                         f"{test_fraction} test with at least one sample each")
    perm = np.random.default_rng(seed).permutation(n)
    return perm[n_val + n_test :], perm[:n_val], perm[n_val : n_val + n_test]


def build_models(in_features: int, config: RegressConfig) -> dict[str, nn.Module]:
    return {
        "fc": mlp(in_features, 1, config.fc_hidden, config.activation),
        "spinal": spinal_mlp(in_features, 1, layer_width=config.layer_width, num_layers=config.num_layers,
                             num_splits=config.num_splits, activation=config.activation),
    }


def limited(batches: tuple[torch.Tensor, ...], limit: float) -> tuple[torch.Tensor, ...]:
    """The first ``limit`` batches (a count if > 1, else a fraction, at least one), as Lightning counts them."""
    keep = int(limit) if limit > 1 else max(1, int(len(batches) * limit))
    return batches[:keep]


def check_models(in_features: int, config: RegressConfig, source: str) -> None:
    """Refuse model options that cannot work for ``in_features`` inputs, before anything is trained or written."""
    if config.num_splits > in_features:
        raise UsageError(f"--num-splits must be between 1 and {in_features} (the number of input features of "
                         f"{source}), got {config.num_splits}")
    build_models(in_features, config)


def fit(model: nn.Module, data: dict[str, torch.Tensor], config: RegressConfig, seed: int,
        y_scale: float) -> dict[str, Any]:
    """Adam on minibatch MSE; the epoch with the lowest validation MSE is kept and tested once."""
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    order_gen = torch.Generator().manual_seed(seed)
    x, y = data["x_train"], data["y_train"]
    best_val, best_state = float("inf"), copy.deepcopy(model.state_dict())
    min_batch, train_curve, val_curve = float("inf"), [], []
    for _ in range(config.epochs):
        model.train()
        total = 0.0
        for idx in limited(torch.randperm(len(x), generator=order_gen).split(config.batch_size), config.limit_batches):
            loss = nn.functional.mse_loss(model(x[idx]).squeeze(1), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            min_batch = min(min_batch, loss.item())
        train_curve.append(total / len(x) * y_scale**2)
        model.eval()
        with torch.no_grad():
            val = nn.functional.mse_loss(model(data["x_val"]).squeeze(1), data["y_val"]).item()
        val_curve.append(val * y_scale**2)
        if val < best_val:
            best_val, best_state = val, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        pred = model(data["x_test"]).squeeze(1)
    return {"val_mse": best_val * y_scale**2, "min_train_batch_mse": min_batch * y_scale**2,
            "train_curve": train_curve, "val_curve": val_curve, "pred": pred, "params": sum(p.numel() for p in model.parameters())}


def prepare(x: np.ndarray, y: np.ndarray, config: RegressConfig, seed: int, standardize: bool):
    """Split and (optionally) standardise with training statistics; returns tensors and the y scale."""
    train, val, test = split_indices(len(x), config.val_fraction, config.test_fraction, seed)
    x_mean, x_std = (x[train].mean(0), x[train].std(0) + 1e-12) if standardize else (0.0, 1.0)
    y_mean, y_std = (y[train].mean(), y[train].std() + 1e-12) if standardize else (0.0, 1.0)
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    data = {f"x_{k}": t((x[i] - x_mean) / x_std) for k, i in (("train", train), ("val", val), ("test", test))}
    data.update({f"y_{k}": t((y[i] - y_mean) / y_std) for k, i in (("train", train), ("val", val), ("test", test))})
    return data, float(y_std), float(y_mean), y[test]


@dataclass
class TargetResult:
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {m: [] for m in MODELS})
    example: dict[str, Any] = field(default_factory=dict)  # first seed: true y, predictions, curves
    y_true: list[np.ndarray] = field(default_factory=list)  # per seed, the test targets
    y_pred: dict[str, list[np.ndarray]] = field(default_factory=lambda: {m: [] for m in MODELS})

    def squared_errors(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per seed, (fc, spinal) squared error per test example: their means are the test MSEs."""
        return [tuple((self.y_pred[m][i] - y) ** 2 for m in MODELS) for i, y in enumerate(self.y_true)]


def run_target(name: str, config: RegressConfig, log: Callable[[str], None]) -> TargetResult:
    result = TargetResult()
    table = load_table(config.data, config.y_column) if config.data else None
    standardize = config.standardize if config.standardize is not None else table is not None
    for seed in range(config.seed, config.seed + config.seeds):
        x, y = (table[0], table[1]) if table else make_targets(name, config.samples, config.noise, seed)
        data, y_std, y_mean, _ = prepare(x, y, config, seed, standardize)
        # in the data's own units, from the same float32 values the models saw: test MSE = mean((pred - true)^2)
        y_true = data["y_test"].double().numpy() * y_std + y_mean
        result.y_true.append(y_true)
        torch.manual_seed(seed)
        models = build_models(x.shape[1], config)
        for model_name in MODELS:
            torch.manual_seed(seed)
            out = fit(models[model_name], data, config, seed, y_std)
            y_pred = out.pop("pred").double().numpy() * y_std + y_mean
            result.y_pred[model_name].append(y_pred)
            out["test_mse"] = float(np.mean((y_pred - y_true) ** 2))
            result.runs[model_name].append(out | {"seed": seed})
            if seed == config.seed:
                result.example[model_name] = {"pred": y_pred, "true": y_true,
                                              "train_curve": out["train_curve"], "val_curve": out["val_curve"]}
        log(f"[{name} seed {seed}] test MSE fc {result.runs['fc'][-1]['test_mse']:.4f}, "
            f"spinal {result.runs['spinal'][-1]['test_mse']:.4f}")
    return result


def summarize_target(result: TargetResult) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in MODELS:
        runs = result.runs[model]
        mse = [r["test_mse"] for r in runs]
        m, s = mean_std(mse)
        paper = [r["min_train_batch_mse"] for r in runs]
        out[model] = {"test_mse": [round(v, 6) for v in mse], "test_mse_mean": round(m, 6), "test_mse_std": round(s, 6),
                      "val_mse": [round(r["val_mse"], 6) for r in runs], "params": runs[0]["params"],
                      "paper_metric_min_train_batch_mse": [round(v, 6) for v in paper],
                      "seeds": [r["seed"] for r in runs]}
    out.update(paired_stats(out["fc"]["test_mse"], out["spinal"]["test_mse"], higher_is_better=False,
                            example_scores=result.squared_errors()).as_dict())
    return out


def format_table(summary: dict[str, dict[str, Any]]) -> str:
    rows = [["target", "model", "params", "test MSE, mean", "+- std", "paper metric: min train minibatch MSE"]]
    notes = {}
    for target, res in summary.items():
        for i, model in enumerate(MODELS):
            r = res[model]
            paper = sum(r["paper_metric_min_train_batch_mse"]) / len(r["paper_metric_min_train_batch_mse"])
            rows.append([target if i == 0 else "", model, f"{r['params']:,}",
                         f"{r['test_mse_mean']:.4f}", f"{r['test_mse_std']:.4f}", f"{paper:.4f}"])
        notes[len(rows)] = describe(res, "test MSE", better_word="better (lower MSE)", digits=4)
    lines = align(rows, left=2)
    indent = " " * (max(len(row[0]) for row in rows) + 2)
    for at in sorted(notes, reverse=True):
        lines.insert(at, indent + notes[at])
    return "\n".join(lines)


def prediction_arrays(results: dict[str, TargetResult]) -> dict[str, np.ndarray]:
    """``predictions.npz`` of a study: per target, ``<target>.y_true`` and ``<target>.<model>.y_pred``,
    one row per seed (the order of ``seeds`` in results.json)."""
    arrays: dict[str, np.ndarray] = {}
    for target, res in results.items():
        arrays[f"{target}.y_true"] = np.stack(res.y_true)
        for model in MODELS:
            arrays[f"{target}.{model}.y_pred"] = np.stack(res.y_pred[model])
    return arrays


def plot_study(results: dict[str, TargetResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spinalnet.plots import COLORS, save_figure

    fig, axes = plt.subplots(len(results), 3, figsize=(12, 3.4 * len(results)), squeeze=False)
    for row, (target, res) in enumerate(results.items()):
        for col, model in enumerate(MODELS):
            ax, ex = axes[row, col], res.example[model]
            ax.scatter(ex["true"], ex["pred"], s=8, alpha=0.6, color=COLORS[model])
            lo, hi = float(np.min(ex["true"])), float(np.max(ex["true"]))
            ax.plot([lo, hi], [lo, hi], "k--", linewidth=1)
            ax.set_title(f"{target}: {model}, test set (first seed)")
            ax.set_xlabel("true")
            ax.set_ylabel("predicted")
        ax = axes[row, 2]
        for model in MODELS:
            ex = res.example[model]
            epochs = range(1, len(ex["train_curve"]) + 1)  # epoch 1 is the first, as in curves.png
            ax.plot(epochs, ex["train_curve"], color=COLORS[model], alpha=0.5, label=f"{model} train")
            ax.plot(epochs, ex["val_curve"], color=COLORS[model], label=f"{model} validation")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("MSE")
        ax.set_title(f"{target}: loss curves (first seed)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def regress(config: RegressConfig, log: Callable[[str], None] = print,
            experiment: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the study; write results.json, results.csv, predictions.npz and regression.png; return the summary."""
    config.validate()
    features = load_table(config.data, config.y_column)[0].shape[1] if config.data else FEATURES
    check_models(features, config, config.data or "the synthetic targets")  # fail before anything is written
    run = open_run_dir(config.output, "regress", lambda: timestamped("runs", "regress"), force=config.force,
                       resumable=False)
    out = run.create()  # an unwritable --output fails now, not after training
    targets = [Path(config.data[4:]).name] if config.data else (list(TARGETS) if config.target == "all" else [config.target])
    results = {t: run_target(t, config, log) for t in targets}
    summary = {t: summarize_target(r) for t, r in results.items()}
    write_regression_results(out, {"targets": summary, "config": config.to_dict(), "versions": versions(),
                                   "hardware": hardware(), "command": " ".join(sys.argv), "experiment": experiment,
                                   "metric": "test_mse: held-out test MSE of the epoch chosen on validation; "
                                             "paper_metric_min_train_batch_mse: the paper's Table I metric"})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["target", "model", "seed", "params", "test_mse", "val_mse", "min_train_batch_mse"])
    for t, res in results.items():
        for model in MODELS:
            for r in res.runs[model]:
                writer.writerow([t, model, r["seed"], r["params"], f"{r['test_mse']:.6g}", f"{r['val_mse']:.6g}",
                                 f"{r['min_train_batch_mse']:.6g}"])
    atomic_write_text(out / "results.csv", buffer.getvalue())
    save_npz(out / PREDICTIONS_FILE, prediction_arrays(results))
    plot_study(results, out / "regression.png")
    log("")
    log(format_table(summary))
    log(f"wrote {out}/results.json, results.csv, predictions.npz, regression.png")
    return summary
