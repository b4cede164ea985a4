"""The default optimizer (AdamW) and the learning-rate schedules named in `OptimizerConfig.lr_schedule`."""

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from models.base.trainer_config import OptimizerConfig


def build_adamw(parameters: Iterable[nn.Parameter], config: OptimizerConfig) -> torch.optim.AdamW:
    """AdamW over the given parameters with the config's learning rate, betas, eps and weight decay."""
    return torch.optim.AdamW(
        parameters,
        lr=config.learning_rate,
        betas=tuple(config.betas),
        eps=config.eps,
        weight_decay=config.weight_decay,
    )


def lr_factor_schedule(config: OptimizerConfig, total_updates: int) -> Callable[[int], float]:
    """Multiplier of the peak learning rate after `update` updates of the optimizer.

    Warmup: (update + 1) / warmup_steps for the first `warmup_steps` updates. Then 1 ("constant"), or a decay
    from 1 to `min_lr_ratio` reached at `total_updates`: half-cosine ("cosine", Loshchilov & Hutter, 2017) or
    straight line ("linear").
    """
    warmup = config.warmup_steps
    floor = config.min_lr_ratio
    decay_updates = max(total_updates - warmup, 1)

    def factor(update: int) -> float:
        if update < warmup:
            return (update + 1) / warmup
        if config.lr_schedule == "constant":
            return 1.0
        progress = min((update - warmup) / decay_updates, 1.0)
        if config.lr_schedule == "cosine":
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return floor + (1.0 - floor) * (1.0 - progress)

    return factor


def build_lr_scheduler(optimizer: torch.optim.Optimizer, config: OptimizerConfig, total_updates: int) -> LambdaLR:
    """A LambdaLR stepped once per update of `optimizer`. The schedule is rebuilt from config on resume (its
    state holds only the update count), so a resumed run follows the schedule of its current config."""
    return LambdaLR(optimizer, lr_factor_schedule(config, total_updates))
