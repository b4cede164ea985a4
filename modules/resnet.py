"""Convolutional building blocks shared by the mel VAE and the diffusion UNet.

Parameter names follow the diffusers layout (``norm1``, ``conv1``, ``time_emb_proj``, ...) so that public
AudioLDM / AudioLDM 2 checkpoints load through near-identity key maps.
"""

import torch
import torch.nn.functional as F
from torch import nn


class ResnetBlock2D(nn.Module):
    """Pre-activation residual block with an optional additive time embedding.

    ``GroupNorm -> SiLU -> Conv3x3 (+ Linear(SiLU(temb))) -> GroupNorm -> SiLU -> Dropout -> Conv3x3``, added to
    the input (through a 1x1 conv when the channel count changes). He et al. 2016, "Identity Mappings in Deep
    Residual Networks"; the time embedding injection follows Ho et al. 2020 (DDPM).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int | None = None,
        temb_channels: int | None = None,
        groups: int = 32,
        eps: float = 1e-6,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.norm1 = nn.GroupNorm(num_groups=groups, num_channels=in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels) if temb_channels is not None else None
        self.norm2 = nn.GroupNorm(num_groups=groups, num_channels=out_channels, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.conv_shortcut = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else None
        )

    def forward(self, hidden: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        """Map ``hidden`` (B, C_in, H, W) to (B, C_out, H, W); ``temb`` is (B, temb_channels) or None."""
        residual = hidden if self.conv_shortcut is None else self.conv_shortcut(hidden)
        hidden = self.conv1(F.silu(self.norm1(hidden)))
        if self.time_emb_proj is not None:
            if temb is None:
                raise ValueError("this ResnetBlock2D was built with temb_channels, so forward needs temb")
            hidden = hidden + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        hidden = self.conv2(self.dropout(F.silu(self.norm2(hidden))))
        return residual + hidden


class Downsample2D(nn.Module):
    """Halve height and width with a stride-2 3x3 convolution.

    ``padding=1`` pads symmetrically inside the conv (the UNet's choice); ``padding=0`` zero-pads one row and one
    column at the end before the conv (the VAE's choice, inherited from taming-transformers). The output has
    ``ceil(H / 2)`` rows with ``padding=1`` and ``floor(H / 2)`` with ``padding=0``: both H/2 for even H.
    """

    def __init__(self, *, channels: int, out_channels: int | None = None, padding: int = 1) -> None:
        super().__init__()
        out_channels = channels if out_channels is None else out_channels
        self.padding = padding
        self.conv = nn.Conv2d(channels, out_channels, kernel_size=3, stride=2, padding=padding)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C_out, H/2, W/2) for even H and W."""
        if self.padding == 0:
            hidden = F.pad(hidden, (0, 1, 0, 1), mode="constant", value=0.0)
        return self.conv(hidden)


class Upsample2D(nn.Module):
    """Double height and width by nearest-neighbour interpolation, then smooth with a 3x3 convolution."""

    def __init__(self, *, channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        out_channels = channels if out_channels is None else out_channels
        self.conv = nn.Conv2d(channels, out_channels, kernel_size=3, padding=1)

    def forward(self, hidden: torch.Tensor, output_size: tuple[int, int] | None = None) -> torch.Tensor:
        """(B, C, H, W) -> (B, C_out, 2H, 2W), or (B, C_out, *output_size) when the skip connection is odd-sized."""
        if output_size is None:
            hidden = F.interpolate(hidden, scale_factor=2.0, mode="nearest")
        else:
            hidden = F.interpolate(hidden, size=output_size, mode="nearest")
        return self.conv(hidden)
