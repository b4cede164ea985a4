"""Stage-1 mel variational autoencoder of AudioLDM / AudioLDM 2 (diffusers ``AutoencoderKL`` layout).

A convolutional encoder maps a log-mel (B, 1, T, F) to a diagonal Gaussian over latents (B, C, T/r, F/r) with
r = 2 ** (len(block_out_channels) - 1); the decoder maps latents back to mels. Rombach et al. 2022, "High-Resolution
Image Synthesis with Latent Diffusion Models"; Liu et al. 2023, "AudioLDM".
"""

import torch
import torch.nn.functional as F
from torch import nn

from modules.attention import SpatialSelfAttention
from modules.distributions import DiagonalGaussian
from modules.resnet import Downsample2D, ResnetBlock2D, Upsample2D

# The VAE's GroupNorm epsilon (fixed in LDM and in every public AudioLDM checkpoint).
NORM_EPS = 1e-6


class EncoderDownBlock(nn.Module):
    """``num_layers`` ResNet blocks, then an optional stride-2 downsample (asymmetric zero pad, as in LDM)."""

    def __init__(self, *, in_channels: int, out_channels: int, num_layers: int, groups: int, downsample: bool) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(in_channels=in_channels if index == 0 else out_channels, out_channels=out_channels,
                          groups=groups, eps=NORM_EPS)
            for index in range(num_layers)
        )
        self.downsample = Downsample2D(channels=out_channels, padding=0) if downsample else None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H/2, W/2), or (B, C_out, H, W) without downsampling."""
        for resnet in self.resnets:
            hidden = resnet(hidden)
        return hidden if self.downsample is None else self.downsample(hidden)


class DecoderUpBlock(nn.Module):
    """``num_layers`` ResNet blocks, then an optional nearest x2 upsample with a 3x3 conv."""

    def __init__(self, *, in_channels: int, out_channels: int, num_layers: int, groups: int, upsample: bool) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(in_channels=in_channels if index == 0 else out_channels, out_channels=out_channels,
                          groups=groups, eps=NORM_EPS)
            for index in range(num_layers)
        )
        self.upsample = Upsample2D(channels=out_channels) if upsample else None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, 2H, 2W), or (B, C_out, H, W) without upsampling."""
        for resnet in self.resnets:
            hidden = resnet(hidden)
        return hidden if self.upsample is None else self.upsample(hidden)


class MidBlock(nn.Module):
    """ResNet -> (optional) single-head spatial self-attention -> ResNet at the lowest resolution."""

    def __init__(self, *, channels: int, groups: int, attention: bool) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(in_channels=channels, groups=groups, eps=NORM_EPS) for _ in range(2)
        )
        self.self_attention = (
            SpatialSelfAttention(channels=channels, groups=groups, eps=NORM_EPS) if attention else None
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        hidden = self.resnets[0](hidden)
        if self.self_attention is not None:
            hidden = self.self_attention(hidden)
        return self.resnets[1](hidden)


class Encoder(nn.Module):
    """Mel (B, in_channels, T, F) -> posterior moments (B, 2 * latent_channels, T/r, F/r)."""

    def __init__(
        self,
        *,
        in_channels: int,
        latent_channels: int,
        block_out_channels: tuple[int, ...],
        layers_per_block: int,
        norm_groups: int,
        mid_block_attention: bool,
    ) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1)
        last = len(block_out_channels) - 1
        self.down_blocks = nn.ModuleList(
            EncoderDownBlock(
                in_channels=block_out_channels[max(index - 1, 0)],
                out_channels=channels,
                num_layers=layers_per_block,
                groups=norm_groups,
                downsample=index != last,
            )
            for index, channels in enumerate(block_out_channels)
        )
        self.mid_block = MidBlock(channels=block_out_channels[-1], groups=norm_groups, attention=mid_block_attention)
        self.conv_norm_out = nn.GroupNorm(num_groups=norm_groups, num_channels=block_out_channels[-1], eps=NORM_EPS)
        self.conv_out = nn.Conv2d(block_out_channels[-1], 2 * latent_channels, kernel_size=3, padding=1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, T, F) with T and F multiples of r -> (B, 2 * latent_channels, T/r, F/r)."""
        hidden = self.conv_in(mel)
        for block in self.down_blocks:
            hidden = block(hidden)
        hidden = self.mid_block(hidden)
        return self.conv_out(F.silu(self.conv_norm_out(hidden)))


class Decoder(nn.Module):
    """Latent (B, latent_channels, T/r, F/r) -> mel (B, out_channels, T, F).

    Each up block has ``layers_per_block + 1`` ResNet blocks (one more than the encoder's down blocks, as in LDM).
    """

    def __init__(
        self,
        *,
        out_channels: int,
        latent_channels: int,
        block_out_channels: tuple[int, ...],
        layers_per_block: int,
        norm_groups: int,
        mid_block_attention: bool,
    ) -> None:
        super().__init__()
        reversed_channels = tuple(reversed(block_out_channels))
        self.conv_in = nn.Conv2d(latent_channels, reversed_channels[0], kernel_size=3, padding=1)
        self.mid_block = MidBlock(channels=reversed_channels[0], groups=norm_groups, attention=mid_block_attention)
        last = len(reversed_channels) - 1
        self.up_blocks = nn.ModuleList(
            DecoderUpBlock(
                in_channels=reversed_channels[max(index - 1, 0)],
                out_channels=channels,
                num_layers=layers_per_block + 1,
                groups=norm_groups,
                upsample=index != last,
            )
            for index, channels in enumerate(reversed_channels)
        )
        self.conv_norm_out = nn.GroupNorm(num_groups=norm_groups, num_channels=block_out_channels[0], eps=NORM_EPS)
        self.conv_out = nn.Conv2d(block_out_channels[0], out_channels, kernel_size=3, padding=1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, latent_channels, h, w) -> (B, out_channels, h * r, w * r)."""
        hidden = self.mid_block(self.conv_in(latent))
        for block in self.up_blocks:
            hidden = block(hidden)
        return self.conv_out(F.silu(self.conv_norm_out(hidden)))


class AutoencoderKL(nn.Module):
    """KL-regularised mel autoencoder: ``encode`` -> DiagonalGaussian posterior, ``decode`` -> mel.

    Mels are (B, in_channels, T, F), time first. Any T and F are accepted: ``encode`` pads both up to a multiple of
    ``downsample_factor`` by repeating the last frame / bin (no artificial step edge for the convolutions to see),
    and ``forward`` / ``reconstruct`` crop the decoded mel back to the input shape.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        out_channels: int = 1,
        block_out_channels: tuple[int, ...] = (128, 256, 512),
        layers_per_block: int = 2,
        latent_channels: int = 8,
        norm_groups: int = 32,
        mid_block_attention: bool = True,
    ) -> None:
        super().__init__()
        block_out_channels = tuple(block_out_channels)
        bad_widths = [channels for channels in block_out_channels if channels % norm_groups != 0]
        if bad_widths:
            raise ValueError(f"block_out_channels {bad_widths} are not divisible by norm_groups={norm_groups}")
        self.latent_channels = latent_channels
        self.block_out_channels = block_out_channels
        self.encoder = Encoder(
            in_channels=in_channels,
            latent_channels=latent_channels,
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            norm_groups=norm_groups,
            mid_block_attention=mid_block_attention,
        )
        self.decoder = Decoder(
            out_channels=out_channels,
            latent_channels=latent_channels,
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            norm_groups=norm_groups,
            mid_block_attention=mid_block_attention,
        )
        self.quant_conv = nn.Conv2d(2 * latent_channels, 2 * latent_channels, kernel_size=1)
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, kernel_size=1)

    @property
    def downsample_factor(self) -> int:
        """Ratio between mel and latent size along time and along frequency."""
        return 2 ** (len(self.block_out_channels) - 1)

    @property
    def last_layer_weight(self) -> torch.Tensor:
        """The decoder's output conv weight, where the GAN loss balances its gradient against the reconstruction's."""
        return self.decoder.conv_out.weight

    def pad_to_multiple(self, mel: torch.Tensor) -> torch.Tensor:
        """Pad (B, C, T, F) at the end of time and frequency, by edge replication, to multiples of the factor."""
        factor = self.downsample_factor
        pad_frames = -mel.shape[-2] % factor
        pad_bins = -mel.shape[-1] % factor
        if pad_frames == 0 and pad_bins == 0:
            return mel
        return F.pad(mel, (0, pad_bins, 0, pad_frames), mode="replicate")

    def encode(self, mel: torch.Tensor) -> DiagonalGaussian:
        """Mel (B, in_channels, T, F) -> posterior over latents (B, latent_channels, ceil(T/r), ceil(F/r))."""
        moments = self.quant_conv(self.encoder(self.pad_to_multiple(mel)))
        return DiagonalGaussian.from_parameters(moments)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent (B, latent_channels, h, w) -> mel (B, out_channels, h * r, w * r)."""
        return self.decoder(self.post_quant_conv(latent))

    def forward(
        self,
        mel: torch.Tensor,
        *,
        sample_posterior: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, DiagonalGaussian]:
        """Encode, draw a latent (posterior sample, or its mean if not ``sample_posterior``), decode.

        Returns the reconstruction cropped to the input's (B, out_channels, T, F) and the posterior.
        """
        posterior = self.encode(mel)
        latent = posterior.sample(generator) if sample_posterior else posterior.mode()
        reconstruction = self.decode(latent)[..., : mel.shape[-2], : mel.shape[-1]]
        return reconstruction, posterior

    def reconstruct(self, mel: torch.Tensor) -> torch.Tensor:
        """Deterministic round trip through the posterior mean: (B, C, T, F) -> (B, out_channels, T, F)."""
        reconstruction, _ = self(mel, sample_posterior=False)
        return reconstruction
