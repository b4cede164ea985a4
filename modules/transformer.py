"""Transformer layers over the spatial positions of a feature map, as used inside latent-diffusion UNets.

Parameter names follow the LDM / diffusers convention (``norm1``, ``attn1``, ``proj_in``, ...) so public
checkpoints load through short explicit key maps.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from modules.attention import Attention, AttentionContext


class GEGLUFeedForward(nn.Module):
    """Gated feed-forward: ``out(dropout(a * GELU(g)))`` with ``[a, g] = proj(x)``.

    Shazeer 2020, "GLU Variants Improve Transformer". (B, N, dim) -> (B, N, dim); hidden width ``mult * dim``.
    """

    def __init__(self, *, dim: int, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        inner_dim = dim * mult
        self.proj = nn.Linear(dim, inner_dim * 2)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(inner_dim, dim)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, N, dim) -> (B, N, dim)."""
        value, gate = self.proj(hidden).chunk(2, dim=-1)
        # In place on the fresh GELU output: one (B, N, inner) buffer less (autograd-safe: GELU keeps its input).
        return self.out(self.dropout(F.gelu(gate).mul_(value)))


@dataclass(frozen=True)
class PrecomputedContexts:
    """Cross-attention keys and values of every context-attending ``SpatialTransformer`` of a network.

    Built once by the network (e.g. ``AudioLDMUNet.precompute_context``) for contexts that stay fixed over many
    calls, such as the text states of one sampling run, and passed where a context tensor would go: each
    transformer takes its own entry (one ``AttentionContext`` per layer). Valid while the weights do not change.
    ``batch_size`` is the number of context rows; ``pooled`` is the network's own (batch_size, E) global context
    embedding where it has one (``AudioLDMUNet``'s ``pooled_context_embedding``), else None.
    """

    batch_size: int
    per_transformer: Mapping[nn.Module, tuple[AttentionContext, ...]]
    pooled: torch.Tensor | None = None


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer: self-attention, a second attention, then a GEGLU feed-forward.

    The second attention cross-attends to a context of width ``context_dim``; with ``context_dim=None`` it is a
    second self-attention (the AudioLDM 2 "self-attention only" transformer). Each sub-layer is
    ``x + f(LayerNorm(x))`` (Vaswani et al. 2017; Rombach et al. 2022, latent diffusion).
    """

    def __init__(
        self,
        *,
        dim: int,
        heads: int,
        head_dim: int,
        context_dim: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.context_dim = context_dim
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(query_dim=dim, heads=heads, head_dim=head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(query_dim=dim, context_dim=context_dim, heads=heads, head_dim=head_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = GEGLUFeedForward(dim=dim, dropout=dropout)

    def forward(
        self,
        hidden: torch.Tensor,
        context: torch.Tensor | AttentionContext | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``hidden`` (B, N, dim); ``context`` (B, M, context_dim) or its ``attn2.project_context``, or None;
        ``context_mask`` (B, M) bool or None."""
        hidden = hidden + self.attn1(self.norm1(hidden))
        hidden = hidden + self.attn2(self.norm2(hidden), context=context, context_mask=context_mask)
        return hidden + self.ff(self.norm3(hidden))


class SpatialTransformer(nn.Module):
    """Transformer over the H*W positions of a feature map, with a residual around the whole stack.

    ``x + proj_out(layers(proj_in(GroupNorm(x))))`` with 1x1 convolutions for the projections; the layers see
    (B, H*W, C) tokens. Rombach et al. 2022 (latent diffusion), "SpatialTransformer".
    """

    def __init__(
        self,
        *,
        channels: int,
        heads: int,
        num_layers: int = 1,
        context_dim: int | None = None,
        norm_groups: int = 32,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if channels % heads != 0:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.context_dim = context_dim
        self.norm = nn.GroupNorm(num_groups=norm_groups, num_channels=channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, channels, kernel_size=1)
        self.layers = nn.ModuleList(
            TransformerLayer(
                dim=channels, heads=heads, head_dim=channels // heads, context_dim=context_dim, dropout=dropout
            )
            for _ in range(num_layers)
        )
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def project_context(
        self, context: torch.Tensor, context_mask: torch.Tensor | None = None
    ) -> tuple[AttentionContext, ...]:
        """Cross-attention keys and values of every layer for ``context`` (B, M, context_dim), mask (B, M) or None."""
        if self.context_dim is None:
            raise ValueError("this transformer was built without a context (context_dim=None)")
        return tuple(layer.attn2.project_context(context, context_mask) for layer in self.layers)

    def forward(
        self,
        hidden: torch.Tensor,
        context: torch.Tensor | PrecomputedContexts | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W); ``context`` (B, M, context_dim) and ``context_mask`` (B, M) as in the layer.

        ``context`` may also be ``PrecomputedContexts`` holding this transformer's projected keys and values. The
        output keeps the memory format of ``hidden``.
        """
        if (context is None) != (self.context_dim is None):
            raise ValueError(
                f"this transformer was built with context_dim={self.context_dim}, "
                f"but got {'no context' if context is None else 'a context'}"
            )
        if isinstance(context, PrecomputedContexts):
            if self not in context.per_transformer:
                raise ValueError("these PrecomputedContexts were built by another network")
            layer_contexts = context.per_transformer[self]
        else:
            layer_contexts = (context,) * len(self.layers)
        batch, channels, height, width = hidden.shape
        # For channels-last input (the UNet's layout on large maps) the (B, H*W, C) token views copy nothing.
        tokens = self.proj_in(self.norm(hidden)).permute(0, 2, 3, 1).reshape(batch, height * width, channels)
        tokens = tokens.contiguous()
        for layer, layer_context in zip(self.layers, layer_contexts, strict=True):
            tokens = layer(tokens, context=layer_context, context_mask=context_mask)
        return hidden + self.proj_out(tokens.view(batch, height, width, channels).permute(0, 3, 1, 2))
