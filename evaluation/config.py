"""Config schema of the evaluation commands: the `evaluation` section (with the shared `preprocess` section).

Any recipe config may carry an `evaluation` section; the evaluation CLI reads only `preprocess` and
`evaluation` from it (other sections belong to other stages), so `--set` overrides must address those two.
Relative paths are relative to the working directory (the repository root when the egs scripts run).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from evaluation.backbones import BACKBONE_NAMES
from preprocessors.config import PreprocessConfig
from utils.config import ConfigError, apply_overrides, load_tree, validate

# The committed evaluation models (exported from the experiments egs/tta/evaluation/run_train.sh trains,
# exp/audio_classifier_builtin and exp/text_audio_builtin; see pretrained/evaluation/README.md). A fixed
# evaluator keeps the numbers of different runs and machines comparable.
DEFAULT_CLASSIFIER = "pretrained/evaluation/audio_classifier_builtin"
DEFAULT_TEXT_AUDIO = "pretrained/evaluation/text_audio_builtin"


@dataclass
class BackboneConfig:
    """One embedding backbone (`evaluation.backbones`): "ours" takes an AudioClassifier checkpoint or experiment
    folder, "panns_cnn14" a Cnn14_16k .pth file, "transformers_clap" a local CLAP folder."""

    name: str = "ours"
    path: str = DEFAULT_CLASSIFIER

    def __post_init__(self) -> None:
        if self.name not in BACKBONE_NAMES:
            raise ValueError(f"backbone name {self.name!r} is not one of {', '.join(BACKBONE_NAMES)}")


@dataclass
class TextAudioScoreConfig:
    """The joint space of the text–audio score: "ours" (a TextAudio checkpoint or experiment folder),
    "transformers_clap" (a local CLAP folder), or "none"."""

    kind: Literal["ours", "transformers_clap", "none"] = "ours"
    path: str = DEFAULT_TEXT_AUDIO


@dataclass
class EvaluationConfig:
    """`backbones` compute FD, FAD, KL and IS (the first with attribute heads also scores adherence);
    `text_audio` the text–audio score. The reference set of FD / FAD is `reference_split` of `datasets` (empty:
    `preprocess.dataset`); clips are paired with records of `prompt_splits`. `batch_size` clips are read and
    embedded at a time."""

    backbones: list[BackboneConfig] = field(default_factory=lambda: [BackboneConfig()])
    text_audio: TextAudioScoreConfig = field(default_factory=TextAudioScoreConfig)
    datasets: list[str] = field(default_factory=list)
    reference_split: str = "train"
    prompt_splits: list[str] = field(default_factory=lambda: ["train", "valid", "test"])
    batch_size: int = 16

    def __post_init__(self) -> None:
        if not self.backbones:
            raise ValueError("backbones must name at least one backbone")
        names = [backbone.name for backbone in self.backbones]
        if len(set(names)) != len(names):
            raise ValueError(f"backbones names a backbone twice: {names}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass
class EvaluationSections:
    """A config file as the evaluation CLI sees it: its `preprocess` and (optional) `evaluation` sections."""

    preprocess: PreprocessConfig
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)


def load_evaluation_config(path: Path | str, overrides: Iterable[str] = ()) -> EvaluationSections:
    """Read the `preprocess` and `evaluation` sections of a config file (with its `base_config` chain) and
    `--set` overrides of them; raises ConfigError."""
    tree, sources = load_tree(path)
    for override in overrides:
        if not override.startswith(("preprocess.", "evaluation.")):
            raise ConfigError(f"--set {override}: the evaluation CLI only takes preprocess.* and evaluation.* keys")
    tree = apply_overrides(tree, sources, overrides)
    sections = {key: tree[key] for key in ("preprocess", "evaluation") if key in tree}
    return validate(EvaluationSections, sections, sources, str(path))
