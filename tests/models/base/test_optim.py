"""models.base.optim: AdamW settings and the warmup + constant / cosine / linear learning-rate schedules."""

import math

import pytest
import torch

from models.base.optim import build_adamw, build_lr_scheduler, lr_factor_schedule
from models.base.trainer_config import OptimizerConfig


def test_adamw_takes_its_settings_from_config():
    config = OptimizerConfig(learning_rate=3e-4, betas=(0.5, 0.9), weight_decay=0.01, eps=1e-6)
    group = build_adamw([torch.nn.Parameter(torch.zeros(1))], config).param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"], group["eps"]) == (3e-4, (0.5, 0.9), 0.01, 1e-6)


@pytest.mark.parametrize(
    ("schedule", "middle", "end"),
    [("constant", 1.0, 1.0), ("linear", 0.1 + 0.9 * 0.5, 0.1), ("cosine", 0.1 + 0.9 * 0.5, 0.1)],
)
def test_warmup_then_schedule(schedule, middle, end):
    factor = lr_factor_schedule(OptimizerConfig(lr_schedule=schedule, warmup_steps=4, min_lr_ratio=0.1), 104)
    assert [factor(update) for update in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(4) == 1.0
    assert factor(54) == pytest.approx(middle)
    assert factor(104) == pytest.approx(end) and factor(500) == pytest.approx(end)


def test_cosine_shape():
    factor = lr_factor_schedule(OptimizerConfig(lr_schedule="cosine"), 100)
    assert factor(25) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_scheduler_steps_the_optimizer_learning_rate():
    parameter = torch.nn.Parameter(torch.zeros(1))
    config = OptimizerConfig(learning_rate=1.0, warmup_steps=2, lr_schedule="linear")
    optimizer = build_adamw([parameter], config)
    scheduler = build_lr_scheduler(optimizer, config, total_updates=4)
    rates = []
    for _ in range(5):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.0])
