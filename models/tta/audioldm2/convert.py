"""Convert a local AudioLDM 2 diffusers folder into this repository's checkpoint format, for fine-tuning.

The UNet, VAE, vocoder and projection model are read through the explicit key maps (every missing or unexpected
key is an error) and written as an inference checkpoint of ``utils.checkpoint`` (atomic; every file checksummed):

    <output_dir>/
        unet.safetensors         AudioLDMUNet with two cross-attention streams, in our parameter names
        vae.safetensors          AutoencoderKL
        vocoder.safetensors      HifiGanGenerator, plain weights (``apply_weight_norm()`` before training it)
        projection.safetensors   AudioLDM2Projection
        meta.json                {"schema_version", "kind": "inference", "step": 0,
                                  "config": {"model_type": "AudioLDM2", "unet": {constructor kwargs},
                                             "vae": {...}, "vocoder": {...}, "projection": {...}},
                                  "models": [...], "ema_models": [],
                                  "extra": {"latent_scaling_factor", "sampling_rate",
                                            "num_language_of_audio_vectors", "noise_schedule": {...},
                                            "scheduler_config": {the folder's diffusers sampler}, "source"},
                                  "files": {name: {"bytes", "sha256"}}}
        complete

Each ``config`` section is the keyword arguments of its class, so ``load_converted_audioldm2`` rebuilds the
modules from the checkpoint alone. The frozen text side (CLAP, Flan-T5, GPT-2, their tokenizers and the CLAP
feature extractor) is transformers models that stay in the source folder; ``extra.source`` records where it was.
Fine-tuning (``models.tta.audioldm2.trainer``) starts from this checkpoint.
"""

import dataclasses
import json
from pathlib import Path
from typing import NamedTuple

from models.tta.audioldm.unet import AudioLDMUNet
from models.tta.audioldm.unet_key_map import load_diffusers_audioldm2_unet, unet_kwargs_from_diffusers_config
from models.tta.audioldm2.key_map import load_diffusers_projection, projection_kwargs_from_diffusers_config
from models.tta.audioldm2.pipeline import REQUIRED_COMPONENTS, noise_schedule_from_diffusers_config
from models.tta.audioldm2.projection import AudioLDM2Projection
from models.tta.autoencoderkl.key_map import autoencoder_kwargs_from_diffusers_config, load_diffusers_vae
from models.tta.autoencoderkl.model import AutoencoderKL
from models.tta.hifigan.key_map import generator_kwargs_from_speecht5_config, load_diffusers_vocoder
from models.tta.hifigan.model import HifiGanGenerator
from utils.checkpoint import CheckpointError, load_model_weights, read_checkpoint_meta, save_inference_checkpoint

MODEL_TYPE = "AudioLDM2"
_MODEL_CLASSES = {
    "unet": AudioLDMUNet,
    "vae": AutoencoderKL,
    "vocoder": HifiGanGenerator,
    "projection": AudioLDM2Projection,
}


class ConvertedAudioLDM2(NamedTuple):
    """The modules of a converted checkpoint (eval mode, float32) and the facts rebuilding generation needs."""

    unet: AudioLDMUNet
    vae: AutoencoderKL
    vocoder: HifiGanGenerator
    projection: AudioLDM2Projection
    latent_scaling_factor: float
    sampling_rate: int
    extra: dict


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"no {path}")
    return json.loads(path.read_text())


def convert_audioldm2_folder(folder: str | Path, output_dir: str | Path) -> Path:
    """Write the checkpoint described in the module docstring for the diffusers folder ``folder``.

    Raises FileNotFoundError for a missing folder or component, FileExistsError when ``output_dir`` exists
    (nothing is overwritten), and the key maps' errors when weights do not fit.
    """
    folder, output_dir = Path(folder), Path(output_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"AudioLDM 2 model folder {folder} does not exist")
    missing = [name for name in REQUIRED_COMPONENTS if not (folder / name).is_dir()]
    if missing:
        raise FileNotFoundError(f"AudioLDM 2 folder {folder} lacks {', '.join(missing)}")
    if output_dir.exists():
        raise FileExistsError(f"{output_dir} already exists; choose a new output folder")
    vae_config = _read_json(folder / "vae" / "config.json")
    vocoder_config = _read_json(folder / "vocoder" / "config.json")
    scheduler_config_path = folder / "scheduler" / "scheduler_config.json"
    language_model_config = _read_json(folder / "language_model" / "config.json")
    config = {
        "model_type": MODEL_TYPE,
        "unet": unet_kwargs_from_diffusers_config(_read_json(folder / "unet" / "config.json")),
        "vae": autoencoder_kwargs_from_diffusers_config(vae_config),
        "vocoder": generator_kwargs_from_speecht5_config(vocoder_config),
        "projection": projection_kwargs_from_diffusers_config(_read_json(folder / "projection_model" / "config.json")),
    }
    vae, latent_scaling_factor = load_diffusers_vae(folder / "vae")
    models = {
        "unet": load_diffusers_audioldm2_unet(folder),
        "vae": vae,
        "vocoder": load_diffusers_vocoder(folder / "vocoder"),
        "projection": load_diffusers_projection(folder / "projection_model"),
    }
    scheduler_config = _read_json(scheduler_config_path)
    schedule = noise_schedule_from_diffusers_config(scheduler_config, source=scheduler_config_path)
    extra = {
        "latent_scaling_factor": latent_scaling_factor,
        "sampling_rate": int(vocoder_config.get("sampling_rate", 16000)),
        "num_language_of_audio_vectors": int(language_model_config.get("max_new_tokens") or 8),
        "noise_schedule": dataclasses.asdict(schedule),
        "scheduler_config": scheduler_config,
        "source": str(folder.resolve()),
    }
    # JSON round trip: the config is stored as JSON, so tuples become lists here exactly as on reload.
    config = json.loads(json.dumps(config))
    return save_inference_checkpoint(output_dir, models=models, config=config, step=0, extra=extra)


def load_converted_audioldm2(checkpoint_dir: str | Path) -> ConvertedAudioLDM2:
    """Rebuild the modules of a checkpoint written by ``convert_audioldm2_folder`` (checksums verified)."""
    checkpoint_dir = Path(checkpoint_dir)
    meta = read_checkpoint_meta(checkpoint_dir)
    config = meta.get("config", {})
    if config.get("model_type") != MODEL_TYPE:
        raise CheckpointError(
            f"{checkpoint_dir} is not a converted AudioLDM 2 checkpoint (model_type {config.get('model_type')!r})"
        )
    modules = {}
    for name, model_class in _MODEL_CLASSES.items():
        module = model_class(**config[name])
        load_model_weights(checkpoint_dir, name, module)
        modules[name] = module.eval()
    extra = meta["extra"]
    return ConvertedAudioLDM2(
        **modules,
        latent_scaling_factor=float(extra["latent_scaling_factor"]),
        sampling_rate=int(extra["sampling_rate"]),
        extra=extra,
    )
