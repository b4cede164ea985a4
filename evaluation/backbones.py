"""Embedding backbones for the distribution metrics, chosen by name in config.

| name                | clip embeddings  | frame embeddings | class logits | text embeddings  | weights        |
|---------------------|------------------|------------------|--------------|------------------|----------------|
| "ours" (default)    | yes (FD)         | yes (FAD)        | yes (KL, IS) | no               | our checkpoint |
| "panns_cnn14"       | yes (FD, 2048-d) | no               | yes (527)    | no               | Cnn14_16k .pth |
| "transformers_clap" | yes (FD)         | no               | no           | yes (CLAP score) | a CLAP folder  |
| "vggish"            | not available in this project (see `UNAVAILABLE_BACKBONES`)                         |

"ours" is the AudioClassifier trained by `egs/tta/evaluation` (the committed one in pretrained/evaluation/, or
any checkpoint or experiment folder; the resolved config in its meta.json rebuilds the model and its mel front
end); it also gives attribute-head logits for attribute adherence. "panns_cnn14" reproduces AudioLDM's protocol (FD on the 2048-d embedding, KL and IS on the AudioSet logits).
Numbers from different backbones are not comparable with each other, nor with papers that used another one.
Everything is local: nothing is downloaded.
"""

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

from evaluation.panns import PannsCnn14, load_panns_cnn14
from models.tta.audio_classifier.inference import load_classifier
from models.tta.audio_classifier.model import AudioClassifier
from utils.audio import LogMelSpectrogram, MelConfig, build_log_mel
from utils.config import validate

# Backbones the literature uses that this project does not ship, with where to compute them instead.
UNAVAILABLE_BACKBONES = {
    "vggish": (
        "VGGish is not available in this project: compute VGGish FAD with fadtk or frechet-audio-distance on the "
        "generated wav folder, or use the 'ours' backbone's frame embeddings"
    ),
}


class BackboneUnavailableError(ValueError):
    """A backbone the user named cannot be built here; the message says what to use instead."""


@dataclass
class AudioFeatures:
    """What a backbone computes for a batch of B clips; None where the backbone does not provide it."""

    clip_embeddings: torch.Tensor  # (B, D)
    frame_embeddings: torch.Tensor | None  # (B, T', D)
    class_logits: torch.Tensor | None  # (B, K)
    attribute_logits: dict[str, torch.Tensor] | None = None  # head name -> (B, classes of that head)


class AudioBackbone(ABC):
    """Maps waveforms to `AudioFeatures`; `provides` lists which of "clip", "frames", "logits", "attributes",
    "text" it has."""

    provides: frozenset[str]

    @abstractmethod
    def audio_features(self, waveforms: torch.Tensor, sample_rate: int) -> AudioFeatures:
        """waveforms (B, S) float in [-1, 1] at `sample_rate` -> features (resampled internally as needed)."""


def resample_waveforms(waveforms: torch.Tensor, source_rate: int, target_rate: int) -> np.ndarray:
    """Clips (B, S) at `source_rate` -> float32 numpy (B, S') at `target_rate` (soxr; unchanged if equal)."""
    samples = waveforms.detach().cpu().float().numpy()
    if source_rate == target_rate:
        return samples
    return librosa.resample(samples, orig_sr=source_rate, target_sr=target_rate, res_type="soxr_hq", axis=-1)


class ClassifierBackbone(AudioBackbone):
    """"ours": the project's `AudioClassifier` on the project's log-mel front end (all but text).

    Each clip's log-mel is cut or padded (with silence) to `segment_frames` from its start, as in training."""

    provides = frozenset({"clip", "frames", "logits", "attributes"})

    def __init__(
        self, *, model: AudioClassifier, log_mel: LogMelSpectrogram, sample_rate: int, segment_frames: int
    ) -> None:
        self.model = model.eval()
        self.log_mel = log_mel
        self.sample_rate = sample_rate
        self.segment_frames = segment_frames

    @torch.no_grad()
    def audio_features(self, waveforms: torch.Tensor, sample_rate: int) -> AudioFeatures:
        samples = torch.from_numpy(resample_waveforms(waveforms, sample_rate, self.sample_rate))
        mel = self.log_mel(samples)[..., : self.segment_frames]
        missing = self.segment_frames - mel.shape[-1]
        if missing > 0:
            mel = F.pad(mel, (0, missing), value=math.log(self.log_mel.log_clamp_min))
        output = self.model(mel.transpose(1, 2).unsqueeze(1))
        return AudioFeatures(
            clip_embeddings=output.clip_embedding,
            frame_embeddings=output.frame_embeddings,
            class_logits=output.category_logits,
            attribute_logits=output.attribute_logits,
        )


class PannsBackbone(AudioBackbone):
    """"panns_cnn14": PANNs CNN14 at 16 kHz (2048-d clip embeddings and 527 AudioSet logits)."""

    provides = frozenset({"clip", "logits"})

    def __init__(self, *, model: PannsCnn14) -> None:
        self.model = model.eval()

    @torch.no_grad()
    def audio_features(self, waveforms: torch.Tensor, sample_rate: int) -> AudioFeatures:
        samples = torch.from_numpy(resample_waveforms(waveforms, sample_rate, self.model.sample_rate))
        embedding, logits = self.model(samples)
        return AudioFeatures(clip_embeddings=embedding, frame_embeddings=None, class_logits=logits)


class TransformersClapBackbone(AudioBackbone):
    """"transformers_clap": a transformers `ClapModel` (clip and text embeddings, unit norm, no frames/logits)."""

    provides = frozenset({"clip", "text"})

    def __init__(self, *, model: ClapModel, feature_extractor: ClapFeatureExtractor, tokenizer: Any) -> None:
        self.model = model.eval()
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer

    @torch.no_grad()
    def audio_features(self, waveforms: torch.Tensor, sample_rate: int) -> AudioFeatures:
        # Keep the first max_length_s seconds ourselves: the feature extractor would crop longer clips at random.
        samples = resample_waveforms(waveforms, sample_rate, self.feature_extractor.sampling_rate)
        samples = samples[:, : self.feature_extractor.nb_max_samples]
        inputs = self.feature_extractor(
            list(samples), sampling_rate=self.feature_extractor.sampling_rate, return_tensors="pt"
        )
        output = self.model.get_audio_features(input_features=inputs["input_features"],
                                               is_longer=inputs.get("is_longer"))
        return AudioFeatures(clip_embeddings=_pooled(output), frame_embeddings=None, class_logits=None)

    @torch.no_grad()
    def text_embeddings(self, texts: list[str]) -> torch.Tensor:
        """Prompts -> unit-norm CLAP text embeddings (B, D), comparable with `audio_features().clip_embeddings`."""
        inputs = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        output = self.model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        return _pooled(output)


def _pooled(output: Any) -> torch.Tensor:
    """transformers >= 5 returns a model output whose pooler_output holds the projected features; 4.x a tensor."""
    return output.pooler_output if hasattr(output, "pooler_output") else output


def load_classifier_backbone(path: str | Path) -> ClassifierBackbone:
    """"ours" from an AudioClassifier checkpoint or experiment folder (its newest valid checkpoint): the model,
    mel front end and clip length come from the checkpoint's resolved config."""
    model, config = load_classifier(path)
    mel_config = validate(MelConfig, config["preprocess"]["mel"], root_source=f"{path} (preprocess.mel)")
    return ClassifierBackbone(
        model=model,
        log_mel=build_log_mel(mel_config),
        sample_rate=mel_config.sample_rate,
        segment_frames=config["data"]["segment_frames"],
    )


def load_transformers_clap_backbone(path: str | Path) -> TransformersClapBackbone:
    """Load a local CLAP: a folder with the model, tokenizer and feature extractor together (as
    laion/clap-htsat-unfused is laid out), or an AudioLDM 2 pipeline folder (text_encoder/, tokenizer/,
    feature_extractor/). Never downloads."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"CLAP folder not found: {path}; download a CLAP checkpoint (e.g. laion/clap-htsat-unfused, or an "
            "AudioLDM 2 folder) yourself and point the config at it"
        )
    pipeline_layout = (path / "text_encoder").is_dir()
    model_dir, tokenizer_dir, extractor_dir = (
        (path / "text_encoder", path / "tokenizer", path / "feature_extractor") if pipeline_layout else (path,) * 3
    )
    return TransformersClapBackbone(
        model=ClapModel.from_pretrained(str(model_dir), local_files_only=True),
        feature_extractor=ClapFeatureExtractor.from_pretrained(str(extractor_dir), local_files_only=True),
        tokenizer=AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True),
    )


BACKBONE_NAMES = ("ours", "panns_cnn14", "transformers_clap", *UNAVAILABLE_BACKBONES)


def build_backbone(name: str, *, path: str | Path) -> AudioBackbone:
    """The backbone called `name` (see the module table).

    "ours": `path` is an AudioClassifier checkpoint or experiment folder; "panns_cnn14": the PANNs checkpoint
    (.pth); "transformers_clap": the local CLAP folder.
    """
    if name in UNAVAILABLE_BACKBONES:
        raise BackboneUnavailableError(UNAVAILABLE_BACKBONES[name])
    if name == "ours":
        return load_classifier_backbone(path)
    if name == "panns_cnn14":
        return PannsBackbone(model=load_panns_cnn14(path))
    if name == "transformers_clap":
        return load_transformers_clap_backbone(path)
    raise ValueError(f"unknown evaluation backbone {name!r}; choose one of {', '.join(BACKBONE_NAMES)}")
