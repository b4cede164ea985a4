"""Config schema of the preprocessing stage: the `preprocess` section every recipe config shares.

Relative paths are resolved against the current working directory, which is the repository root when the egs
scripts run (`sh egs/tta/...` is always started from the root), so `"data/processed"` means
`<repo>/data/processed`. Values are checked on construction, so an instance is always usable; every message
names the dotted config key.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from utils.audio import MelConfig
from utils.config import ConfigError, apply_overrides, load_tree, validate

SourceKind = Literal["audiocaps", "amphion", "folder", "builtin"]


@dataclass
class SourceConfig:
    """Where the raw audio and captions come from; which paths are needed depends on `kind`.

    - "audiocaps": the official AudioCaps CSVs (`train_csv`, `valid_csv`, `test_csv`, any subset, at least one)
      and `audio_dir`, the folder (searched recursively) of downloaded clips.
    - "amphion": the seed recipe's layout, `dataset_dir` holding `wav/` and train.json / valid.json / test.json
      (lists of {Dataset, Uid, Caption}); `audio_dir` may point elsewhere, default `<dataset_dir>/wav`.
    - "folder": any `audio_dir` (searched recursively) with `captions_file`, a CSV (`file,caption[,split]`) or a
      JSON list of {Uid or File, Caption or Captions, Split?, ...extra fields kept}.
    - "builtin": the generated dataset described by `preprocess.builtin`; no paths needed.
    """

    kind: SourceKind = "builtin"
    audio_dir: str = ""
    dataset_dir: str = ""
    train_csv: str = ""
    valid_csv: str = ""
    test_csv: str = ""
    captions_file: str = ""


@dataclass
class BuiltinConfig:
    """The built-in dataset's generator settings (see `preprocessors.builtin`).

    `raw_dir` receives the generated raw wavs and captions.json; empty means `<processed_dir>/<dataset>_raw`.
    An empty `families` list means every sound family the generator knows.
    """

    raw_dir: str = ""
    num_clips: int = 3000
    clip_seconds: float = 5.0
    seed: int = 0
    families: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.num_clips < 1:
            raise ConfigError(f"preprocess.builtin.num_clips: must be at least 1, got {self.num_clips}")
        if self.clip_seconds <= 0:
            raise ConfigError(f"preprocess.builtin.clip_seconds: must be positive, got {self.clip_seconds}")


@dataclass
class PreprocessConfig:
    """Turns one dataset's raw audio + captions into `<processed_dir>/<dataset>/{wav,mel}/<Uid>.*` + split JSONs.

    The output sample rate is `mel.sample_rate` (one number for the whole recipe). Clips whose peak is below
    `silence_peak_threshold` or that are shorter than `min_seconds` are skipped and reported; clips longer than
    `max_seconds` (null: no limit) are cropped to their first `max_seconds`. `peak_normalize` (null: off) scales
    every clip to that peak, as AudioLDM does with 0.5; it is off by default because it erases loudness
    differences the captions may describe (the built-in data's "loud"/"quiet" attribute). `valid_fraction` and
    `test_fraction` split sources that name no split (a stable hash of the Uid decides) and the built-in set.
    `overwrite` redoes every clip instead of resuming.
    """

    processed_dir: str
    dataset: str
    source: SourceConfig = field(default_factory=SourceConfig)
    mel: MelConfig = field(default_factory=MelConfig)
    num_workers: int = 2
    min_seconds: float = 0.5
    max_seconds: Optional[float] = None
    silence_peak_threshold: float = 1e-4
    peak_normalize: Optional[float] = None
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    overwrite: bool = False
    builtin: BuiltinConfig = field(default_factory=BuiltinConfig)

    def __post_init__(self):
        if not self.processed_dir:
            raise ConfigError("preprocess.processed_dir: must name a folder")
        if not self.dataset or self.dataset in (".", "..") or "/" in self.dataset or "\\" in self.dataset:
            raise ConfigError(f"preprocess.dataset: must be a plain folder name, got {self.dataset!r}")
        if self.num_workers < 1:
            raise ConfigError(f"preprocess.num_workers: must be at least 1, got {self.num_workers}")
        minimum_seconds = self.mel.n_fft / self.mel.sample_rate
        if self.min_seconds < minimum_seconds:
            raise ConfigError(
                f"preprocess.min_seconds: must be at least n_fft / sample_rate = {minimum_seconds:.4f} s "
                f"(the STFT needs one full window), got {self.min_seconds}"
            )
        if self.max_seconds is not None and self.max_seconds < self.min_seconds:
            raise ConfigError(
                f"preprocess.max_seconds: must be at least min_seconds ({self.min_seconds}), got {self.max_seconds}"
            )
        if self.silence_peak_threshold < 0:
            raise ConfigError(
                f"preprocess.silence_peak_threshold: must not be negative, got {self.silence_peak_threshold}"
            )
        if self.peak_normalize is not None and not 0 < self.peak_normalize <= 1:
            raise ConfigError(f"preprocess.peak_normalize: must be in (0, 1] or null, got {self.peak_normalize}")
        for key, fraction in (("valid_fraction", self.valid_fraction), ("test_fraction", self.test_fraction)):
            if not 0 <= fraction < 1:
                raise ConfigError(f"preprocess.{key}: must be in [0, 1), got {fraction}")
        if self.valid_fraction + self.test_fraction >= 1:
            raise ConfigError(
                "preprocess.valid_fraction + preprocess.test_fraction: must leave clips for training, got "
                f"{self.valid_fraction} + {self.test_fraction}"
            )


@dataclass
class PreprocessExperiment:
    """A config file as the preprocessing CLI sees it: only its `preprocess` section (other stages' sections
    are validated by their own CLIs, so one recipe config serves every stage)."""

    preprocess: PreprocessConfig


def load_preprocess_config(path: Path | str, overrides: Iterable[str] = ()) -> PreprocessConfig:
    """Read the `preprocess` section of a config file (with its `base_config` chain) and `--set` overrides.

    Other top-level sections belong to other stages and are left to their CLIs, so the same recipe config can
    be given to every stage; overrides must therefore address `preprocess.*`. Raises ConfigError.
    """
    tree, sources = load_tree(path)
    for override in overrides:
        if not override.startswith("preprocess."):
            raise ConfigError(f"--set {override}: the preprocessing CLI only takes preprocess.* keys")
    tree = apply_overrides(tree, sources, overrides)
    section = {"preprocess": tree["preprocess"]} if "preprocess" in tree else {}
    return validate(PreprocessExperiment, section, sources, str(path)).preprocess
