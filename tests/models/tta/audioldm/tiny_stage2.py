"""Fixtures for stage-2 tests: a few built-in sound-effect clips preprocessed into a temporary folder, a tiny
random stage-1 VAE checkpoint with a measured latent scale, and the real debug recipe config shrunk onto them."""

from pathlib import Path

import torch

from models.tta.autoencoderkl.config import AutoencoderKLExperiment, build_autoencoder
from models.tta.autoencoderkl.latent_scale import LatentStatistics, write_latent_scale
from models.tta.autoencoderkl.loading import VAE_NAME
from preprocessors.config import load_preprocess_config
from preprocessors.pipeline import run_preprocess
from utils.checkpoint import save_inference_checkpoint
from utils.config import config_to_dict, validate

REPO_ROOT = Path(__file__).resolve().parents[4]
DEBUG_CONFIG = REPO_ROOT / "egs" / "tta" / "audioldm" / "exp_config_debug.json"
TINY_VAE = {"block_out_channels": [8, 8, 16], "layers_per_block": 1, "latent_channels": 4, "norm_groups": 4}
SCALE_FACTOR = 1.7


def make_tiny_data(root: Path) -> Path:
    """12 built-in sound-effect clips of 2 s under `root/processed/builtin_sfx`; returns the processed dir."""
    processed = root / "processed"
    config_path = root / "preprocess.json"
    config_path.write_text(
        '{ preprocess: { processed_dir: "%s", dataset: "builtin_sfx", num_workers: 1, valid_fraction: 0.2,'
        ' builtin: { num_clips: 12, clip_seconds: 2.0, families: ["sfx"] } } }' % processed.as_posix(),
        encoding="utf-8",
    )
    run_preprocess(load_preprocess_config(config_path))
    return processed


def make_tiny_vae_checkpoint(path: Path, processed_dir: Path, **architecture) -> Path:
    """A stage-1 inference checkpoint of a random tiny VAE (`TINY_VAE`, with `architecture` overrides) and its
    `latent_scale.json`."""
    model = {**TINY_VAE, **architecture}
    tree = {
        "model_type": "AutoencoderKL",
        "exp_name": "tiny_vae",
        "log_dir": str(path.parent),
        "preprocess": {"processed_dir": str(processed_dir), "dataset": "builtin_sfx"},
        "model": model,
    }
    experiment = validate(AutoencoderKLExperiment, tree)
    torch.manual_seed(0)
    vae = build_autoencoder(experiment.model)
    save_inference_checkpoint(path, models={VAE_NAME: vae}, config=config_to_dict(experiment), step=0)
    statistics = LatentStatistics(latent_mean=0.0, latent_std=1 / SCALE_FACTOR, num_clips=1, num_values=2)
    write_latent_scale(path, statistics, weights="raw", step=0)
    return path


def shrink_overrides(processed_dir: Path, vae_checkpoint: Path, exp_root: Path) -> list[str]:
    """`--set` overrides turning the real debug config into a seconds-long run on the tiny fixtures."""
    return [
        f"preprocess.processed_dir={processed_dir.as_posix()}",
        f"log_dir={exp_root.as_posix()}",
        # The recipe's cache lives in the repository's exp/; a test keeps its own.
        f"text_encoder.cache_dir={(exp_root / 'text_cache').as_posix()}",
        f"autoencoder.checkpoint={vae_checkpoint.as_posix()}",
        "autoencoder.block_out_channels=[8, 8, 16]",
        "autoencoder.layers_per_block=1",
        "autoencoder.latent_channels=4",
        "autoencoder.norm_groups=4",
        "autoencoder.scale_factor=null",
        "data.segment_frames=32",
        "unet.in_channels=4",
        "unet.out_channels=4",
        "unet.block_out_channels=[16, 32]",
        "unet.attention_blocks=[false, true]",
        "unet.layers_per_block=1",
        "unet.num_attention_heads=2",
        "unet.norm_groups=8",
        "trainer.max_steps=2",
        "trainer.batch_size=2",
        "trainer.valid_batch_size=2",
        "trainer.valid_max_batches=1",
        "trainer.num_workers=0",
        "trainer.log_every=1",
        "trainer.valid_every=2",
        "trainer.sample_every=2",
        "trainer.save_every=1",
        "validation.prompts=['three short high beeps']",
        "validation.num_inference_steps=2",
        "validation.audio_length_in_s=0.32",
        "inference.num_inference_steps=2",
        "inference.audio_length_in_s=0.32",
    ]
