"""The HiFi-GAN stage on the shared trainer: the debug recipe, shrunk, trains through `bins/tta/train_tta.py`,
saves, resumes, logs vocoded audio, and its experiment folder loads as a vocoder."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from bins.tta import preprocess, train_tta
from models.tta.hifigan.config import HifiGanExperiment, build_generator
from models.base.data import read_split
from models.tta.hifigan.trainer import DISCRIMINATOR_NAME, HifiGanTrainer, mel_bin_statistics
from models.tta.vocoders import GENERATOR_NAME, load_vocoder
from tests.models.base.toy_stage import reset_accelerate_state
from utils.checkpoint import latest_valid_checkpoint, list_checkpoints, load_model_weights
from utils.config import ConfigError, config_to_dict, load_config

REPO_ROOT = Path(__file__).resolve().parents[4]
RECIPE = REPO_ROOT / "egs" / "tta" / "hifigan"
DEBUG_CONFIG = RECIPE / "exp_config_debug.json"
HOP = 160
VALID_FRAMES = 40

# Discriminators, data and trainer settings of the smoke runs (this file's and the Vocos recipe's): a few
# thousand discriminator parameters, a few short segments, every step logged and saved.
SMOKE_SETTINGS = [
    "discriminator.periods=[2, 3]",
    "discriminator.mpd_channels=[4, 8]",
    "discriminator.msd_scales=1",
    "discriminator.msd_channels=[16, 16, 16, 16, 16, 16, 16]",
    "data.segment_frames=8",
    f"data.valid_frames={VALID_FRAMES}",
    "data.num_sample_clips=1",
    "trainer.batch_size=2",
    "trainer.valid_batch_size=2",
    "trainer.valid_max_batches=1",
    "trainer.num_workers=0",
    "trainer.log_every=1",
    "trainer.valid_every=2",
    "trainer.sample_every=2",
    "trainer.save_every=1",
    "trainer.keep_last_n=0",
]
# The debug recipe shrunk to a few thousand parameters.
SHRINK = [
    "model.upsample_initial_channel=16",
    "model.resblock_kernel_sizes=[3]",
    "model.resblock_dilation_sizes=[[1, 3]]",
    *SMOKE_SETTINGS,
    # The recipe regresses spectra only for its whole budget; the smoke run exercises the adversarial step too.
    "loss.disc_start_step=0",
]


@pytest.fixture(scope="module")
def processed_dir(tmp_path_factory) -> Path:
    """The built-in dataset, 12 clips of 2 s, preprocessed with the recipe's own config."""
    root = tmp_path_factory.mktemp("processed")
    status = preprocess.main(
        [
            "--config", str(DEBUG_CONFIG), "--no-progress",
            "--set", f"preprocess.processed_dir={root}",
            "--set", "preprocess.builtin.num_clips=12",
            "--set", "preprocess.builtin.clip_seconds=2.0",
            "--set", "preprocess.valid_fraction=0.25",
            "--set", "preprocess.test_fraction=0.25",
            "--set", "preprocess.num_workers=1",
        ]
    )
    assert status == 0
    return root


def recipe_overrides(processed_dir: Path, log_dir: Path, *extra: str, shrink: list[str] = SHRINK) -> list[str]:
    return [*shrink, f"preprocess.processed_dir={processed_dir}", f"log_dir={log_dir}", *extra]


def train_recipe(processed_dir: Path, log_dir: Path, *extra: str, resume: bool = False, config: Path = DEBUG_CONFIG,
           shrink: list[str] = SHRINK) -> int:
    """`bins/tta/train_tta.py` on `config` shrunk by `shrink`, on the test data, logging under `log_dir`."""
    argv = ["--config", str(config)]
    for override in recipe_overrides(processed_dir, log_dir, *extra, shrink=shrink):
        argv += ["--set", override]
    return train_tta.main(argv + (["--resume"] if resume else []))


def train_and_resume(processed_dir: Path, log_dir: Path, caplog, *, exp_name: str, config: Path = DEBUG_CONFIG,
                     shrink: list[str] = SHRINK) -> Path:
    """Train 2 steps with EMA, resume to step 3, check the checkpoints and the resume message; the experiment
    folder."""
    ema = ["trainer.ema.enabled=true", "trainer.ema.decay=0.5"]
    assert train_recipe(processed_dir, log_dir, "trainer.max_steps=2", *ema, config=config, shrink=shrink) == 0
    exp_dir = log_dir / exp_name
    assert [step for step, _ in list_checkpoints(exp_dir / "checkpoints")] == [1, 2]

    reset_accelerate_state()
    with caplog.at_level(logging.INFO):
        assert train_recipe(processed_dir, log_dir, "trainer.max_steps=3", *ema, resume=True, config=config,
                      shrink=shrink) == 0
    assert "(step 2)" in caplog.text and "resumed from" in caplog.text
    assert [step for step, _ in list_checkpoints(exp_dir / "checkpoints")] == [1, 2, 3]
    return exp_dir


def _trainer(processed_dir: Path, log_dir: Path, *extra: str) -> HifiGanTrainer:
    config = load_config(DEBUG_CONFIG, HifiGanExperiment, recipe_overrides(processed_dir, log_dir, *extra))
    return HifiGanTrainer(config, log_dir / config.exp_name, config_to_dict(config))


def test_debug_recipe_trains_saves_resumes_logs_audio_and_loads_as_a_vocoder(processed_dir, tmp_path, caplog):
    exp_dir = train_and_resume(processed_dir, tmp_path, caplog, exp_name="hifigan_debug")
    assert json.loads((exp_dir / "config.json").read_text())["model_type"] == "HiFiGAN"

    events = EventAccumulator(str(exp_dir / "logs"), size_guidance={"audio": 0, "images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {f"train/{name}" for name in ("mel", "stft", "adv_g", "fm", "disc")} <= set(tags["scalars"])
    assert {"valid/mel_l1", "valid/lsd", "valid/mr_stft"} <= set(tags["scalars"])
    assert any(tag.startswith("vocoded/") for tag in tags["audio"])
    assert any(tag.startswith("real/") for tag in tags["audio"])
    assert any(tag.startswith("vocoded_mel/") for tag in tags["images"])

    config = load_config(DEBUG_CONFIG, HifiGanExperiment, recipe_overrides(processed_dir, tmp_path))
    load_and_check_ema_vocoder(exp_dir, config)


def load_and_check_ema_vocoder(exp_dir: Path, config: HifiGanExperiment) -> torch.nn.Module:
    """Load `exp_dir` as a vocoder; check it vocodes a mel to frames × hop finite samples with the EMA weights of
    the newest checkpoint, not the raw ones; return it."""
    vocoder = load_vocoder(str(exp_dir), mel=config.preprocess.mel)
    mel = torch.randn(1, VALID_FRAMES, config.preprocess.mel.n_mels) - 5.0
    with torch.no_grad():
        waveform = vocoder(mel)
    assert waveform.shape == (1, VALID_FRAMES * HOP) and torch.isfinite(waveform).all()
    checkpoint = latest_valid_checkpoint(exp_dir / "checkpoints")
    for use_ema, should_match in ((True, True), (False, False)):
        generator = build_generator(config.model, mel=config.preprocess.mel,
                                    use_weight_norm=config.model.uses_weight_norm)
        load_model_weights(checkpoint, GENERATOR_NAME, generator, use_ema=use_ema)
        if config.model.uses_weight_norm:
            generator.remove_weight_norm()
        with torch.no_grad():
            reference = generator.eval()(mel)[:, : VALID_FRAMES * HOP]
        assert torch.allclose(waveform, reference, atol=1e-6) is should_match
    return vocoder


def test_normalized_input_uses_the_training_mel_statistics(processed_dir, tmp_path):
    trainer = _trainer(processed_dir, tmp_path, "trainer.max_steps=1", "model.normalize_input=true")
    records = read_split(processed_dir, ["builtin"], "train")
    frames = np.concatenate([np.load(record.mel_path(processed_dir)) for record in records], axis=1)
    generator = trainer.unwrap(GENERATOR_NAME)
    assert generator.normalize_before
    assert np.allclose(generator.mean.numpy(), frames.mean(axis=1), atol=1e-4)
    assert np.allclose(generator.scale.numpy(), frames.std(axis=1), atol=1e-4)

    mean, std = mel_bin_statistics(processed_dir, records[:1], n_mels=frames.shape[0])
    first = np.load(records[0].mel_path(processed_dir))
    assert np.allclose(mean.numpy(), first.mean(axis=1), atol=1e-4)
    assert np.allclose(std.numpy(), first.std(axis=1), atol=1e-4)


def test_discriminator_waits_for_disc_start_step(processed_dir, tmp_path):
    trainer = _trainer(processed_dir, tmp_path, "trainer.max_steps=2", "loss.disc_start_step=2")
    before = {k: v.clone() for k, v in trainer.unwrap(DISCRIMINATOR_NAME).state_dict().items()}
    generator_before = {k: v.clone() for k, v in trainer.unwrap(GENERATOR_NAME).state_dict().items()}
    trainer.train()
    after = trainer.unwrap(DISCRIMINATOR_NAME).state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)
    generator_after = trainer.unwrap(GENERATOR_NAME).state_dict()
    assert not all(torch.equal(generator_before[key], generator_after[key]) for key in generator_before)

    reset_accelerate_state()
    trainer = _trainer(processed_dir, tmp_path / "adversarial", "trainer.max_steps=1")
    before = {k: v.clone() for k, v in trainer.unwrap(DISCRIMINATOR_NAME).state_dict().items()}
    trainer.train()
    after = trainer.unwrap(DISCRIMINATOR_NAME).state_dict()
    assert not all(torch.equal(before[key], after[key]) for key in before)


def test_bf16_mixed_precision_step_gives_finite_losses(processed_dir, tmp_path):
    trainer = _trainer(
        processed_dir, tmp_path, "trainer.max_steps=1", "trainer.mixed_precision=bf16", "trainer.valid_every=1"
    )
    trainer.train()
    assert all(parameter.dtype == torch.float32 for parameter in trainer.unwrap(GENERATOR_NAME).parameters())
    assert all(torch.isfinite(parameter).all() for parameter in trainer.unwrap(GENERATOR_NAME).parameters())


def test_batch_with_no_loadable_clip_stops_with_a_clear_error(processed_dir, tmp_path):
    broken = tmp_path / "processed"
    shutil.copytree(processed_dir, broken)
    for wav in (broken / "builtin" / "wav").glob("*.wav"):
        wav.write_bytes(b"not audio")
    trainer = _trainer(broken, tmp_path, "trainer.max_steps=1")
    with pytest.warns(UserWarning, match="skipping"), pytest.raises(RuntimeError, match="could be loaded"):
        trainer.train()


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.upsample_rates=[8, 5, 2]", r"multiply to 80.*hop_length = 160"),
        ("loss.weights.mell=45.0", r"unknown \['mell'\]"),
        ("data.segment_frames=4", "shorter than one STFT window"),
        (["preprocess.mel.n_fft=512", "preprocess.mel.win_length=512", "data.segment_frames=4"], "for the STFT loss"),
        ("discriminator.msd_groups=[1, 3, 16, 16, 16, 16, 1]", "must divide by its groups"),
        ("model_type=HiFiGan", "model_type"),
    ],
)
def test_config_mistakes_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(DEBUG_CONFIG, HifiGanExperiment, override if isinstance(override, list) else [override])


def test_full_size_recipe_builds_the_audioldm2_vocoder():
    config = load_config(RECIPE / "exp_config.json", HifiGanExperiment)
    generator = build_generator(
        config.model, mel=config.preprocess.mel, use_weight_norm=False
    )
    parameters = sum(parameter.numel() for parameter in generator.parameters())
    assert abs(parameters / 1e6 - 55.3) < 0.1
    assert generator.hop_length == config.preprocess.mel.hop_length == HOP
