"""TrainerConfig loads through utils.config (strict keys and types) and rejects out-of-range values."""

import pytest

from models.base.trainer_config import EMAConfig, OptimizerConfig, TrainerConfig
from tests.models.base.toy_stage import ToyExperimentConfig
from utils.config import ConfigError, config_to_dict, load_config

CONFIG = """{
  // JSON5: comments and trailing commas are fine
  trainer: {
    max_steps: 100, batch_size: 4, mixed_precision: "bf16", max_grad_norm: 1,
    optimizers: {
      generator: {learning_rate: 2e-4, betas: [0.5, 0.9], lr_schedule: "cosine", warmup_steps: 10},
      discriminator: {learning_rate: 1e-4},
    },
    ema: {enabled: true, models: ["generator"], decay: 0.999},
  },
  model: {hidden: 8},
}
"""


def test_trainer_config_loads_from_json5(tmp_path):
    path = tmp_path / "exp.json"
    path.write_text(CONFIG)
    config = load_config(path, ToyExperimentConfig, ["trainer.keep_last_n=5"])
    trainer = config.trainer
    assert trainer.max_grad_norm == 1.0 and isinstance(trainer.max_grad_norm, float)
    assert trainer.optimizers["generator"].betas == (0.5, 0.9)
    assert trainer.optimizers["discriminator"].lr_schedule == "constant"
    assert trainer.ema.models == ["generator"] and trainer.keep_last_n == 5
    assert config_to_dict(config)["trainer"]["optimizers"]["generator"]["betas"] == [0.5, 0.9]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_step=3", "did you mean 'trainer.max_steps'"),
        ("trainer.mixed_precision=fp8", "one of 'no', 'bf16', 'fp16'"),
        ("trainer.optimizers.generator.lr_schedule=step", "one of 'constant', 'cosine', 'linear'"),
        ("trainer.batch_size=2.5", "expected an integer"),
    ],
)
def test_config_mistakes_name_the_key(tmp_path, override, message):
    path = tmp_path / "exp.json"
    path.write_text(CONFIG)
    with pytest.raises(ConfigError, match=message):
        load_config(path, ToyExperimentConfig, [override])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TrainerConfig(max_steps=0), "trainer.max_steps must be > 0"),
        (lambda: TrainerConfig(gradient_accumulation_steps=0), "gradient_accumulation_steps must be >= 1"),
        (lambda: TrainerConfig(max_grad_norm=0.0), "max_grad_norm must be > 0 or null"),
        (lambda: TrainerConfig(save_every=-1), "trainer.save_every must be >= 0"),
        (lambda: OptimizerConfig(betas=(0.9, 1.0)), "betas must be in"),
        (lambda: OptimizerConfig(min_lr_ratio=2.0), "min_lr_ratio must be in"),
        (lambda: EMAConfig(decay=1.0), "ema decay must be in"),
    ],
)
def test_out_of_range_values_are_rejected(build, message):
    with pytest.raises(ValueError, match=message):
        build()
