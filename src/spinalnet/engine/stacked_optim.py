"""SGD, Adam and AdamW on stacked parameters, each run with its own learning rate, momentum and weight decay,
and each run's schedule from a PyTorch scheduler of its own.

The updates are those of ``torch.optim``'s single-tensor implementations (``_single_tensor_sgd`` /
``_single_tensor_adam``), written for a leading run axis; weight decay on weights only, as
:func:`spinalnet.engine.module.weight_decay_groups` does. A per-run scheduler drives a one-parameter optimizer of
the run's own kind, so every schedule (step, cosine, one-cycle with its momentum cycle) is PyTorch's own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from spinalnet.engine.config import TrainConfig
from spinalnet.engine.optimisers import make_optimizer, make_schedule

BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, as the engine's optimisers use them


def run_optimizer(config: TrainConfig, steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """A stand-in optimizer of the run's kind and hyperparameters with the run's scheduler (None without one);
    its param group is where the run's learning rate (and momentum) are read every step.

    The stand-in steps once, after its scheduler is made: its parameter has no gradient, so the step changes
    nothing, and the scheduler then knows the optimizer has stepped (PyTorch warns of a scheduler stepped
    before its optimizer otherwise; the runs' own updates are :class:`StackedOptimizer`'s)."""
    opt = make_optimizer(config, [torch.zeros(1, requires_grad=True)])
    schedule = make_schedule(config, opt, steps)
    opt.step()
    return opt, None if schedule is None else schedule[0]


class StackedOptimizer:
    """One update for every run: ``params`` are ``(R, ...)`` leaf tensors, ``decays`` says which are weights."""

    def __init__(self, kind: str, params: dict[str, Tensor], decays: dict[str, bool]) -> None:
        self.kind, self.params, self.decays = kind, params, decays
        self.state: dict[str, dict[str, Tensor]] = {}
        self.step_count = 0

    @torch.no_grad()
    def step(self, groups: list[dict[str, Any]]) -> None:
        """``groups``: each run's param group (``lr``, ``momentum`` or ``betas``, ``weight_decay``)."""
        self.step_count += 1
        values = {"lr": [g["lr"] for g in groups], "weight_decay": [g["weight_decay"] for g in groups],
                  "no_decay": [0.0] * len(groups)}
        if self.kind == "sgd":
            values["momentum"] = [g["momentum"] for g in groups]
        else:
            values.update(beta1=[g["betas"][0] for g in groups], beta2=[g["betas"][1] for g in groups])
        rows = {key: torch.tensor(v) for key, v in values.items()}  # one small tensor per value, not per parameter
        decay_free = not any(values["weight_decay"])

        def column(key: str, like: Tensor) -> Tensor:
            return rows[key].to(device=like.device, dtype=like.dtype).view(-1, *([1] * (like.ndim - 1)))

        for name, p in self.params.items():
            if p.grad is None:
                continue
            grad = p.grad
            lr = column("lr", p)
            wd = column("weight_decay" if self.decays[name] else "no_decay", p)
            state = self.state.setdefault(name, {})
            if self.kind == "sgd":
                grad = grad if decay_free else grad + wd * p
                momentum = column("momentum", p)
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = grad.clone()
                else:
                    state["momentum_buffer"].mul_(momentum).add_(grad)
                p.sub_(lr * state["momentum_buffer"])  # momentum 0: the buffer is the gradient itself
                continue
            beta1, beta2 = column("beta1", p), column("beta2", p)
            if self.kind == "adamw":
                p.mul_(1 - lr * wd)
            else:
                grad = grad + wd * p
            if "exp_avg" not in state:
                state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
            state["exp_avg"].lerp_(grad, 1 - beta1)
            state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad * (1 - beta2))
            t = self.step_count
            step_size = lr / (1 - beta1 ** t)
            denom = (state["exp_avg_sq"].sqrt() / (1 - beta2 ** t).sqrt()).add_(EPS)
            p.sub_(step_size * state["exp_avg"] / denom)

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def state_of(self, r: int) -> dict[str, Any]:
        return {"step": self.step_count, "state": {k: {n: t[r].clone() for n, t in s.items()} for k, s in self.state.items()}}

    def load_runs(self, states: list[dict[str, Any]]) -> None:
        """Each run's saved state (they were saved at the same step)."""
        self.step_count = states[0]["step"]
        for name in states[0]["state"]:
            self.state[name] = {n: torch.stack([s["state"][name][n] for s in states]) for n in states[0]["state"][name]}
