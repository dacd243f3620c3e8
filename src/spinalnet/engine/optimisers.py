"""A run's optimiser and learning-rate schedule, built in one place: the engine's Lightning module and the batched
heads (:mod:`spinalnet.engine.stacked_optim`) take the same ones."""

from __future__ import annotations

from typing import Any, Iterable

import torch

from spinalnet.engine.config import TrainConfig


def make_optimizer(config: TrainConfig, params: Iterable[Any]) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW at ``config``'s learning rate and weight decay; ``params`` may be param
    groups with their own decay (:func:`spinalnet.engine.module.weight_decay_groups`)."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def make_schedule(config: TrainConfig, optimizer: torch.optim.Optimizer, steps: int) -> tuple[Any, str] | None:
    """The schedule and when it steps (``"epoch"`` or ``"step"``); None without one (``random-restart`` is a
    callback, :class:`spinalnet.engine.callbacks.RandomRestart`). ``steps``: optimiser steps of the whole run."""
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma), "epoch"
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs), "epoch"
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=max(steps, 1)), "step"
    return None
