"""Config schema of AudioLDM 2 fine-tuning (`model_type: "AudioLDM2"`).

The UNet of a converted public checkpoint (`bins/tta/convert_audioldm2.py`) trains further on a processed dataset
with stage 2's loss; the text side (CLAP, Flan-T5, projection, GPT-2), the VAE and the vocoder stay frozen, as in
the paper's stage-2 training (Liu et al. 2024, "AudioLDM 2", Sec. 3). The UNet architecture, the VAE, its latent
scale factor and the vocoder come from the converted checkpoint, so the config names no architecture.

Sections: `preprocess` (the shared front end; it must be the checkpoint's: 16 kHz, hop 160, 64 mel bins for the
public models), `data` and `validation` (stage 2's), `pretrained` (the converted checkpoint and the folder holding
its frozen text side), `unet` (training-only switches), `diffusion` (stage 2's; the schedule's betas must be the
checkpoint's, the prediction type may change from ε to v), `trainer`.
"""

from dataclasses import dataclass, field
from typing import Literal

from models.base.trainer_config import TrainerConfig
from models.tta.audioldm.config import DataConfig, DiffusionConfig, ValidationConfig
from preprocessors.config import PreprocessConfig


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class PretrainedConfig:
    """Where fine-tuning starts. `checkpoint` is a folder written by `bins/tta/convert_audioldm2.py`.
    `text_model_dir` is the diffusers folder holding the frozen text side (text_encoder, text_encoder_2,
    language_model, tokenizer, tokenizer_2, feature_extractor); empty means the folder the checkpoint was converted
    from (recorded in it). `sample_posterior` draws training latents from the VAE posterior instead of its mean."""

    checkpoint: str = ""
    text_model_dir: str = ""
    sample_posterior: bool = False


@dataclass
class UNetTrainingConfig:
    """Training switches of the pretrained UNet (its architecture is the checkpoint's)."""

    use_gradient_checkpointing: bool = False


@dataclass
class AudioLDM2Experiment:
    """An AudioLDM 2 fine-tuning experiment (see the module docstring)."""

    model_type: Literal["AudioLDM2"]
    exp_name: str
    preprocess: PreprocessConfig
    pretrained: PretrainedConfig
    log_dir: str = "exp"
    data: DataConfig = field(default_factory=DataConfig)
    unet: UNetTrainingConfig = field(default_factory=UNetTrainingConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def __post_init__(self) -> None:
        _require(
            bool(self.pretrained.checkpoint),
            "pretrained.checkpoint must name a converted AudioLDM 2 checkpoint (bins/tta/convert_audioldm2.py)",
        )
        _require(
            max(self.validation.loss_timesteps) < self.diffusion.schedule.num_train_timesteps
            and min(self.validation.loss_timesteps) >= 0,
            f"validation.loss_timesteps must lie in [0, {self.diffusion.schedule.num_train_timesteps})",
        )

    @property
    def datasets(self) -> list[str]:
        return self.data.datasets or [self.preprocess.dataset]
