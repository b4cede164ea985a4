"""Multi-head attention shared by the VAE mid-block and the UNet transformers.

Parameter names follow the diffusers layout (``to_q``, ``to_k``, ``to_v``, ``to_out``) so public checkpoints load
through near-identity key maps.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Additive bias for masked keys, as in the AudioLDM 2 reference: large enough to silence a key after softmax,
# finite so a row whose keys are all masked still yields a (uniform) average instead of NaN.
MASKED_KEY_BIAS = -10000.0


@dataclass(frozen=True)
class AttentionContext:
    """Keys and values one ``Attention`` projected from a context, reusable while the context and weights stay.

    ``key`` and ``value``: (B, heads, M, head_dim); ``bias``: (B, 1, 1, M) additive key-mask bias, or None.
    """

    key: torch.Tensor
    value: torch.Tensor
    bias: torch.Tensor | None


class Attention(nn.Module):
    """Multi-head attention via ``torch.nn.functional.scaled_dot_product_attention``.

    Self-attention when ``context`` is None, cross-attention otherwise. Vaswani et al. 2017, "Attention Is All
    You Need": softmax(Q K^T / sqrt(head_dim)) V per head.
    """

    def __init__(
        self,
        *,
        query_dim: int,
        context_dim: int | None = None,
        heads: int = 8,
        head_dim: int = 64,
        qkv_bias: bool = False,
        out_bias: bool = True,
    ) -> None:
        super().__init__()
        context_dim = query_dim if context_dim is None else context_dim
        inner_dim = heads * head_dim
        self.heads = heads
        self.head_dim = head_dim
        self.to_q = nn.Linear(query_dim, inner_dim, bias=qkv_bias)
        self.to_k = nn.Linear(context_dim, inner_dim, bias=qkv_bias)
        self.to_v = nn.Linear(context_dim, inner_dim, bias=qkv_bias)
        self.to_out = nn.Linear(inner_dim, query_dim, bias=out_bias)

    def _split_heads(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, heads * head_dim) -> (B, heads, N, head_dim)."""
        batch, length, _ = tokens.shape
        return tokens.view(batch, length, self.heads, self.head_dim).transpose(1, 2)

    def project_context(self, context: torch.Tensor, context_mask: torch.Tensor | None = None) -> AttentionContext:
        """Keys, values and key-mask bias for ``context`` (B, M, context_dim).

        ``context_mask`` (B, M) bool, True = attend; masked keys get an additive bias of -10000. Cross-attention
        to a context that stays fixed over many calls (the text of a sampling run) projects it once with this and
        passes the result to ``forward``.
        """
        if context_mask is not None and context_mask.shape != context.shape[:2]:
            raise ValueError(
                f"context_mask shape {tuple(context_mask.shape)} does not match context (B, M) "
                f"{tuple(context.shape[:2])}"
            )
        key = self._split_heads(self.to_k(context))
        value = self._split_heads(self.to_v(context))
        bias = None
        if context_mask is not None:
            keep = context_mask.to(torch.bool)[:, None, None, :]
            bias = torch.zeros(keep.shape, dtype=key.dtype, device=key.device).masked_fill(~keep, MASKED_KEY_BIAS)
        return AttentionContext(key=key, value=value, bias=bias)

    def forward(
        self,
        hidden: torch.Tensor,
        context: torch.Tensor | AttentionContext | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend from ``hidden`` (B, N, query_dim) to ``context`` (B, M, context_dim), or to itself if None.

        ``context`` may also be an ``AttentionContext`` from ``project_context`` (its mask is built in, so
        ``context_mask`` must then be None). ``context_mask`` (B, M) bool, True = attend. Returns (B, N, query_dim).
        """
        if isinstance(context, AttentionContext):
            if context_mask is not None:
                raise ValueError("a projected AttentionContext already carries its mask; pass context_mask=None")
            if context.key.shape[0] != hidden.shape[0]:
                raise ValueError(
                    f"projected context has batch {context.key.shape[0]}, hidden has {hidden.shape[0]}"
                )
            projected = context
        else:
            projected = self.project_context(hidden if context is None else context, context_mask)
        query = self._split_heads(self.to_q(hidden))
        attended = F.scaled_dot_product_attention(query, projected.key, projected.value, attn_mask=projected.bias)
        # The CPU kernels return (B, heads, N, head_dim) as a view of (B, N, heads, head_dim) memory, so this
        # reshape is free there.
        batch, _, length, _ = attended.shape
        return self.to_out(attended.transpose(1, 2).reshape(batch, length, self.heads * self.head_dim))


class SpatialSelfAttention(nn.Module):
    """Single-head self-attention over all spatial positions of a feature map, with a residual connection.

    Used in the VAE's mid block: ``x + Attention(GroupNorm(x))`` with the (H, W) positions as tokens.
    """

    def __init__(self, *, channels: int, groups: int = 32, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(num_groups=groups, num_channels=channels, eps=eps)
        self.attention = Attention(query_dim=channels, heads=1, head_dim=channels, qkv_bias=True, out_bias=True)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        batch, channels, height, width = hidden.shape
        tokens = self.norm(hidden).view(batch, channels, height * width).transpose(1, 2)
        attended = self.attention(tokens).transpose(1, 2).reshape(batch, channels, height, width)
        return hidden + attended
