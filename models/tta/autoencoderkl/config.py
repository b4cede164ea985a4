"""Config schema of stage 1 (the mel VAE with a GAN loss): the experiment file `bins/tta/train_tta.py` reads when
`model_type` is "AutoencoderKL".

Sections: `preprocess` (where the data is and the mel front end, shared with every stage), `data` (splits and
crops), `model` (every `AutoencoderKL` constructor argument), `discriminator` (the PatchGAN), `loss` (the weight
map and the discriminator start), `trainer` (the shared loop), `samples` (what TensorBoard gets), `vocoder` (for
the audio of reconstructions) and `latent_scale` (how the latent scale factor for stage 2 is measured).
"""

from dataclasses import dataclass, field
from typing import Literal, Optional

from models.base.trainer_config import TrainerConfig
from models.tta.autoencoderkl.loss import validate_loss_weights
from models.tta.autoencoderkl.model import AutoencoderKL
from modules.discriminators.patchgan import NLayerDiscriminator
from preprocessors.config import PreprocessConfig


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class DataConfig:
    """Training clips are random crops of `segment_frames` frames (shorter clips are padded and the pad is masked
    out of the loss); validation takes the first `segment_frames` frames of each clip. An empty `datasets` list
    means the one dataset `preprocess.dataset`. `valid_split` null turns validation off."""

    datasets: list[str] = field(default_factory=list)
    train_split: str = "train"
    valid_split: Optional[str] = "valid"
    segment_frames: int = 1024

    def __post_init__(self) -> None:
        _require(self.segment_frames > 0, f"data.segment_frames must be > 0, got {self.segment_frames}")


@dataclass
class AutoencoderKLModelConfig:
    """The keyword arguments of `models.tta.autoencoderkl.model.AutoencoderKL` (AudioLDM 2 sizes by default)."""

    in_channels: int = 1
    out_channels: int = 1
    block_out_channels: tuple[int, ...] = (128, 256, 512)
    layers_per_block: int = 2
    latent_channels: int = 8
    norm_groups: int = 32
    mid_block_attention: bool = True

    def __post_init__(self) -> None:
        _require(len(self.block_out_channels) >= 1, "model.block_out_channels must name at least one block")
        _require(
            all(channels % self.norm_groups == 0 for channels in self.block_out_channels),
            f"model.block_out_channels {list(self.block_out_channels)} must all be divisible by model.norm_groups "
            f"({self.norm_groups})",
        )


@dataclass
class DiscriminatorConfig:
    """The PatchGAN (`modules.discriminators.patchgan.NLayerDiscriminator`); its input channels are the VAE's
    output channels. Taming-transformers / AudioLDM: 3 layers, 64 base channels, batch norm."""

    base_channels: int = 64
    num_layers: int = 3
    norm: Literal["batch", "instance", "none"] = "batch"


@dataclass
class LossConfig:
    """`weights` maps each generator loss (`rec`, `kl`, `gan_g`, the names logged under train/ and valid/) to its
    weight; a missing or unknown name is a config error. `rec` and `kl` are summed over (C, T, F) per example
    (LDM's reduction), so the KL weight does not depend on the crop length. `gan_g` multiplies the adaptive weight
    ||grad rec|| / ||grad gan|| (AudioLDM's disc_weight). The discriminator is trained, and the generator's
    adversarial term added, from step `disc_start_step` (0-based count of completed steps; AudioLDM: 50001).
    `sample_posterior` decodes a posterior sample in training (the VAE objective); validation uses the mean."""

    weights: dict[str, float] = field(default_factory=lambda: {"rec": 1.0, "kl": 1e-3, "gan_g": 0.5})
    disc_start_step: int = 50001
    sample_posterior: bool = True

    def __post_init__(self) -> None:
        self.weights = validate_loss_weights(self.weights)
        _require(all(weight >= 0 for weight in self.weights.values()), f"loss.weights must be >= 0, got {self.weights}")
        _require(self.disc_start_step >= 0, f"loss.disc_start_step must be >= 0, got {self.disc_start_step}")


@dataclass
class SamplesConfig:
    """Every `trainer.sample_every` steps, the first `num_clips` validation clips (training clips when there is no
    validation split) are written to TensorBoard: input and reconstruction mels as one image, and the audio of
    the input and of the reconstruction through the configured vocoder."""

    num_clips: int = 2

    def __post_init__(self) -> None:
        _require(self.num_clips >= 1, f"samples.num_clips must be >= 1, got {self.num_clips}")


@dataclass
class LatentScaleConfig:
    """How `bins/tta/vae_scale_factor.py` measures the latent scale factor (1 / std of posterior samples, AudioLDM's
    scale_by_std): over `num_clips` training clips (a random subset drawn with `seed`), random crops of
    `data.segment_frames` frames, `batch_size` at a time."""

    num_clips: int = 256
    batch_size: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        _require(self.num_clips >= 1, f"latent_scale.num_clips must be >= 1, got {self.num_clips}")
        _require(self.batch_size >= 1, f"latent_scale.batch_size must be >= 1, got {self.batch_size}")


@dataclass
class AutoencoderKLExperiment:
    """One stage-1 experiment. Its folder is `<log_dir>/<exp_name>`; the models are checkpointed as `vae` and
    `discriminator`, so `trainer.optimizers` configures exactly those two. `vocoder` is "griffin_lim" or anything
    `models.tta.vocoders.load_vocoder` accepts (a HiFi-GAN experiment or checkpoint folder, a diffusers vocoder
    folder)."""

    model_type: Literal["AutoencoderKL"]
    exp_name: str
    log_dir: str
    preprocess: PreprocessConfig
    data: DataConfig = field(default_factory=DataConfig)
    model: AutoencoderKLModelConfig = field(default_factory=AutoencoderKLModelConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    samples: SamplesConfig = field(default_factory=SamplesConfig)
    latent_scale: LatentScaleConfig = field(default_factory=LatentScaleConfig)
    vocoder: str = "griffin_lim"

    def __post_init__(self) -> None:
        _require(bool(self.exp_name), "exp_name must not be empty")
        smallest = 3 * 2**self.discriminator.num_layers
        sides = {"data.segment_frames": self.data.segment_frames, "preprocess.mel.n_mels": self.preprocess.mel.n_mels}
        for key, size in sides.items():
            _require(
                size >= smallest,
                f"{key} ({size}) is smaller than the discriminator's smallest input ({smallest} = 3 * 2 ** "
                f"discriminator.num_layers)",
            )

    @property
    def datasets(self) -> list[str]:
        """The datasets to read: `data.datasets`, or `[preprocess.dataset]` when that list is empty."""
        return list(self.data.datasets) or [self.preprocess.dataset]


def build_autoencoder(config: AutoencoderKLModelConfig) -> AutoencoderKL:
    """The VAE a `model` section describes."""
    return AutoencoderKL(
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        latent_channels=config.latent_channels,
        norm_groups=config.norm_groups,
        mid_block_attention=config.mid_block_attention,
    )


def build_discriminator(config: DiscriminatorConfig, *, in_channels: int) -> NLayerDiscriminator:
    """The PatchGAN a `discriminator` section describes, for mels of `in_channels` channels."""
    return NLayerDiscriminator(
        in_channels=in_channels, base_channels=config.base_channels, num_layers=config.num_layers, norm=config.norm
    )
