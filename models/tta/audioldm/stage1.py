"""The frozen stage-1 VAE as stage 2 uses it: loaded by `models.tta.autoencoderkl.loading.load_vae` (an
experiment, checkpoint or diffusers folder), checked against the architecture the stage-2 config expects, with
its latent scale factor (the config's, else the one measured for the loaded weights)."""

import dataclasses
from pathlib import Path

from models.tta.audioldm.config import AutoencoderConfig
from models.tta.autoencoderkl.loading import load_vae
from models.tta.autoencoderkl.model import AutoencoderKL
from utils.checkpoint import CheckpointError


def _saved_architecture(loaded) -> dict:
    """The architecture of a loaded VAE: its config's `model` section, or what the model itself exposes (a
    diffusers folder has no config of ours)."""
    if loaded.config is not None:
        saved = dataclasses.asdict(loaded.config.model)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in saved.items()}
    model = loaded.model
    return {"block_out_channels": list(model.block_out_channels), "latent_channels": model.latent_channels}


def load_frozen_autoencoder(config: AutoencoderConfig) -> tuple[AutoencoderKL, float, Path]:
    """(VAE in eval mode without gradients on the CPU, latent scale factor, checkpoint folder read).

    Raises CheckpointError when the checkpoint is missing or damaged, holds another architecture than `config`
    names (the message lists the differing keys), or has no measured scale factor while the config sets none."""
    if not Path(config.checkpoint).exists():
        raise CheckpointError(
            f"autoencoder.checkpoint {config.checkpoint} does not exist: train stage 1 first "
            f"(sh egs/tta/autoencoderkl/run_train.sh) or point autoencoder.checkpoint at a trained VAE"
        )
    loaded = load_vae(config.checkpoint)
    saved = _saved_architecture(loaded)
    differences = [
        f"{key}: config {value!r}, checkpoint {saved[key]!r}"
        for key, value in config.architecture().items()
        if key in saved and saved[key] != value
    ]
    if differences:
        raise CheckpointError(
            f"autoencoder.checkpoint {loaded.checkpoint} holds a different VAE than the config's autoencoder "
            f"section describes: {'; '.join(differences)}"
        )
    scale_factor = config.scale_factor if config.scale_factor is not None else loaded.scale_factor
    if scale_factor is None:
        raise CheckpointError(
            f"autoencoder.checkpoint {loaded.checkpoint}: no latent scale factor measured for its {loaded.weights} "
            f"weights; run bins/tta/vae_scale_factor.py on it, or set autoencoder.scale_factor"
        )
    return loaded.model, float(scale_factor), loaded.checkpoint
