"""The latent scale factor: masked statistics of posterior samples, the vae_scale_factor command, and how
load_vae finds the stored factor again."""

import json
import logging

import pytest
import torch

from bins.tta.vae_scale_factor import main as scale_main
from models.tta.autoencoderkl.latent_scale import (
    LATENT_SCALE_FILE,
    latent_frame_mask,
    measure_latents,
    training_clip_batches,
)
from models.tta.autoencoderkl.loading import load_vae
from models.tta.autoencoderkl.model import AutoencoderKL
from tests.models.base.toy_stage import reset_accelerate_state
from tests.models.tta.autoencoderkl.tiny_recipe import (
    DEBUG_CONFIG,
    as_overrides,
    build_tiny_dataset,
    make_trainer,
    one_thread,
    tiny_config,
    tiny_values,
)


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def processed_dir(tmp_path_factory):
    return build_tiny_dataset(tmp_path_factory.mktemp("data") / "processed")


@pytest.fixture(scope="module")
def log_dir(processed_dir, tmp_path_factory):
    """A tiny experiment trained for 2 steps, with an EMA of the VAE: <log_dir>/autoencoderkl_debug."""
    log_dir = tmp_path_factory.mktemp("exp")
    reset_accelerate_state()
    extra = {"trainer.max_steps": 2, "trainer.ema.enabled": True, "trainer.ema.models": ["vae"]}
    config = tiny_config(processed_dir, log_dir, **extra)
    make_trainer(config, log_dir / config.exp_name).train()
    return log_dir


def test_latent_frame_mask_keeps_only_latent_frames_over_real_mel_frames():
    mask = torch.tensor([[1.0] * 10 + [0.0] * 4, [1.0] * 14]).view(2, 1, 14, 1)
    # 14 frames pad to 16 inside the VAE: 4 latent frames of 4 mel frames each.
    latent_mask = latent_frame_mask(mask, latent_frames=4, factor=4)
    assert latent_mask.tolist() == [[True, True, False, False], [True, True, True, False]]


def test_measure_latents_matches_torch_std_over_the_unpadded_latents():
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 8, 16), norm_groups=4, layers_per_block=1).eval()
    mels = torch.randn(3, 1, 16, 64) * 3 - 5
    masks = torch.ones(3, 1, 16, 1)
    masks[2, :, 9:] = 0.0
    batches = [{"mel": mels[:2], "mask": masks[:2]}, {"num_skipped": 1}, {"mel": mels[2:], "mask": masks[2:]}]
    statistics = measure_latents(vae, batches, generator=torch.Generator().manual_seed(3))

    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        first = vae.encode(mels[:2]).sample(generator)
        second = vae.encode(mels[2:]).sample(generator)[:, :, :2]  # latent frames 0-1 lie over mel frames 0-7
    values = torch.cat([first.flatten(), second.flatten()]).double()
    assert statistics.num_clips == 3 and statistics.num_values == values.numel()
    assert statistics.latent_std == pytest.approx(float(values.std()), rel=1e-9)
    assert statistics.latent_mean == pytest.approx(float(values.mean()), rel=1e-9, abs=1e-12)
    assert statistics.scale_factor == pytest.approx(1 / float(values.std()), rel=1e-9)


def test_training_clip_batches_draw_a_seeded_subset_of_training_crops(processed_dir, tmp_path):
    config = tiny_config(processed_dir, tmp_path)
    first = list(training_clip_batches(config, num_clips=6, batch_size=4, seed=1))
    again = list(training_clip_batches(config, num_clips=6, batch_size=4, seed=1))
    other = list(training_clip_batches(config, num_clips=6, batch_size=4, seed=2))
    assert [batch["mel"].shape[0] for batch in first] == [4, 2]
    assert first[0]["mel"].shape[1:] == (1, 32, 64)
    assert all(torch.equal(a["mel"], b["mel"]) for a, b in zip(first, again))
    assert [batch["uid"] for batch in first] != [batch["uid"] for batch in other]


def test_command_stores_the_factor_in_the_latest_checkpoint_for_load_vae(log_dir, caplog):
    exp_dir = log_dir / "autoencoderkl_debug"
    assert scale_main(["--checkpoint", str(exp_dir)]) == 0
    stored = json.loads((exp_dir / "checkpoints" / "step_00000002" / LATENT_SCALE_FILE).read_text())
    assert stored["weights"] == "ema" and stored["step"] == 2 and stored["num_clips"] == 8
    assert stored["scale_factor"] == pytest.approx(1 / stored["latent_std"])
    assert 0 < stored["scale_factor"] < 100

    loaded = load_vae(exp_dir)
    assert loaded.weights == "ema" and loaded.scale_factor == stored["scale_factor"]
    assert loaded.checkpoint == exp_dir / "checkpoints" / "step_00000002"
    with caplog.at_level(logging.WARNING):
        raw = load_vae(exp_dir, use_ema=False)
    assert raw.weights == "raw" and raw.scale_factor is None
    assert "measured on the ema weights" in caplog.text


def test_command_by_config_is_reproducible_and_honours_its_options(processed_dir, log_dir):
    arguments = ["--config", str(DEBUG_CONFIG), *as_overrides(tiny_values(processed_dir, log_dir))]
    checkpoint = log_dir / "autoencoderkl_debug" / "checkpoints" / "step_00000002"
    assert scale_main([*arguments, "--num_clips", "4", "--seed", "5"]) == 0
    first = json.loads((checkpoint / LATENT_SCALE_FILE).read_text())
    assert scale_main([*arguments, "--num_clips", "4", "--seed", "5"]) == 0
    assert json.loads((checkpoint / LATENT_SCALE_FILE).read_text()) == first
    assert first["num_clips"] == 4
    assert scale_main(["--checkpoint", str(checkpoint), "--raw_weights"]) == 0
    assert json.loads((checkpoint / LATENT_SCALE_FILE).read_text())["weights"] == "raw"


def test_command_without_a_checkpoint_exits_with_a_message(tmp_path, capsys):
    assert scale_main(["--checkpoint", str(tmp_path)]) == 2
    assert "neither a checkpoint folder" in capsys.readouterr().err
