"""Open any AudioLDM 2 model this repository knows as an `AudioLDM2Pipeline`.

A model is named by a path, which may be:
- a diffusers-layout folder (holding `model_index.json`, e.g. a downloaded cvssp/audioldm2), read through the key
  maps;
- a converted checkpoint (`bins/tta/convert_audioldm2.py`): UNet, VAE, vocoder and projection in our format, the
  frozen text side read from the folder it was converted from (or `text_model_dir`);
- a fine-tuning experiment folder (its newest valid checkpoint) or checkpoint folder (`model_type "AudioLDM2"`
  with a `pretrained` section): the fine-tuned UNet (EMA weights when saved) on the converted checkpoint it
  started from, with the noise schedule it was trained with.
"""

import dataclasses
from pathlib import Path

import torch
from transformers import ClapFeatureExtractor

from models.tta.audioldm.diffusion import NoiseScheduleConfig
from models.tta.audioldm.pipeline import UNET_NAME
from models.tta.audioldm2.config import AudioLDM2Experiment
from models.tta.audioldm2.convert import MODEL_TYPE, ConvertedAudioLDM2, load_converted_audioldm2
from models.tta.audioldm2.pipeline import AudioLDM2Pipeline
from models.tta.audioldm2.text_conditioning import AudioLDM2TextConditioner, load_audioldm2_conditioner
from utils.checkpoint import META_FILE, CheckpointError, load_model_weights, read_checkpoint_meta, resolve_checkpoint
from utils.config import ConfigError, validate


def open_converted_checkpoint(checkpoint: str | Path) -> ConvertedAudioLDM2:
    """`load_converted_audioldm2` with a message saying how to make the checkpoint when it is missing."""
    if not Path(checkpoint).exists():
        raise CheckpointError(
            f"converted AudioLDM 2 checkpoint {checkpoint} does not exist: convert a downloaded model first, "
            f"python bins/tta/convert_audioldm2.py --model_dir <diffusers folder> --output_dir {checkpoint}"
        )
    return load_converted_audioldm2(checkpoint)


def resolve_text_model_dir(configured: str, converted: ConvertedAudioLDM2) -> Path:
    """The folder with the frozen text side: `configured`, else the folder the checkpoint was converted from."""
    folder = Path(configured or converted.extra["source"])
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(
            f"AudioLDM 2 text side folder {folder} is not a diffusers folder (no model_index.json); point "
            f"pretrained.text_model_dir (training) or --text_model_dir (inference) at a local copy of the model the "
            f"checkpoint was converted from"
        )
    return folder.resolve()


def build_pipeline(
    converted: ConvertedAudioLDM2,
    *,
    conditioner: AudioLDM2TextConditioner,
    text_folder: Path,
    schedule: NoiseScheduleConfig,
    unet: torch.nn.Module | None = None,
) -> AudioLDM2Pipeline:
    """A pipeline on a converted checkpoint's VAE and vocoder, with `unet` (default: the checkpoint's) sampled on
    `schedule`; the checkpoint's own sampler config is kept, with the prediction type of `schedule`."""
    scheduler_config = {**converted.extra["scheduler_config"], "prediction_type": schedule.prediction_type}
    return AudioLDM2Pipeline(
        conditioner=conditioner,
        unet=converted.unet if unet is None else unet,
        vae=converted.vae,
        latent_scaling_factor=converted.latent_scaling_factor,
        vocoder=converted.vocoder,
        sampling_rate=converted.sampling_rate,
        clap_feature_extractor=ClapFeatureExtractor.from_pretrained(
            text_folder / "feature_extractor", local_files_only=True
        ),
        schedule=schedule,
        scheduler_config=scheduler_config,
    )


def load_audioldm2_pipeline(
    path: str | Path, *, text_model_dir: str | Path = "", dtype: torch.dtype = torch.float32
) -> AudioLDM2Pipeline:
    """The pipeline for any model path of the module docstring, in eval mode, in `dtype`. For our checkpoints,
    `text_model_dir` (when given) replaces the recorded folder of the frozen text side, e.g. after it moved.

    Raises FileNotFoundError or CheckpointError naming what is missing or of the wrong kind."""
    path = Path(path)
    if (path / "model_index.json").is_file():
        return AudioLDM2Pipeline.from_pretrained_folder(path, dtype=dtype)
    checkpoint = resolve_checkpoint(path)
    config = read_checkpoint_meta(checkpoint)["config"]
    if config.get("model_type") != MODEL_TYPE:
        raise CheckpointError(f"{checkpoint} is a {config.get('model_type')!r} checkpoint, not an AudioLDM 2 one")
    if "pretrained" not in config:
        converted = load_converted_audioldm2(checkpoint)
        schedule = NoiseScheduleConfig(**converted.extra["noise_schedule"])
        configured_text_dir = ""
    else:
        try:
            experiment = validate(AudioLDM2Experiment, config, root_source=str(checkpoint / META_FILE))
        except ConfigError as error:
            raise CheckpointError(f"{checkpoint}: its config no longer validates: {error}") from error
        converted = open_converted_checkpoint(experiment.pretrained.checkpoint)
        load_model_weights(checkpoint, UNET_NAME, converted.unet)
        schedule = experiment.diffusion.schedule
        configured_text_dir = experiment.pretrained.text_model_dir
    text_folder = resolve_text_model_dir(str(text_model_dir) or configured_text_dir, converted)
    conditioner = load_audioldm2_conditioner(text_folder, projection=converted.projection)
    pipeline = build_pipeline(converted, conditioner=conditioner, text_folder=text_folder, schedule=schedule)
    return pipeline.to(dtype).eval()


def schedule_differences(schedule: NoiseScheduleConfig, converted: ConvertedAudioLDM2) -> list[str]:
    """Fields other than the prediction type where `schedule` differs from the checkpoint's training schedule."""
    saved = converted.extra["noise_schedule"]
    return [
        f"{key}: config {value!r}, checkpoint {saved[key]!r}"
        for key, value in dataclasses.asdict(schedule).items()
        if key != "prediction_type" and saved[key] != value
    ]
