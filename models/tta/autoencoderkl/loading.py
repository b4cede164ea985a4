"""Find and load a trained VAE for evaluation, the latent scale command and stage 2.

A VAE is named by a path, which may be:
- an experiment folder of this repo (`<log_dir>/<exp_name>`, holding `checkpoints/`): its newest valid checkpoint;
- a checkpoint folder of this repo (holding `meta.json`): the VAE is rebuilt from the resolved config stored in
  the checkpoint and loaded with its EMA weights when it has them;
- a diffusers `vae/` folder (`config.json` + `diffusion_pytorch_model.*`, e.g. AudioLDM 2's), or the pipeline
  folder that contains it, loaded through the explicit key map.
"""

from dataclasses import dataclass
from pathlib import Path

from models.tta.autoencoderkl.config import AutoencoderKLExperiment, build_autoencoder
from models.tta.autoencoderkl.key_map import load_diffusers_vae
from models.tta.autoencoderkl.latent_scale import read_latent_scale
from models.tta.autoencoderkl.model import AutoencoderKL
from utils.checkpoint import (
    META_FILE,
    CheckpointError,
    load_model_weights,
    read_checkpoint_meta,
    resolve_checkpoint,
    weights_file_name,
)
from utils.config import validate

# Name of the VAE in this stage's checkpoints (`AutoencoderKLTrainer.build_models`).
VAE_NAME = "vae"
_MODEL_TYPE = "AutoencoderKL"


def read_experiment_config(checkpoint: Path) -> AutoencoderKLExperiment:
    """The resolved stage-1 config stored in a checkpoint, validated against the current schema."""
    config = read_checkpoint_meta(checkpoint)["config"]
    if config.get("model_type") != _MODEL_TYPE:
        raise CheckpointError(f"{checkpoint} is a {config.get('model_type')!r} checkpoint, not an {_MODEL_TYPE} VAE")
    return validate(AutoencoderKLExperiment, config, root_source=str(checkpoint / META_FILE))


@dataclass
class LoadedVAE:
    """A VAE ready for inference (eval mode, no gradients) and where it came from.

    `checkpoint` is the folder read; `config` the stage-1 experiment config (None for a diffusers folder);
    `weights` "ema" or "raw"; `scale_factor` the latent scale factor (None when it has not been measured for
    these weights yet)."""

    model: AutoencoderKL
    checkpoint: Path
    config: AutoencoderKLExperiment | None
    weights: str
    scale_factor: float | None


def load_vae(path: Path | str, *, use_ema: bool | None = None) -> LoadedVAE:
    """Load the VAE named by `path` (see the module docstring).

    use_ema: for our checkpoints, None takes the EMA weights when the checkpoint has them, True requires them,
    False takes the raw training weights (the latent scale file records which weights it was measured on)."""
    path = Path(path)
    diffusers_folder = next((p for p in (path, path / "vae") if _is_diffusers_vae(p)), None)
    if diffusers_folder is not None:
        model, scale_factor = load_diffusers_vae(diffusers_folder)
        return LoadedVAE(model.eval().requires_grad_(False), diffusers_folder, None, "raw", scale_factor)
    checkpoint = resolve_checkpoint(path)
    config = read_experiment_config(checkpoint)
    model = build_autoencoder(config.model)
    weights = weights_kind(load_model_weights(checkpoint, VAE_NAME, model, use_ema=use_ema))
    scale_factor = read_latent_scale(checkpoint, weights=weights)
    return LoadedVAE(model.eval().requires_grad_(False), checkpoint, config, weights, scale_factor)


def weights_kind(weights_file: Path) -> str:
    """Which weights a file read by `load_model_weights` holds: "ema" or "raw"."""
    return "ema" if weights_file.name == weights_file_name(VAE_NAME, ema=True) else "raw"


def _is_diffusers_vae(folder: Path) -> bool:
    weights = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
    return (folder / "config.json").is_file() and any((folder / name).is_file() for name in weights)
