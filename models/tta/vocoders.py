"""One entry point for every vocoder a stage, inference or evaluation may be configured with.

`load_vocoder(spec, mel=...)` understands:

- `"griffin_lim"`: the weightless fallback (`models.tta.griffin_lim`), so every stage has audio before a
  HiFi-GAN is trained;
- a HiFi-GAN stage experiment folder of this repo (`<log_dir>/<exp_name>`, holding `checkpoints/`): its newest
  valid checkpoint;
- a checkpoint folder of this repo (`meta.json`; training or inference checkpoint): the generator (HiFi-GAN or
  Vocos, per the stored `model.generator`) is rebuilt from the resolved config stored in the checkpoint, loaded
  with its EMA weights when it has them, and HiFi-GAN's weight norm folded away;
- a diffusers / transformers `vocoder/` folder (`config.json` + weights, e.g. AudioLDM 2's `SpeechT5HifiGan`),
  or the pipeline folder that contains it, loaded through the explicit key map.

Every returned module is in eval mode on the CPU without gradients, has `sample_rate` and `hop_length`
attributes, and maps a log-mel (B, frames, n_mels) to a waveform (B, frames × hop_length).
"""

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from models.tta.griffin_lim import GriffinLimVocoder
from models.tta.hifigan.config import GeneratorConfig, build_generator
from models.tta.hifigan.key_map import load_diffusers_vocoder
from models.tta.hifigan.model import HifiGanGenerator
from models.tta.hifigan.vocos import VocosGenerator
from utils.audio import MelConfig
from utils.checkpoint import META_FILE, latest_valid_checkpoint, load_model_weights, read_checkpoint_meta
from utils.config import validate

GRIFFIN_LIM = "griffin_lim"
# Name of the generator in the HiFi-GAN stage's checkpoints (`HifiGanTrainer.build_models`).
GENERATOR_NAME = "generator"
_MODEL_TYPE = "HiFiGAN"
_SPEC_KINDS = (
    f"{GRIFFIN_LIM!r}, a HiFi-GAN experiment folder (with checkpoints/), a checkpoint folder (with {META_FILE}), "
    "or a diffusers vocoder folder (with config.json)"
)


class VocoderSpecError(ValueError):
    """A vocoder spec that names nothing loadable, or a vocoder that does not fit the mel front end."""


class TrimmedVocoder(nn.Module):
    """A generator whose waveform is cut to exactly frames × hop_length samples (the AudioLDM 2 HiFi-GAN kernels
    produce a few more, see `HifiGanGenerator.num_samples`; Vocos already gives exactly that many), so it lines up
    with the audio the mels came from.

    Shapes: log-mel (B, frames, n_mels) → waveform (B, frames × hop_length).
    """

    def __init__(self, generator: HifiGanGenerator | VocosGenerator, *, sample_rate: int):
        super().__init__()
        self.generator = generator
        self.sample_rate = sample_rate
        self.hop_length = generator.hop_length

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.generator(mel)[:, : mel.shape[1] * self.hop_length]


def load_vocoder(spec: str, *, mel: MelConfig) -> nn.Module:
    """The vocoder named by `spec` (see the module docstring) for mels made with the front end `mel`.

    Raises VocoderSpecError when `spec` names nothing loadable or the vocoder was made for other mels (bins, hop,
    sample rate, or, for our checkpoints, any front-end setting), and CheckpointError for a damaged checkpoint.
    """
    if spec == GRIFFIN_LIM:
        return GriffinLimVocoder(
            sample_rate=mel.sample_rate,
            n_fft=mel.n_fft,
            win_length=mel.win_length,
            hop_length=mel.hop_length,
            fmin=mel.fmin,
            fmax=mel.fmax,
            n_mels=mel.n_mels,
        ).eval()
    path = Path(spec)
    if not path.is_dir():
        raise VocoderSpecError(f"vocoder {spec!r}: not {GRIFFIN_LIM!r} and no such folder; expected {_SPEC_KINDS}")
    if (path / META_FILE).is_file():
        vocoder = _load_checkpoint(path, mel)
    elif (path / "checkpoints").is_dir():
        checkpoint = latest_valid_checkpoint(path / "checkpoints")
        if checkpoint is None:
            raise VocoderSpecError(f"vocoder {spec!r}: no valid checkpoint in {path / 'checkpoints'}")
        vocoder = _load_checkpoint(checkpoint, mel)
    elif (path / "config.json").is_file():
        vocoder = _load_diffusers(path, mel)
    elif (path / "vocoder" / "config.json").is_file():
        vocoder = _load_diffusers(path / "vocoder", mel)
    else:
        raise VocoderSpecError(f"vocoder {spec!r}: the folder holds no vocoder; expected {_SPEC_KINDS}")
    return vocoder.eval().requires_grad_(False)


def _load_checkpoint(checkpoint: Path, mel: MelConfig) -> TrimmedVocoder:
    """A generator from one of our checkpoints: rebuilt from its config, EMA weights if any, weight norm folded."""
    config = read_checkpoint_meta(checkpoint)["config"]
    model_type = config.get("model_type")
    if model_type != _MODEL_TYPE:
        raise VocoderSpecError(f"{checkpoint} is a {model_type!r} checkpoint, not a {_MODEL_TYPE} vocoder")
    saved_mel = config["preprocess"]["mel"]
    differences = [
        f"{key} {saved_mel.get(key)!r} vs {value!r}"
        for key, value in dataclasses.asdict(mel).items()
        if saved_mel.get(key) != value
    ]
    if differences:
        raise VocoderSpecError(
            f"{checkpoint}: the vocoder was trained on other mels (checkpoint vs requested: {', '.join(differences)})"
        )
    model_config = validate(GeneratorConfig, config["model"], root_source=f"{checkpoint / META_FILE} (model)")
    generator = build_generator(
        model_config, mel=mel, use_weight_norm=model_config.uses_weight_norm
    )
    load_model_weights(checkpoint, GENERATOR_NAME, generator)
    if model_config.uses_weight_norm:
        generator.remove_weight_norm()
    return TrimmedVocoder(generator, sample_rate=mel.sample_rate)


def _load_diffusers(folder: Path, mel: MelConfig) -> TrimmedVocoder:
    """A `SpeechT5HifiGan` folder, checked against the front end (bins, hop, sample rate)."""
    generator = load_diffusers_vocoder(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    n_mels = generator.mean.shape[0]
    sample_rate = config.get("sampling_rate", mel.sample_rate)
    if (n_mels, generator.hop_length, sample_rate) != (mel.n_mels, mel.hop_length, mel.sample_rate):
        raise VocoderSpecError(
            f"{folder}: the vocoder takes {n_mels} mel bins at hop {generator.hop_length} and {sample_rate} Hz; "
            f"the front end makes {mel.n_mels} bins at hop {mel.hop_length} and {mel.sample_rate} Hz"
        )
    return TrimmedVocoder(generator, sample_rate=mel.sample_rate)
