"""The Vocos CPU recipe, shrunk, on the HiFi-GAN stage's trainer: trains through `bins/tta/train_tta.py` (spectral
and adversarial steps), saves, resumes, runs under bf16 autocast, and its experiment folder loads as a vocoder."""

import logging
from pathlib import Path

import torch

from bins.tta import train_tta
from models.tta.hifigan.config import HifiGanExperiment, build_generator
from models.tta.hifigan.vocos import VocosGenerator
from models.tta.vocoders import GENERATOR_NAME, load_vocoder
from tests.models.base.toy_stage import reset_accelerate_state
from tests.models.tta.hifigan.test_trainer import HOP, RECIPE, processed_dir  # noqa: F401  (pytest fixture)
from utils.checkpoint import latest_valid_checkpoint, list_checkpoints, load_model_weights
from utils.config import load_config

VOCOS_CONFIG = RECIPE / "exp_config_vocos_cpu.json"
FRAMES = 40

# The recipe shrunk to a few thousand parameters and a few short segments; the discriminators join at step 2 so
# both the spectral-only and the adversarial generator steps run.
SHRINK = [
    "model.vocos.dim=16",
    "model.vocos.intermediate_dim=32",
    "model.vocos.num_layers=1",
    "discriminator.periods=[2, 3]",
    "discriminator.mpd_channels=[4, 8]",
    "discriminator.msd_scales=1",
    "discriminator.msd_channels=[16, 16, 16, 16, 16, 16, 16]",
    "data.segment_frames=8",
    f"data.valid_frames={FRAMES}",
    "data.num_sample_clips=1",
    "data.statistics_clips=4",
    "trainer.batch_size=2",
    "trainer.valid_batch_size=2",
    "trainer.valid_max_batches=1",
    "trainer.num_workers=0",
    "trainer.log_every=1",
    "trainer.valid_every=2",
    "trainer.sample_every=2",
    "trainer.save_every=1",
    "trainer.keep_last_n=0",
    "loss.disc_start_step=1",
]


def _overrides(processed: Path, log_dir: Path, *extra: str) -> list[str]:
    return [*SHRINK, f"preprocess.processed_dir={processed}", f"log_dir={log_dir}", *extra]


def _train(processed: Path, log_dir: Path, *extra: str, resume: bool = False) -> int:
    argv = ["--config", str(VOCOS_CONFIG)]
    for override in _overrides(processed, log_dir, *extra):
        argv += ["--set", override]
    return train_tta.main(argv + (["--resume"] if resume else []))


def test_vocos_recipe_trains_resumes_and_loads_as_a_vocoder(processed_dir, tmp_path, caplog):  # noqa: F811
    ema = ["trainer.ema.enabled=true", "trainer.ema.decay=0.5"]
    assert _train(processed_dir, tmp_path, "trainer.max_steps=2", *ema) == 0
    exp_dir = tmp_path / "vocos_cpu"
    assert [step for step, _ in list_checkpoints(exp_dir / "checkpoints")] == [1, 2]

    reset_accelerate_state()
    with caplog.at_level(logging.INFO):
        assert _train(processed_dir, tmp_path, "trainer.max_steps=3", *ema, resume=True) == 0
    assert "(step 2)" in caplog.text and "resumed from" in caplog.text
    assert [step for step, _ in list_checkpoints(exp_dir / "checkpoints")] == [1, 2, 3]

    config = load_config(VOCOS_CONFIG, HifiGanExperiment, _overrides(processed_dir, tmp_path))
    mel_config = config.preprocess.mel
    vocoder = load_vocoder(str(exp_dir), mel=mel_config)
    assert isinstance(vocoder.generator, VocosGenerator) and vocoder.hop_length == HOP
    assert vocoder.generator.normalize_before and vocoder.generator.scale.min() > 0
    mel = torch.randn(1, FRAMES, mel_config.n_mels) - 5.0
    with torch.no_grad():
        waveform = vocoder(mel)
    assert waveform.shape == (1, FRAMES * HOP) and torch.isfinite(waveform).all()

    # The vocoder carries the EMA weights of the newest checkpoint, not the raw ones.
    checkpoint = latest_valid_checkpoint(exp_dir / "checkpoints")
    for use_ema, should_match in ((True, True), (False, False)):
        generator = build_generator(
            config.model, mel=mel_config, use_weight_norm=False
        )
        load_model_weights(checkpoint, GENERATOR_NAME, generator, use_ema=use_ema)
        with torch.no_grad():
            reference = generator.eval()(mel)
        assert torch.allclose(waveform, reference, atol=1e-6) is should_match


def test_vocos_bf16_steps_keep_fp32_finite_weights(processed_dir, tmp_path):  # noqa: F811
    assert _train(processed_dir, tmp_path, "trainer.max_steps=2", "trainer.mixed_precision=bf16") == 0
    checkpoint = latest_valid_checkpoint(tmp_path / "vocos_cpu" / "checkpoints")
    config = load_config(VOCOS_CONFIG, HifiGanExperiment, _overrides(processed_dir, tmp_path))
    generator = build_generator(config.model, mel=config.preprocess.mel, use_weight_norm=False)
    load_model_weights(checkpoint, GENERATOR_NAME, generator)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in generator.parameters())
