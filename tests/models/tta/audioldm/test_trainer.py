"""AudioLDMTrainer from the real debug config, shrunk onto tiny data and a tiny VAE: trains, validates at fixed
timesteps with fixed noise, logs samples, saves the scale factor into the checkpoint, resumes; caption dropout;
VAE mismatch errors."""

import pytest
import torch

from models.tta.audioldm import text_states
from models.tta.audioldm.trainer import AudioLDMTrainer
from tests.models.tta.audioldm.tiny_stage2 import (
    DEBUG_CONFIG,
    SCALE_FACTOR,
    make_tiny_data,
    make_tiny_vae_checkpoint,
    shrink_overrides,
)
from utils.checkpoint import CheckpointError, list_checkpoints, read_checkpoint_meta
from utils.config import ConfigError, config_to_dict, load_config
from utils.logging import ExperimentWriter


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage2")
    processed = make_tiny_data(root)
    vae = make_tiny_vae_checkpoint(root / "vae_checkpoint", processed)
    return root, processed, vae


def build_trainer(fixtures, exp_dir, *extra):
    root, processed, vae = fixtures
    overrides = shrink_overrides(processed, vae, root / "exp") + list(extra)
    config = load_config(DEBUG_CONFIG, AudioLDMTrainer.config_schema, overrides)
    return AudioLDMTrainer(config, exp_dir, config_to_dict(config))


def test_trains_validates_samples_saves_and_resumes(fixtures, tmp_path, monkeypatch):
    logged = []
    trainer = build_trainer(fixtures, tmp_path / "run")
    original_audio = ExperimentWriter.audio

    def record_audio(writer, tag, waveform, sample_rate, step):
        logged.append((tag, tuple(torch.as_tensor(waveform).shape), sample_rate, step))
        original_audio(writer, tag, waveform, sample_rate, step)

    monkeypatch.setattr(ExperimentWriter, "audio", record_audio)
    trainer.train()
    assert [step for step, _ in list_checkpoints(tmp_path / "run" / "checkpoints")] == [1, 2]
    meta = read_checkpoint_meta(tmp_path / "run" / "checkpoints" / "step_00000002")
    assert meta["config"]["autoencoder"]["scale_factor"] == pytest.approx(SCALE_FACTOR)
    assert meta["ema_models"] == ["unet"]
    assert logged == [("samples/00_three short high beeps/audio", (int(0.32 * 16000),), 16000, 2)]

    first = trainer._run_validation()
    again = trainer._run_validation()
    assert set(first) == {"loss_t100", "loss_t500", "loss_t900", "loss_fixed_t"}
    assert first == again and all(torch.isfinite(torch.tensor(v)) for v in first.values())
    assert first["loss_t100"] != first["loss_t900"]

    resumed = build_trainer(fixtures, tmp_path / "run", "trainer.max_steps=3")
    resumed.train(resume=True)
    assert resumed.step == 3
    assert [step for step, _ in list_checkpoints(tmp_path / "run" / "checkpoints")][-1] == 3


def test_latents_are_scaled_and_padding_is_masked(fixtures, tmp_path):
    trainer = build_trainer(fixtures, tmp_path / "run", "data.latent_cache_mb=0")
    mel = torch.randn(2, 1, 10, 64)
    mask = torch.ones(2, 1, 10, 1)
    mask[1, :, 6:] = 0
    latents, latent_mask = trainer._latents({"mel": mel, "mask": mask}, sample=False)
    expected = trainer._autoencoder.encode(mel).mode() * SCALE_FACTOR
    torch.testing.assert_close(latents, expected)
    assert latent_mask.shape == (2, 1, 3, 1)
    assert latent_mask[0].flatten().tolist() == [1.0, 1.0, 0.0]  # frames 8-11: two are VAE padding
    assert latent_mask[1].flatten().tolist() == [1.0, 0.0, 0.0]


def test_caption_dropout_empties_training_captions_only(fixtures, tmp_path, monkeypatch):
    seen = []
    original = text_states.encode_texts

    def recording(encoder, texts, cache=None):
        seen.append(list(texts))
        return original(encoder, texts, cache)

    monkeypatch.setattr(text_states, "encode_texts", recording)
    trainer = build_trainer(
        fixtures, tmp_path / "run", "diffusion.caption_dropout=0.999", "trainer.max_steps=1", "trainer.sample_every=0",
        "trainer.valid_every=1",
    )
    trainer.train()
    train_captions, valid_captions = seen[0], seen[1]
    assert train_captions == ["", ""]
    assert all(caption for caption in valid_captions)


def test_vae_architecture_mismatch_is_a_clear_error(fixtures, tmp_path):
    root, processed, _ = fixtures
    other = make_tiny_vae_checkpoint(tmp_path / "other_vae", processed, block_out_channels=[8, 16, 16])
    with pytest.raises(CheckpointError, match=r"block_out_channels: config \[8, 8, 16\], checkpoint \[8, 16, 16\]"):
        build_trainer(fixtures, tmp_path / "run", f"autoencoder.checkpoint={other.as_posix()}")
    with pytest.raises(CheckpointError, match="does not exist: train stage 1 first"):
        build_trainer(fixtures, tmp_path / "run", f"autoencoder.checkpoint={(tmp_path / 'missing').as_posix()}")


def test_text_width_mismatch_is_a_clear_error(fixtures, tmp_path):
    with pytest.raises(ValueError, match="text encoder's hidden size 384"):
        build_trainer(fixtures, tmp_path / "run", "unet.cross_attention_dims=[768]")


def test_training_timesteps_follow_the_configured_sampling(fixtures, tmp_path, monkeypatch):
    from models.tta.audioldm import trainer as trainer_module

    drawn = []
    original = trainer_module.draw_timesteps

    def recording(batch_size, num_train_timesteps, **kwargs):
        timesteps = original(batch_size, num_train_timesteps, **kwargs)
        drawn.append((kwargs, timesteps))
        return timesteps

    monkeypatch.setattr(trainer_module, "draw_timesteps", recording)
    trainer = build_trainer(
        fixtures, tmp_path / "run", "diffusion.timestep_sampling=logit_normal", "diffusion.timestep_mean=-0.5",
        "diffusion.timestep_std=0.8", "trainer.max_steps=1", "trainer.sample_every=0",
    )
    trainer.train()
    kwargs, timesteps = drawn[0]
    assert (kwargs["sampling"], kwargs["mean"], kwargs["std"]) == ("logit_normal", -0.5, 0.8)
    assert timesteps.shape == (2,) and int(timesteps.max()) < 1000


def test_bad_timestep_std_is_a_clear_error(fixtures, tmp_path):
    with pytest.raises(ConfigError, match="diffusion.timestep_std must be > 0, got 0.0"):
        build_trainer(fixtures, tmp_path / "run", "diffusion.timestep_std=0")
    with pytest.raises(ConfigError, match="timestep_sampling"):
        build_trainer(fixtures, tmp_path / "run", "diffusion.timestep_sampling=beta")
