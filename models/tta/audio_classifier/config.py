"""Config schema of the evaluation classifier stage (`model_type: "AudioClassifier"`) and its model builder.

`AudioClassifierExperiment` is the schema `bins/tta/train_tta.py` validates the config against
(`AudioClassifierTrainer.config_schema`). The classifier's input width is the mel front end's `n_mels` and its
label sets are `models.tta.audio_classifier.labels`, so neither is repeated in the `model` section: a checkpoint's
resolved config alone rebuilds the model (`build_classifier`).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from models.base.trainer_config import TrainerConfig
from models.tta.audio_classifier.labels import ATTRIBUTE_HEADS, CATEGORY_LABELS, attribute_classes
from models.tta.audio_classifier.model import AudioClassifier
from preprocessors.config import PreprocessConfig
from utils.config import ConfigError, validate

LOSS_NAMES = ("category", *(head.name for head in ATTRIBUTE_HEADS))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class ClassifierModelConfig:
    """`AudioEncoder` sizes (`AudioClassifier` / `TextAudioModel` share them): one conv block per `channels`
    entry (each halves time and frequency), `embedding_dim`-d frame and clip embeddings."""

    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    embedding_dim: int = 128
    dropout: float = 0.1

    def __post_init__(self) -> None:
        _require(bool(self.channels) and min(self.channels) > 0, f"channels must be positive, got {self.channels}")
        _require(self.embedding_dim > 0, f"embedding_dim must be > 0, got {self.embedding_dim}")
        _require(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class ClassifierDataConfig:
    """Whole clips, not crops (a crop would change how many beeps a clip has): each clip of `datasets` (empty:
    `preprocess.dataset`) is cut or padded (with silence) to `segment_frames` frames from its start. Training reads
    every split of `train_splits` and validates on `valid_split` (empty: no validation). Training shifts every
    clip's level by a random gain of up to +-`gain_jitter_db` dB (well inside the 15 dB between the built-in
    "quiet" and "loud"), so the loudness heads learn a level, not one exact value."""

    datasets: list[str] = field(default_factory=list)
    train_splits: list[str] = field(default_factory=lambda: ["train"])
    valid_split: str = "valid"
    segment_frames: int = 1024
    gain_jitter_db: float = 3.0

    def __post_init__(self) -> None:
        _require(bool(self.train_splits), "train_splits must name at least one split")
        _require(self.segment_frames > 0, f"segment_frames must be > 0, got {self.segment_frames}")
        _require(self.gain_jitter_db >= 0, f"gain_jitter_db must be >= 0, got {self.gain_jitter_db}")


@dataclass
class ClassifierLossConfig:
    """`weights` maps loss names ("category" and every head: sound, pitch, count, ...) to weights; the names are
    also the logged metric names, and a name left out weighs 1."""

    weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(LOSS_NAMES))
        _require(not unknown, f"weights names unknown losses {unknown}; the losses are {list(LOSS_NAMES)}")
        negative = sorted(name for name, weight in self.weights.items() if weight < 0)
        _require(not negative, f"weights must be >= 0, got negative ones for {negative}")

    def weight(self, name: str) -> float:
        return self.weights.get(name, 1.0)


@dataclass
class AudioClassifierExperiment:
    """An evaluation-classifier experiment; its folder is `<log_dir>/<exp_name>`."""

    model_type: Literal["AudioClassifier"]
    exp_name: str
    preprocess: PreprocessConfig
    log_dir: str = "exp"
    data: ClassifierDataConfig = field(default_factory=ClassifierDataConfig)
    model: ClassifierModelConfig = field(default_factory=ClassifierModelConfig)
    loss: ClassifierLossConfig = field(default_factory=ClassifierLossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        if not self.exp_name:
            raise ConfigError("exp_name: must not be empty")
        check_encoder_fits(self.model.channels, n_mels=self.preprocess.mel.n_mels, frames=self.data.segment_frames)


def check_encoder_fits(channels: Sequence[int], *, n_mels: int, frames: int) -> None:
    """Each conv block of `AudioEncoder` halves time and frequency: the input must survive all of them."""
    minimum = 2 ** len(channels)
    if n_mels < minimum or frames < minimum:
        raise ConfigError(
            f"model.channels: {len(channels)} conv blocks need at least {minimum} mel bins and frames; the "
            f"front end has {n_mels} bins (preprocess.mel.n_mels) and clips {frames} frames (data.segment_frames)"
        )


def build_classifier(config: ClassifierModelConfig, *, n_mels: int) -> AudioClassifier:
    """The classifier for a `model` section, with the built-in label sets' category and attribute heads."""
    return AudioClassifier(
        n_mels=n_mels,
        num_categories=len(CATEGORY_LABELS),
        attribute_classes=attribute_classes(),
        channels=tuple(config.channels),
        embedding_dim=config.embedding_dim,
        dropout=config.dropout,
    )


def classifier_from_resolved_config(config: Mapping[str, Any], *, source: str) -> AudioClassifier:
    """Rebuild the classifier from a checkpoint's resolved config (meta.json "config"); `source` names it in
    errors."""
    if config.get("model_type") != "AudioClassifier":
        raise ConfigError(f"{source}: a {config.get('model_type')!r} checkpoint, not an AudioClassifier")
    model_config = validate(ClassifierModelConfig, config["model"], root_source=f"{source} (model)")
    return build_classifier(model_config, n_mels=config["preprocess"]["mel"]["n_mels"])
