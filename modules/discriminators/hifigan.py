"""HiFi-GAN's waveform discriminators (Kong et al. 2020, §2.2–2.3): multi-period (MPD) and multi-scale (MSD).

Each takes a waveform (B, S) and returns, per sub-discriminator, the flattened logits (B, N_i) and the list of
intermediate activations used by the feature-matching loss. Real and generated audio go through separately (or
concatenated along B); the losses live in `models/tta/hifigan/loss.py`.
"""

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

# (logits per sub-discriminator (B, N_i), feature maps per sub-discriminator)
DiscriminatorOutput = tuple[list[torch.Tensor], list[list[torch.Tensor]]]

# Kernel sizes, strides and groups of the paper's MSD sub-discriminator (from MelGAN, Kumar et al. 2019).
MSD_KERNEL_SIZES = (15, 41, 41, 41, 41, 41, 5)
MSD_STRIDES = (1, 2, 2, 4, 4, 1, 1)
MSD_GROUPS = (1, 4, 16, 16, 16, 16, 1)


class PeriodDiscriminator(nn.Module):
    """Folds the waveform (B, S) into (B, 1, ⌈S/p⌉, p) so that 2-D convolutions with (k, 1) kernels see every
    p-th sample: one sub-discriminator of the MPD."""

    def __init__(
        self,
        *,
        period: int,
        channels: Sequence[int],
        kernel_size: int = 5,
        stride: int = 3,
        leaky_relu_slope: float = 0.1,
    ):
        super().__init__()
        self.period = period
        self.leaky_relu_slope = leaky_relu_slope
        padding = ((kernel_size - 1) // 2, 0)
        in_channels = (1, *channels[:-1])
        # Every layer strides by `stride` except the last, as in the paper's MPD.
        strides = [stride] * (len(channels) - 1) + [1]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(c_in, c_out, (kernel_size, 1), (s, 1), padding=padding))
            for c_in, c_out, s in zip(in_channels, channels, strides)
        )
        self.conv_out = weight_norm(nn.Conv2d(channels[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, S) → logits (B, N), feature maps [(B, C_l, H_l, period)]."""
        remainder = waveform.shape[-1] % self.period
        if remainder:
            waveform = F.pad(waveform.unsqueeze(1), (0, self.period - remainder), mode="reflect").squeeze(1)
        hidden = waveform.reshape(waveform.shape[0], 1, -1, self.period)
        features = []
        for conv in self.convs:
            hidden = F.leaky_relu(conv(hidden), self.leaky_relu_slope)
            features.append(hidden)
        hidden = self.conv_out(hidden)
        features.append(hidden)
        return hidden.flatten(1), features


class MultiPeriodDiscriminator(nn.Module):
    """MPD: one `PeriodDiscriminator` per period (prime periods avoid overlapping views)."""

    def __init__(
        self,
        *,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        channels: Sequence[int] = (32, 128, 512, 1024, 1024),
        leaky_relu_slope: float = 0.1,
    ):
        super().__init__()
        self.discriminators = nn.ModuleList(
            PeriodDiscriminator(period=p, channels=channels, leaky_relu_slope=leaky_relu_slope) for p in periods
        )

    def forward(self, waveform: torch.Tensor) -> DiscriminatorOutput:
        """(B, S) → ([logits (B, N_i)] × len(periods), [feature maps] × len(periods))."""
        outputs = [discriminator(waveform) for discriminator in self.discriminators]
        return [logits for logits, _ in outputs], [features for _, features in outputs]


class ScaleDiscriminator(nn.Module):
    """Strided, grouped 1-D convolutions over a waveform (B, S): one sub-discriminator of the MSD."""

    def __init__(
        self,
        *,
        channels: Sequence[int],
        groups: Sequence[int] = MSD_GROUPS,
        use_spectral_norm: bool = False,
        leaky_relu_slope: float = 0.1,
    ):
        super().__init__()
        if not len(channels) == len(groups) == len(MSD_KERNEL_SIZES):
            raise ValueError(
                f"channels {tuple(channels)} and groups {tuple(groups)} need {len(MSD_KERNEL_SIZES)} entries each"
            )
        self.leaky_relu_slope = leaky_relu_slope
        norm = spectral_norm if use_spectral_norm else weight_norm
        in_channels = (1, *channels[:-1])
        self.convs = nn.ModuleList(
            norm(nn.Conv1d(c_in, c_out, k, s, groups=g, padding=(k - 1) // 2))
            for c_in, c_out, k, s, g in zip(in_channels, channels, MSD_KERNEL_SIZES, MSD_STRIDES, groups)
        )
        self.conv_out = norm(nn.Conv1d(channels[-1], 1, 3, padding=1))

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, S) → logits (B, N), feature maps [(B, C_l, S_l)]."""
        hidden = waveform.unsqueeze(1)
        features = []
        for conv in self.convs:
            hidden = F.leaky_relu(conv(hidden), self.leaky_relu_slope)
            features.append(hidden)
        hidden = self.conv_out(hidden)
        features.append(hidden)
        return hidden.flatten(1), features


class MultiScaleDiscriminator(nn.Module):
    """MSD: `ScaleDiscriminator`s on the raw waveform and on ×2, ×4, … average-pooled copies; the first uses
    spectral norm (for stability on raw audio), the others weight norm."""

    def __init__(
        self,
        *,
        num_scales: int = 3,
        channels: Sequence[int] = (128, 128, 256, 512, 1024, 1024, 1024),
        groups: Sequence[int] = MSD_GROUPS,
        leaky_relu_slope: float = 0.1,
    ):
        super().__init__()
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(
                channels=channels, groups=groups, use_spectral_norm=scale == 0, leaky_relu_slope=leaky_relu_slope
            )
            for scale in range(num_scales)
        )
        self.downsample = nn.AvgPool1d(kernel_size=4, stride=2, padding=2)

    def forward(self, waveform: torch.Tensor) -> DiscriminatorOutput:
        """(B, S) → ([logits (B, N_i)] × num_scales, [feature maps] × num_scales)."""
        all_logits, all_features = [], []
        for scale, discriminator in enumerate(self.discriminators):
            if scale > 0:
                waveform = self.downsample(waveform.unsqueeze(1)).squeeze(1)
            logits, features = discriminator(waveform)
            all_logits.append(logits)
            all_features.append(features)
        return all_logits, all_features
