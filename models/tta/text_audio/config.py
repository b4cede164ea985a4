"""Config schema of the contrastive text–audio stage (`model_type: "TextAudio"`) and its model builder.

`TextAudioExperiment` is the schema `bins/tta/train_tta.py` validates the config against
(`TextAudioTrainer.config_schema`). The audio tower's input width is the mel front end's `n_mels` and the text
tower's input width is the frozen sentence encoder's hidden size, so neither is repeated in the `model` section.
"""

from dataclasses import dataclass, field
from typing import Literal

from models.base.trainer_config import TrainerConfig
from models.tta.audio_classifier.config import check_encoder_fits
from models.tta.text_audio.model import TextAudioModel
from models.text_encoder import BUILTIN_MINILM
from preprocessors.config import PreprocessConfig
from utils.config import ConfigError


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class SentenceEncoderConfig:
    """The frozen sentence encoder of the text tower (`models.text_encoder`; the offline MiniLM by default),
    mean-pooled over its tokens as sentence-transformers pools it."""

    name: str = BUILTIN_MINILM
    max_length: int = 64

    def __post_init__(self) -> None:
        _require(self.max_length > 0, f"max_length must be > 0, got {self.max_length}")


@dataclass
class TextAudioModelConfig:
    """`TextAudioModel` sizes. `audio_encoder_init` (training only; empty: random init) names an AudioClassifier
    checkpoint or experiment folder whose trained `AudioEncoder` starts the audio tower, as LAION-CLAP starts
    from a pretrained audio tagger; its `channels` and `embedding_dim` must equal `channels` and
    `audio_embedding_dim` here. With `freeze_audio_encoder` that encoder stays fixed (eval mode, no gradient) and
    only the projections and temperature train, as LiT locks its pretrained image tower (Zhai et al. 2022): a
    step then costs one forward pass of the encoder."""

    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    audio_embedding_dim: int = 128
    projection_dim: int = 128
    dropout: float = 0.1
    initial_temperature: float = 0.07
    audio_encoder_init: str = ""
    freeze_audio_encoder: bool = False

    def __post_init__(self) -> None:
        _require(not self.freeze_audio_encoder or bool(self.audio_encoder_init),
                 "freeze_audio_encoder needs audio_encoder_init (a random encoder would stay random)")
        _require(bool(self.channels) and min(self.channels) > 0, f"channels must be positive, got {self.channels}")
        _require(self.audio_embedding_dim > 0, f"audio_embedding_dim must be > 0, got {self.audio_embedding_dim}")
        _require(self.projection_dim > 0, f"projection_dim must be > 0, got {self.projection_dim}")
        _require(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        _require(0.0 < self.initial_temperature <= 1.0, f"initial_temperature must be in (0, 1], got "
                 f"{self.initial_temperature}")


@dataclass
class TextAudioDataConfig:
    """Whole clips of `datasets` (empty: `preprocess.dataset`), cut or padded from their start to
    `segment_frames` frames: the splits of `train_splits` for training, `valid_split` (empty: none) for
    validation. A training step pairs each clip with one of its captions drawn at random (the first caption in
    validation)."""

    datasets: list[str] = field(default_factory=list)
    train_splits: list[str] = field(default_factory=lambda: ["train"])
    valid_split: str = "valid"
    segment_frames: int = 1024

    def __post_init__(self) -> None:
        _require(bool(self.train_splits), "train_splits must name at least one split")
        _require(self.segment_frames > 0, f"segment_frames must be > 0, got {self.segment_frames}")


@dataclass
class TextAudioExperiment:
    """A contrastive text–audio experiment; its folder is `<log_dir>/<exp_name>`."""

    model_type: Literal["TextAudio"]
    exp_name: str
    preprocess: PreprocessConfig
    log_dir: str = "exp"
    data: TextAudioDataConfig = field(default_factory=TextAudioDataConfig)
    text_encoder: SentenceEncoderConfig = field(default_factory=SentenceEncoderConfig)
    model: TextAudioModelConfig = field(default_factory=TextAudioModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        if not self.exp_name:
            raise ConfigError("exp_name: must not be empty")
        if self.trainer.batch_size < 2:
            raise ConfigError("trainer.batch_size: the contrastive loss needs at least 2 clips per batch")
        check_encoder_fits(self.model.channels, n_mels=self.preprocess.mel.n_mels, frames=self.data.segment_frames)


def build_text_audio_model(config: TextAudioModelConfig, *, n_mels: int, text_embedding_dim: int) -> TextAudioModel:
    """The model for a `model` section; `text_embedding_dim` is the sentence encoder's hidden size."""
    return TextAudioModel(
        n_mels=n_mels,
        text_embedding_dim=text_embedding_dim,
        projection_dim=config.projection_dim,
        channels=tuple(config.channels),
        audio_embedding_dim=config.audio_embedding_dim,
        dropout=config.dropout,
        initial_temperature=config.initial_temperature,
    )
