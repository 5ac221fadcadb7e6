"""Optimisers and learning-rate schedules from a recipe's ``optim`` section."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from ganreg.recipe import OptimizerSpec

FUSED_DEVICES = ("cpu", "cuda")
"""Devices with PyTorch's fused (one kernel for all parameters) Adam/AdamW."""


def _fused(params: list[torch.nn.Parameter]) -> bool:
    """Why fused: the default CPU Adam loops over the ~150 tensors of a DF-GAN generator one op at a time; the
    fused kernel is about 1.7x faster there (a few % of a 64-px CPU step) and the same update up to rounding."""
    return bool(params) and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in params)


def build_optimizer(params: Iterable[torch.nn.Parameter], spec: OptimizerSpec) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if spec.name in ("adam", "adamw"):
        cls = torch.optim.Adam if spec.name == "adam" else torch.optim.AdamW
        fused = _fused(params)
        return cls(params, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay, fused=fused)
    if spec.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=spec.lr, eps=spec.eps, weight_decay=spec.weight_decay)
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.betas[0], weight_decay=spec.weight_decay)


def lr_factor(spec: OptimizerSpec, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Multiplier of the base lr at a generator step."""
    s = spec.schedule
    if s.name == "constant":
        return 1.0
    if s.name == "step":
        epoch = step // max(1, steps_per_epoch)
        return s.gamma ** (epoch // s.step_epochs)
    progress = min(1.0, step / max(1, total_steps))
    if s.name == "linear":
        return 1.0 - (1.0 - s.final_fraction) * progress
    return s.final_fraction + (1.0 - s.final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    opt: torch.optim.Optimizer, spec: OptimizerSpec, total_steps: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(spec, step, total_steps, steps_per_epoch))
