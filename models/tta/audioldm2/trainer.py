"""AudioLDM 2 fine-tuning: stage 2's trainer on a converted public checkpoint, with AudioLDM 2's conditioning.

The UNet (two cross-attention streams) starts from the converted checkpoint and trains with stage 2's masked ε/v
loss, caption dropout, EMA and fixed-timestep validation (`models.tta.audioldm.trainer`). Its contexts are the N
GPT-2 "language of audio" vectors and the Flan-T5 states with their mask, from the frozen text side
(`AudioLDM2TextConditioner.contexts`); a dropped caption drops both streams to exactly what the generation
pipeline builds for an empty negative prompt. The VAE, its latent scale factor and the vocoder are the
checkpoint's and stay frozen. Liu et al. 2024, "AudioLDM 2", Sec. 3.
"""

import logging

import torch
from torch import nn

from models.tta.audioldm.trainer import AudioLDMTrainer
from models.tta.audioldm.text_states import TextConditioning
from models.tta.audioldm2.config import AudioLDM2Experiment
from models.tta.audioldm2.loading import (
    build_pipeline,
    open_converted_checkpoint,
    resolve_text_model_dir,
    schedule_differences,
)
from models.tta.audioldm2.text_conditioning import load_audioldm2_conditioner
from models.tta.autoencoderkl.model import AutoencoderKL
from utils.checkpoint import CheckpointError

logger = logging.getLogger(__name__)


class AudioLDM2Trainer(AudioLDMTrainer):
    """Trains `unet` of a converted AudioLDM 2 checkpoint (see the module docstring). The resolved config records
    the text side folder actually used (`pretrained.text_model_dir`), so a fine-tuned checkpoint names everything
    it needs: the converted checkpoint for the frozen modules and that folder for the text side."""

    config_schema = AudioLDM2Experiment

    def _frozen_autoencoder(
        self, config: AudioLDM2Experiment, resolved_config: dict
    ) -> tuple[AutoencoderKL, float, dict]:
        converted = open_converted_checkpoint(config.pretrained.checkpoint)
        self._converted = converted
        self._text_folder = resolve_text_model_dir(config.pretrained.text_model_dir, converted)
        differences = schedule_differences(config.diffusion.schedule, converted)
        if differences:
            raise CheckpointError(
                f"diffusion.schedule differs from the noise schedule {config.pretrained.checkpoint} was trained "
                f"with (only prediction_type may change): {'; '.join(differences)}"
            )
        _check_front_end(config, converted)
        logger.info(
            "AudioLDM 2 checkpoint %s, text side %s, latent scale factor %.6g",
            config.pretrained.checkpoint,
            self._text_folder,
            converted.latent_scaling_factor,
        )
        resolved_config = {
            **resolved_config,
            "pretrained": {**resolved_config["pretrained"], "text_model_dir": str(self._text_folder)},
        }
        return converted.vae.requires_grad_(False), converted.latent_scaling_factor, resolved_config

    def _sample_posterior(self) -> bool:
        return self.config.pretrained.sample_posterior

    def _build_conditioning(self) -> TextConditioning:
        return load_audioldm2_conditioner(self._text_folder, projection=self._converted.projection)

    def _build_unet(self, context_dims: list[int]) -> nn.Module:
        unet = self._converted.unet
        if list(unet.context_dims) != list(context_dims):
            raise CheckpointError(
                f"the UNet of {self.config.pretrained.checkpoint} cross-attends to widths {unet.context_dims}, the "
                f"text side in {self._text_folder} gives {context_dims}: pretrained.text_model_dir must be the "
                f"model the checkpoint was converted from"
            )
        unet.use_gradient_checkpointing = self.config.unet.use_gradient_checkpointing
        return unet.train().requires_grad_(True)

    def _generate_samples(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        validation = self.config.validation
        self._converted.vocoder.to(self.device)
        pipeline = build_pipeline(
            self._converted,
            conditioner=self._conditioning,
            text_folder=self._text_folder,
            schedule=self.config.diffusion.schedule,
            unet=self._denoiser().unet,
        )
        output = pipeline.generate(
            validation.prompts,
            guidance_scale=validation.guidance_scale,
            num_inference_steps=validation.num_inference_steps,
            audio_length_in_s=validation.audio_length_in_s,
            generator=torch.Generator().manual_seed(validation.seed),
            scheduler=validation.scheduler,
        )
        return output.waveforms[:, 0], output.log_mels[:, 0], self._converted.sampling_rate


def _check_front_end(config: AudioLDM2Experiment, converted) -> None:
    """The processed mels must be the ones the checkpoint's VAE and vocoder were trained on."""
    mel = config.preprocess.mel
    expected = {
        "sample_rate": converted.sampling_rate,
        "hop_length": converted.vocoder.hop_length,
        "n_mels": converted.vocoder.conv_in.in_channels,
    }
    differences = [
        f"preprocess.mel.{key} is {getattr(mel, key)}, the checkpoint needs {value}"
        for key, value in expected.items()
        if getattr(mel, key) != value
    ]
    if differences:
        raise CheckpointError(f"{config.pretrained.checkpoint}: {'; '.join(differences)}")
