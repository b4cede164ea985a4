"""Down, mid and up blocks of the latent-diffusion UNet (AudioLDM / AudioLDM 2 layout).

Every ResNet of a block that carries attention is followed by an ``AttentionGroup``: one spatial transformer per
entry of ``cross_attention_dims``, applied in order (``None`` = self-attention only, an int = cross-attention to
the context of that width).
"""

import itertools
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as activation_checkpoint

from modules.resnet import Downsample2D, ResnetBlock2D, Upsample2D
from modules.transformer import PrecomputedContexts, SpatialTransformer

# Per-entry conditioning as routed by the UNet: one tensor, PrecomputedContexts or None per entry of
# cross_attention_dims.
EntryContexts = Sequence[torch.Tensor | PrecomputedContexts | None]


def run_module(module: Callable[..., torch.Tensor], *args: torch.Tensor | None, checkpoint: bool) -> torch.Tensor:
    """Call ``module(*args)``, recomputing its activations in the backward pass when ``checkpoint`` is set.

    Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost". Skipped when gradients are off.
    """
    if checkpoint and torch.is_grad_enabled():
        return activation_checkpoint(module, *args, use_reentrant=False)
    return module(*args)


def repeat_rows(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    """Tile ``tensor`` (B, ...) along the batch to ``rows`` (a multiple of B): row i repeats row i mod B.

    Keeps the memory format (channels-last stays channels-last). A no-op when it already has ``rows`` rows.
    """
    if tensor.shape[0] == rows:
        return tensor
    return torch.cat([tensor] * (rows // tensor.shape[0]))


def context_rows(context: torch.Tensor | PrecomputedContexts) -> int:
    """Batch size of a context stream or of precomputed contexts."""
    return context.batch_size if isinstance(context, PrecomputedContexts) else context.shape[0]


class AttentionGroup(nn.Module):
    """One ``SpatialTransformer`` per entry of ``cross_attention_dims``, applied in sequence to (B, C, H, W)."""

    def __init__(
        self,
        *,
        channels: int,
        cross_attention_dims: Sequence[int | None],
        heads: int,
        transformer_layers: int,
        norm_groups: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.transformers = nn.ModuleList(
            SpatialTransformer(
                channels=channels,
                heads=heads,
                num_layers=transformer_layers,
                context_dim=context_dim,
                norm_groups=norm_groups,
                dropout=dropout,
            )
            for context_dim in cross_attention_dims
        )
        # Transformers before this index read no context: their output depends on ``hidden`` alone.
        self.first_context_index = next(
            (index for index, dim in enumerate(cross_attention_dims) if dim is not None), len(cross_attention_dims)
        )

    def forward(
        self,
        hidden: torch.Tensor,
        contexts: EntryContexts,
        context_masks: EntryContexts,
        *,
        checkpoint: bool,
        start: int = 0,
    ) -> torch.Tensor:
        """(B, C, H, W) -> (B', C, H, W); ``contexts[i]`` (B', M_i, D_i) or None feeds transformer i.

        ``hidden`` may have fewer rows than the contexts (a sample shared by several context rows, see
        ``AudioLDMUNet.forward``): it is tiled to the contexts' rows before the first transformer that reads one.
        ``start`` > 0: ``hidden`` is the output of transformers ``[:start]`` (run earlier), so they are skipped.
        """
        routed = zip(self.transformers, contexts, context_masks, strict=True)
        for transformer, context, context_mask in itertools.islice(routed, start, None):
            if context is not None:
                hidden = repeat_rows(hidden, context_rows(context))
            hidden = run_module(transformer, hidden, context, context_mask, checkpoint=checkpoint)
        return hidden

    def before_first_context(self, hidden: torch.Tensor, *, checkpoint: bool) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W): the transformers ``[:first_context_index]``, which read no context."""
        for transformer in self.transformers[: self.first_context_index]:
            hidden = run_module(transformer, hidden, None, None, checkpoint=checkpoint)
        return hidden


def _attention_groups(
    channels: int,
    num_layers: int,
    cross_attention_dims: Sequence[int | None] | None,
    heads: int,
    transformer_layers: int,
    norm_groups: int,
    dropout: float,
) -> nn.ModuleList | None:
    """One AttentionGroup per ResNet of a block, or None for a block without attention."""
    if cross_attention_dims is None:
        return None
    return nn.ModuleList(
        AttentionGroup(
            channels=channels,
            cross_attention_dims=cross_attention_dims,
            heads=heads,
            transformer_layers=transformer_layers,
            norm_groups=norm_groups,
            dropout=dropout,
        )
        for _ in range(num_layers)
    )


class DownBlock(nn.Module):
    """``num_layers`` ResNets (each optionally followed by an AttentionGroup), then an optional stride-2 conv.

    ``cross_attention_dims=None`` builds a plain ResNet block (diffusers ``DownBlock2D``), otherwise the
    ``CrossAttnDownBlock2D`` equivalent.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        num_layers: int,
        add_downsample: bool,
        cross_attention_dims: Sequence[int | None] | None,
        heads: int,
        transformer_layers: int,
        norm_groups: int,
        norm_eps: float,
        dropout: float,
        downsample_padding: int,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(
                in_channels=in_channels if index == 0 else out_channels,
                out_channels=out_channels,
                temb_channels=temb_channels,
                groups=norm_groups,
                eps=norm_eps,
                dropout=dropout,
            )
            for index in range(num_layers)
        )
        self.attentions = _attention_groups(
            out_channels, num_layers, cross_attention_dims, heads, transformer_layers, norm_groups, dropout
        )
        self.downsample = (
            Downsample2D(channels=out_channels, padding=downsample_padding) if add_downsample else None
        )

    def forward(
        self,
        hidden: torch.Tensor,
        temb: torch.Tensor,
        contexts: EntryContexts,
        context_masks: EntryContexts,
        *,
        checkpoint: bool,
        from_trunk: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, C_in, H, W) (or (B, C_out, H, W) ``from_trunk``) -> (B', C_out, H', W') and the skip tensors, one
        per ResNet plus the downsampled one.

        ``temb`` has the contexts' rows B', a tiling of the B sample rows (see ``AttentionGroup``), so its first
        ``hidden.shape[0]`` rows belong to ``hidden`` before and after the tiling. ``from_trunk``: ``hidden`` is
        the output of ``trunk``, which ran the first ResNet and the transformers before the first context reader;
        the block goes on from there.
        """
        skips = []
        for index, resnet in enumerate(self.resnets):
            resumed = from_trunk and index == 0
            if not resumed:
                hidden = run_module(resnet, hidden, temb[: hidden.shape[0]], checkpoint=checkpoint)
            if self.attentions is not None:
                start = self.attentions[index].first_context_index if resumed else 0
                hidden = self.attentions[index](hidden, contexts, context_masks, checkpoint=checkpoint, start=start)
            skips.append(hidden)
        if self.downsample is not None:
            hidden = self.downsample(hidden)
            skips.append(hidden)
        return hidden, skips

    def trunk(self, hidden: torch.Tensor, temb: torch.Tensor, *, checkpoint: bool) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W): the first ResNet and its transformers before the first context
        reader, the part of this attention block that is the same for every context; ``temb`` (B, E)."""
        if self.attentions is None:
            raise ValueError("a block without attention reads no context: run it whole")
        hidden = run_module(self.resnets[0], hidden, temb, checkpoint=checkpoint)
        return self.attentions[0].before_first_context(hidden, checkpoint=checkpoint)


class MidBlock(nn.Module):
    """ResNet -> AttentionGroup -> ResNet at the lowest resolution (diffusers ``UNetMidBlock2DCrossAttn``)."""

    def __init__(
        self,
        *,
        channels: int,
        temb_channels: int,
        cross_attention_dims: Sequence[int | None],
        heads: int,
        transformer_layers: int,
        norm_groups: int,
        norm_eps: float,
        dropout: float,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(
                in_channels=channels,
                out_channels=channels,
                temb_channels=temb_channels,
                groups=norm_groups,
                eps=norm_eps,
                dropout=dropout,
            )
            for _ in range(2)
        )
        self.attention = AttentionGroup(
            channels=channels,
            cross_attention_dims=cross_attention_dims,
            heads=heads,
            transformer_layers=transformer_layers,
            norm_groups=norm_groups,
            dropout=dropout,
        )

    def forward(
        self,
        hidden: torch.Tensor,
        temb: torch.Tensor,
        contexts: EntryContexts,
        context_masks: EntryContexts,
        *,
        checkpoint: bool,
    ) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        hidden = run_module(self.resnets[0], hidden, temb, checkpoint=checkpoint)
        hidden = self.attention(hidden, contexts, context_masks, checkpoint=checkpoint)
        return run_module(self.resnets[1], hidden, temb, checkpoint=checkpoint)


class UpBlock(nn.Module):
    """Mirror of ``DownBlock``: each ResNet first concatenates one skip tensor, then an optional upsampler.

    ``skip_channels`` lists the channels of the skips this block consumes, in the order it consumes them (the
    reverse of the order the down path produced them).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        skip_channels: Sequence[int],
        temb_channels: int,
        add_upsample: bool,
        cross_attention_dims: Sequence[int | None] | None,
        heads: int,
        transformer_layers: int,
        norm_groups: int,
        norm_eps: float,
        dropout: float,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(
                in_channels=(in_channels if index == 0 else out_channels) + skip,
                out_channels=out_channels,
                temb_channels=temb_channels,
                groups=norm_groups,
                eps=norm_eps,
                dropout=dropout,
            )
            for index, skip in enumerate(skip_channels)
        )
        self.attentions = _attention_groups(
            out_channels, len(skip_channels), cross_attention_dims, heads, transformer_layers, norm_groups, dropout
        )
        self.upsample = Upsample2D(channels=out_channels) if add_upsample else None

    def forward(
        self,
        hidden: torch.Tensor,
        skips: list[torch.Tensor],
        temb: torch.Tensor,
        contexts: EntryContexts,
        context_masks: EntryContexts,
        *,
        checkpoint: bool,
    ) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H', W'), popping one skip per ResNet from the end of ``skips``.

        The upsampler interpolates to the size of the next skip still in ``skips`` (so odd sizes round-trip).
        """
        for index, resnet in enumerate(self.resnets):
            hidden = torch.cat([hidden, skips.pop()], dim=1)
            hidden = run_module(resnet, hidden, temb, checkpoint=checkpoint)
            if self.attentions is not None:
                hidden = self.attentions[index](hidden, contexts, context_masks, checkpoint=checkpoint)
        if self.upsample is not None:
            hidden = self.upsample(hidden, output_size=tuple(skips[-1].shape[-2:]))
        return hidden
