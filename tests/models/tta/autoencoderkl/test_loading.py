"""load_vae: experiment folders, checkpoint folders and diffusers folders, and the errors for anything else."""

import pytest
import torch
from diffusers import AutoencoderKL as DiffusersAutoencoderKL

from models.tta.autoencoderkl.config import AutoencoderKLModelConfig, build_autoencoder
from models.tta.autoencoderkl.loading import load_vae
from utils.checkpoint import CheckpointError, resolve_checkpoint, save_inference_checkpoint


def test_diffusers_vae_folder_or_its_pipeline_folder(tmp_path):
    torch.manual_seed(0)
    reference = DiffusersAutoencoderKL(
        in_channels=1, out_channels=1, latent_channels=8, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4, scaling_factor=0.25,
    ).eval()
    reference.save_pretrained(tmp_path / "pipeline" / "vae")
    mel = torch.randn(1, 1, 16, 16)
    for path in (tmp_path / "pipeline", tmp_path / "pipeline" / "vae"):
        loaded = load_vae(path)
        assert loaded.config is None and loaded.scale_factor == 0.25 and loaded.weights == "raw"
        assert loaded.checkpoint == tmp_path / "pipeline" / "vae"
        with torch.no_grad():
            torch.testing.assert_close(loaded.model.encode(mel).mean, reference.encode(mel).latent_dist.mean)


def test_checkpoint_of_another_stage_and_empty_folders_are_clear_errors(tmp_path):
    model = build_autoencoder(AutoencoderKLModelConfig(block_out_channels=(8,), norm_groups=4))
    save_inference_checkpoint(tmp_path / "other", models={"vae": model}, config={"model_type": "HiFiGAN"}, step=1)
    with pytest.raises(CheckpointError, match="is a 'HiFiGAN' checkpoint, not an AutoencoderKL VAE"):
        load_vae(tmp_path / "other")
    with pytest.raises(CheckpointError, match="neither a checkpoint folder"):
        load_vae(tmp_path)
    (tmp_path / "exp" / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="no valid checkpoint"):
        resolve_checkpoint(tmp_path / "exp")
