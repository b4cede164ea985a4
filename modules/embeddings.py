"""Timestep embeddings for diffusion denoisers."""

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_timestep_embedding(
    timesteps: torch.Tensor,
    dim: int,
    *,
    flip_sin_to_cos: bool = True,
    freq_shift: float = 0.0,
    max_period: float = 10000.0,
) -> torch.Tensor:
    """Embed (B,) timesteps (integer or fractional) as (B, dim) float32 sinusoids.

    Transformer positional encoding applied to diffusion steps (Vaswani et al. 2017; Ho et al. 2020): frequencies
    ``max_period ** (-k / (dim / 2 - freq_shift))`` for k < dim / 2. ``flip_sin_to_cos`` puts the cosines first
    (the AudioLDM 2 UNet does). An odd ``dim`` gets one trailing zero.
    """
    if timesteps.ndim != 1:
        raise ValueError(f"timesteps must be 1-D (B,), got shape {tuple(timesteps.shape)}")
    half_dim = dim // 2
    # Operation order kept as in the public AudioLDM 2 code so that float32 results agree bit for bit.
    exponent = -math.log(max_period) * torch.arange(half_dim, dtype=torch.float32, device=timesteps.device)
    frequencies = torch.exp(exponent / (half_dim - freq_shift))
    angles = timesteps[:, None].float() * frequencies[None, :]
    if flip_sin_to_cos:
        embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    else:
        embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2 == 1:
        embedding = F.pad(embedding, (0, 1))
    return embedding


class TimestepEmbedding(nn.Module):
    """Sinusoidal timestep features followed by an MLP: ``Linear -> SiLU -> Linear``.

    (B,) timesteps -> (B, embed_dim). The sinusoid is computed in float32 and cast to the MLP's dtype.
    """

    def __init__(
        self,
        *,
        sinusoid_dim: int,
        embed_dim: int,
        flip_sin_to_cos: bool = True,
        freq_shift: float = 0.0,
    ) -> None:
        super().__init__()
        self.sinusoid_dim = sinusoid_dim
        self.flip_sin_to_cos = flip_sin_to_cos
        self.freq_shift = freq_shift
        self.linear_1 = nn.Linear(sinusoid_dim, embed_dim)
        self.linear_2 = nn.Linear(embed_dim, embed_dim)

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        """(B,) -> (B, embed_dim)."""
        sinusoid = sinusoidal_timestep_embedding(
            timesteps, self.sinusoid_dim, flip_sin_to_cos=self.flip_sin_to_cos, freq_shift=self.freq_shift
        )
        return self.linear_2(F.silu(self.linear_1(sinusoid.to(self.linear_1.weight.dtype))))
