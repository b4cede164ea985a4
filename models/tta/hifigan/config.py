"""Config schema of the HiFi-GAN vocoder stage and the builders that turn its sections into models.

`HifiGanExperiment` is the schema `bins/tta/train_tta.py` validates a config with `model_type: "HiFiGAN"`
against (`HifiGanTrainer.config_schema`). `model.generator` picks the generator the stage trains: "hifigan"
(`HifiGanGenerator`, the default and AudioLDM 2's layout) or "vocos" (`VocosGenerator`, sized by `model.vocos`).
The generator's input width is the mel front end's `n_mels` and its hop the front end's `hop_length` (HiFi-GAN's
upsampling rates must multiply to it), so neither is repeated in the `model` section.
"""

from dataclasses import dataclass, field
from typing import Literal

from models.base.trainer_config import TrainerConfig
from models.tta.hifigan.discriminator import HifiGanDiscriminator
from models.tta.hifigan.loss import LOSS_NAMES, STFT_LOSS_RESOLUTIONS
from models.tta.hifigan.model import HifiGanGenerator
from models.tta.hifigan.vocos import VocosGenerator
from modules.discriminators.hifigan import MSD_GROUPS, MSD_KERNEL_SIZES
from preprocessors.config import PreprocessConfig
from utils.audio import MelConfig
from utils.config import ConfigError


@dataclass
class VocosConfig:
    """`VocosGenerator` sizes (used when `model.generator` is "vocos"); the defaults are the paper's backbone
    (Siuzdak 2023) with an inverse STFT of n_fft = 4 × the AudioLDM hop of 160. `demodulated_phase` makes the head
    predict phases relative to the bins' centre frequencies (`ISTFTHead`); `magnitude_prior` adds the
    pseudo-inverse of the mel filters to its log-magnitudes (`VocosGenerator`)."""

    dim: int = 512
    intermediate_dim: int = 1536
    num_layers: int = 8
    n_fft: int = 640
    demodulated_phase: bool = False
    magnitude_prior: bool = False

    def __post_init__(self) -> None:
        if min(self.dim, self.intermediate_dim, self.num_layers) < 1:
            raise ValueError(
                f"dim, intermediate_dim and num_layers must be >= 1, got {self.dim}, {self.intermediate_dim}, "
                f"{self.num_layers}"
            )


@dataclass
class GeneratorConfig:
    """The generator: `generator` names its kind. "hifigan" is sized by the
    `upsample_*` / `resblock_*` / `leaky_relu_slope` keys, whose defaults are AudioLDM 2's vocoder (REFERENCE.md,
    ≈55.3 M parameters); "vocos" by the `vocos` section, and ignores those keys.

    `normalize_input` standardises every mel bin with the training data's mean and standard deviation (measured
    by the trainer when a run starts, over `data.statistics_clips` training clips, and stored in the generator's
    `mean` / `scale` buffers, so checkpoints carry them). It makes early training markedly faster; AudioLDM 2's
    vocoder does not use it, so it is off by default.
    """

    upsample_initial_channel: int = 1024
    upsample_rates: list[int] = field(default_factory=lambda: [5, 4, 2, 2, 2])
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [16, 16, 8, 4, 4])
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(default_factory=lambda: [[1, 3, 5], [1, 3, 5], [1, 3, 5]])
    leaky_relu_slope: float = 0.1
    normalize_input: bool = False
    generator: Literal["hifigan", "vocos"] = "hifigan"
    vocos: VocosConfig = field(default_factory=VocosConfig)

    @property
    def upsampling(self) -> int:
        """HiFi-GAN's total upsampling: the product of `upsample_rates`."""
        hop = 1
        for rate in self.upsample_rates:
            hop *= rate
        return hop

    @property
    def uses_weight_norm(self) -> bool:
        """Whether the generator trains with weight-normalised convolutions (and checkpoints store them so):
        HiFi-GAN does (Kong et al. 2020); Vocos normalises its activations with LayerNorm instead."""
        return self.generator == "hifigan"


@dataclass
class DiscriminatorConfig:
    """Multi-period (`periods`, `mpd_channels`) and multi-scale (`msd_scales`, `msd_channels`, `msd_groups`)
    discriminators; the defaults are the HiFi-GAN paper's. An empty `periods` or `msd_scales: 0` leaves that
    discriminator out (at least one must stay)."""

    periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])
    mpd_channels: list[int] = field(default_factory=lambda: [32, 128, 512, 1024, 1024])
    msd_scales: int = 3
    msd_channels: list[int] = field(default_factory=lambda: [128, 128, 256, 512, 1024, 1024, 1024])
    msd_groups: list[int] = field(default_factory=lambda: list(MSD_GROUPS))
    leaky_relu_slope: float = 0.1

    def __post_init__(self) -> None:
        if not self.periods and self.msd_scales == 0:
            raise ValueError("periods is empty and msd_scales is 0: at least one discriminator is needed")
        if self.msd_scales < 0:
            raise ValueError(f"msd_scales must be >= 0, got {self.msd_scales}")
        if self.periods and not self.mpd_channels:
            raise ValueError("mpd_channels must name at least one layer")
        if self.msd_scales and not len(self.msd_channels) == len(self.msd_groups) == len(MSD_KERNEL_SIZES):
            raise ValueError(
                f"msd_channels and msd_groups need {len(MSD_KERNEL_SIZES)} entries each, got "
                f"{len(self.msd_channels)} and {len(self.msd_groups)}"
            )
        for channels, groups in zip((1, *self.msd_channels[:-1]), self.msd_groups):
            if self.msd_scales and channels % groups:
                raise ValueError(f"msd_groups {self.msd_groups}: a layer's input channels must divide by its groups")


@dataclass
class HifiGanLossConfig:
    """`weights` maps every loss name (mel, stft, adv_g, fm, disc) to its weight; the names are also the logged
    metric names (stft: the multi-resolution STFT loss, skipped when its weight is 0). The discriminators are
    trained and the adversarial and feature-matching losses used from training step `disc_start_step` on (0: from
    the start, as in the paper); before it the generator learns from the spectral losses (mel, stft) only."""

    weights: dict[str, float] = field(
        default_factory=lambda: {"mel": 45.0, "stft": 0.0, "adv_g": 1.0, "fm": 2.0, "disc": 1.0}
    )
    disc_start_step: int = 0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(LOSS_NAMES))
        missing = sorted(set(LOSS_NAMES) - set(self.weights))
        if unknown or missing:
            raise ValueError(f"weights must name exactly {list(LOSS_NAMES)}: unknown {unknown}, missing {missing}")
        if self.disc_start_step < 0:
            raise ValueError(f"disc_start_step must be >= 0, got {self.disc_start_step}")


@dataclass
class HifiGanDataConfig:
    """Training reads random `segment_frames`-frame waveform segments (offsets on the hop grid) of
    `train_split`; validation the first `valid_frames` frames of each `valid_split` clip. `datasets` lists the
    processed datasets to read (empty: `preprocess.dataset`). `num_sample_clips` validation clips are vocoded to
    TensorBoard audio and mel images at every `trainer.sample_every`. With `model.normalize_input`, the mel
    statistics are measured on the first `statistics_clips` training clips."""

    datasets: list[str] = field(default_factory=list)
    train_split: str = "train"
    valid_split: str = "valid"
    segment_frames: int = 32
    valid_frames: int = 500
    num_sample_clips: int = 2
    statistics_clips: int = 256

    def __post_init__(self) -> None:
        if self.segment_frames < 1:
            raise ValueError(f"segment_frames must be >= 1, got {self.segment_frames}")
        if self.valid_frames < 1:
            raise ValueError(f"valid_frames must be >= 1, got {self.valid_frames}")
        if self.num_sample_clips < 0:
            raise ValueError(f"num_sample_clips must be >= 0, got {self.num_sample_clips}")
        if self.statistics_clips < 1:
            raise ValueError(f"statistics_clips must be >= 1, got {self.statistics_clips}")


@dataclass
class HifiGanExperiment:
    """A HiFi-GAN vocoder experiment; its folder is `<log_dir>/<exp_name>`."""

    model_type: Literal["HiFiGAN"]
    exp_name: str
    preprocess: PreprocessConfig
    log_dir: str = "exp"
    data: HifiGanDataConfig = field(default_factory=HifiGanDataConfig)
    model: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: HifiGanLossConfig = field(default_factory=HifiGanLossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        if not self.exp_name:
            raise ConfigError("exp_name: must not be empty")
        hop_length = self.preprocess.mel.hop_length
        if self.model.generator == "hifigan" and self.model.upsampling != hop_length:
            raise ConfigError(
                f"model.upsample_rates {self.model.upsample_rates} multiply to {self.model.upsampling}, but the "
                f"vocoder must upsample by preprocess.mel.hop_length = {hop_length}"
            )
        vocos_n_fft = self.model.vocos.n_fft
        if self.model.generator == "vocos" and ((vocos_n_fft - hop_length) % 2 or vocos_n_fft < 2 * hop_length):
            raise ConfigError(
                f"model.vocos.n_fft: n_fft - preprocess.mel.hop_length must be even and n_fft at least "
                f"2 × hop_length ({2 * hop_length}) for the inverse STFT to overlap, got {vocos_n_fft}"
            )
        segment_samples = self.data.segment_frames * hop_length
        if segment_samples < self.preprocess.mel.n_fft:
            raise ConfigError(
                f"data.segment_frames: {self.data.segment_frames} frames ({segment_samples} samples) are shorter "
                f"than one STFT window (preprocess.mel.n_fft = {self.preprocess.mel.n_fft})"
            )
        longest_stft = max(n_fft for n_fft, _, _ in STFT_LOSS_RESOLUTIONS)
        if self.loss.weights["stft"] and segment_samples <= longest_stft // 2:
            raise ConfigError(
                f"data.segment_frames: {self.data.segment_frames} frames ({segment_samples} samples) are too short "
                f"for the STFT loss (loss.weights.stft), whose largest n_fft is {longest_stft}"
            )


def build_generator(
    config: GeneratorConfig, *, mel: MelConfig, use_weight_norm: bool
) -> HifiGanGenerator | VocosGenerator:
    """The generator for a `model` section and the mel front end `mel` (preprocess.mel: bins, hop, and for
    Vocos' magnitude prior the mel filters). `use_weight_norm` is for HiFi-GAN only (see
    `GeneratorConfig.uses_weight_norm`): training uses weight norm, inference folds it away after loading. With
    `normalize_input` the `mean` / `scale` buffers start as 0 / 1: the trainer measures them, a checkpoint restores
    them."""
    if config.generator == "vocos":
        if use_weight_norm:
            raise ValueError("the Vocos generator has no weight norm (it normalises with LayerNorm)")
        return VocosGenerator(
            n_mels=mel.n_mels,
            dim=config.vocos.dim,
            intermediate_dim=config.vocos.intermediate_dim,
            num_layers=config.vocos.num_layers,
            n_fft=config.vocos.n_fft,
            hop_length=mel.hop_length,
            demodulated_phase=config.vocos.demodulated_phase,
            magnitude_prior=config.vocos.magnitude_prior,
            sample_rate=mel.sample_rate,
            fmin=mel.fmin,
            fmax=mel.fmax,
            normalize_before=config.normalize_input,
        )
    if config.upsampling != mel.hop_length:
        raise ValueError(
            f"upsample_rates {config.upsample_rates} multiply to {config.upsampling}, not {mel.hop_length}"
        )
    return HifiGanGenerator(
        model_in_dim=mel.n_mels,
        upsample_initial_channel=config.upsample_initial_channel,
        upsample_rates=tuple(config.upsample_rates),
        upsample_kernel_sizes=tuple(config.upsample_kernel_sizes),
        resblock_kernel_sizes=tuple(config.resblock_kernel_sizes),
        resblock_dilation_sizes=tuple(tuple(d) for d in config.resblock_dilation_sizes),
        leaky_relu_slope=config.leaky_relu_slope,
        normalize_before=config.normalize_input,
        use_weight_norm=use_weight_norm,
    )


def build_discriminator(config: DiscriminatorConfig) -> HifiGanDiscriminator:
    """The MPD + MSD model for a `discriminator` section."""
    return HifiGanDiscriminator(
        periods=tuple(config.periods),
        mpd_channels=tuple(config.mpd_channels),
        msd_scales=config.msd_scales,
        msd_channels=tuple(config.msd_channels),
        msd_groups=tuple(config.msd_groups),
        leaky_relu_slope=config.leaky_relu_slope,
    )
