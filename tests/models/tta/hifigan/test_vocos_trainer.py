"""The Vocos CPU recipe, shrunk, on the HiFi-GAN stage's trainer: trains through `bins/tta/train_tta.py` (spectral
and adversarial steps), saves, resumes, runs under bf16 autocast, and its experiment folder loads as a vocoder."""

from pathlib import Path

import torch

from models.tta.hifigan.config import HifiGanExperiment, build_generator
from models.tta.hifigan.vocos import VocosGenerator
from models.tta.vocoders import GENERATOR_NAME
from tests.models.tta.hifigan.test_trainer import (  # noqa: F401  (processed_dir: a pytest fixture)
    HOP,
    RECIPE,
    SMOKE_SETTINGS,
    load_and_check_ema_vocoder,
    processed_dir,
    recipe_overrides,
    train_and_resume,
    train_recipe,
)
from utils.checkpoint import latest_valid_checkpoint, load_model_weights
from utils.config import load_config

VOCOS_CONFIG = RECIPE / "exp_config_vocos_cpu.json"

# The recipe shrunk to a few thousand parameters; the discriminators join at step 2 so both the spectral-only and
# the adversarial generator steps run.
SHRINK = [
    "model.vocos.dim=16",
    "model.vocos.intermediate_dim=32",
    "model.vocos.num_layers=1",
    *SMOKE_SETTINGS,
    "data.statistics_clips=4",
    "loss.disc_start_step=1",
]


def _train_vocos(processed: Path, log_dir: Path, *extra: str) -> int:
    return train_recipe(processed, log_dir, *extra, config=VOCOS_CONFIG, shrink=SHRINK)


def test_vocos_recipe_trains_resumes_and_loads_as_a_vocoder(processed_dir, tmp_path, caplog):  # noqa: F811
    exp_dir = train_and_resume(processed_dir, tmp_path, caplog, exp_name="vocos_cpu", config=VOCOS_CONFIG,
                               shrink=SHRINK)
    config = load_config(VOCOS_CONFIG, HifiGanExperiment, recipe_overrides(processed_dir, tmp_path, shrink=SHRINK))
    vocoder = load_and_check_ema_vocoder(exp_dir, config)
    assert isinstance(vocoder.generator, VocosGenerator) and vocoder.hop_length == HOP
    assert vocoder.generator.normalize_before and vocoder.generator.scale.min() > 0


def test_vocos_bf16_steps_keep_fp32_finite_weights(processed_dir, tmp_path):  # noqa: F811
    assert _train_vocos(processed_dir, tmp_path, "trainer.max_steps=2", "trainer.mixed_precision=bf16") == 0
    checkpoint = latest_valid_checkpoint(tmp_path / "vocos_cpu" / "checkpoints")
    config = load_config(VOCOS_CONFIG, HifiGanExperiment, recipe_overrides(processed_dir, tmp_path, shrink=SHRINK))
    generator = build_generator(config.model, mel=config.preprocess.mel, use_weight_norm=False)
    load_model_weights(checkpoint, GENERATOR_NAME, generator)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in generator.parameters())
