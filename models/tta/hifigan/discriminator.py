"""The HiFi-GAN stage's discriminator: the multi-period and multi-scale discriminators of
`modules.discriminators.hifigan` as one model, so the trainer checkpoints, freezes and steps them together (one
optimizer over both, as in Kong et al. 2020)."""

from collections.abc import Sequence

import torch
from torch import nn

from modules.discriminators.hifigan import DiscriminatorOutput, MultiPeriodDiscriminator, MultiScaleDiscriminator


class HifiGanDiscriminator(nn.Module):
    """MPD and/or MSD on a waveform (B, S): their logits and feature maps, concatenated (MPD first).

    `periods` empty leaves the MPD out; `msd_scales` 0 leaves the MSD out.
    """

    def __init__(
        self,
        *,
        periods: Sequence[int],
        mpd_channels: Sequence[int],
        msd_scales: int,
        msd_channels: Sequence[int],
        msd_groups: Sequence[int],
        leaky_relu_slope: float = 0.1,
    ):
        super().__init__()
        if not periods and msd_scales == 0:
            raise ValueError("no discriminator: periods is empty and msd_scales is 0")
        self.mpd = (
            MultiPeriodDiscriminator(periods=periods, channels=mpd_channels, leaky_relu_slope=leaky_relu_slope)
            if periods
            else None
        )
        self.msd = (
            MultiScaleDiscriminator(
                num_scales=msd_scales, channels=msd_channels, groups=msd_groups, leaky_relu_slope=leaky_relu_slope
            )
            if msd_scales
            else None
        )

    def forward(self, waveform: torch.Tensor) -> DiscriminatorOutput:
        """(B, S) → ([logits (B, N_i)], [feature maps]) over every sub-discriminator."""
        all_logits, all_features = [], []
        for discriminator in (self.mpd, self.msd):
            if discriminator is not None:
                logits, features = discriminator(waveform)
                all_logits += logits
                all_features += features
        return all_logits, all_features
