"""Latent-diffusion UNet conditioned on one or more text context streams (AudioLDM and AudioLDM 2).

One implementation serves both systems through ``cross_attention_dims``, the list of spatial transformers that
follows every ResNet of an attention-carrying block:

- AudioLDM-style stage 2 with one text encoder, e.g. ``[384]``: one transformer with self-attention and
  cross-attention to the (masked) text states;
- AudioLDM 2, ``[None, 768, 1024]``: a transformer with two self-attentions, one cross-attending to the 8 GPT-2
  "language of audio" vectors, one cross-attending to the Flan-T5 states (Liu et al. 2023, AudioLDM 2).

``pooled_context_embedding`` optionally adds a global text signal as well: the masked mean of the first context
stream, through an MLP, added to the timestep embedding that every ResNet reads (the pooled text embedding of
Imagen, Saharia et al. 2022, and SDXL). Off in the public checkpoints.

Numerically identical to diffusers ``AudioLDM2UNet2DConditionModel`` on the same weights (see ``unet_key_map``).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.tta.audioldm.unet_blocks import AttentionGroup, DownBlock, MidBlock, UpBlock, repeat_rows
from modules.embeddings import TimestepEmbedding
from modules.transformer import PrecomputedContexts


def _to_preferred_format(hidden: torch.Tensor) -> torch.Tensor:
    """``hidden`` (B, C, H, W) channels-last if it has at least as many positions as channels, else NCHW.

    oneDNN's channels-last convolutions are up to 2x faster than NCHW on the large, narrow maps of the first
    levels and slower on the small, wide maps of the last (measured on an AVX-512/AMX CPU in fp32 and bf16; at
    10.24 s, 128 ch x 256x16 and 256 ch x 128x8 run channels-last, 384 ch x 64x4 and 640 ch x 32x2 NCHW). A no-op
    when ``hidden`` already has that layout.
    """
    _, channels, height, width = hidden.shape
    layout = torch.channels_last if height * width >= channels else torch.contiguous_format
    return hidden.contiguous(memory_format=layout)


@dataclass(frozen=True)
class UNetTrunk:
    """The part of an ``AudioLDMUNet`` call before its first context read, for calls that share it.

    Made by ``AudioLDMUNet.trunk`` for a sample and timestep, and passed to ``forward`` with that sample and
    timestep and any contexts: calls that differ only in their contexts (the two halves of classifier-free
    guidance run as two calls) then compute it once. ``hidden`` (B, C, H, W), possibly channels-last: the input of
    the first transformer that reads a context; ``skips``: the skip tensors made before it, each (B, C_i, H_i,
    W_i); ``temb`` (B, E): the time embedding, in the sample's dtype.
    """

    hidden: torch.Tensor
    skips: tuple[torch.Tensor, ...]
    temb: torch.Tensor


class AudioLDMUNet(nn.Module):
    """Denoiser ``(noisy latent, timestep, text contexts) -> (B, C_out, H, W)`` (Rombach et al. 2022, LDM).

    Down path: block ``i`` has ``layers_per_block`` ResNets at ``block_out_channels[i]`` channels, each followed by
    an attention group when ``attention_blocks[i]``; all blocks but the last halve H and W. A mid block (ResNet,
    attention group, ResNet), then a mirrored up path with ``layers_per_block + 1`` ResNets per block, each
    concatenating one skip. Latents of any H and W work: the up path interpolates to the skips' sizes.

    Large feature maps run channels-last inside (see ``_to_preferred_format``); inputs and outputs are ordinary
    (B, C, H, W) tensors.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        block_out_channels: Sequence[int],
        attention_blocks: Sequence[bool],
        cross_attention_dims: Sequence[int | None],
        layers_per_block: int = 2,
        transformer_layers_per_block: int = 1,
        num_attention_heads: int = 8,
        norm_groups: int = 32,
        norm_eps: float = 1e-5,
        timestep_sinusoid_dim: int | None = None,
        time_embed_dim: int | None = None,
        flip_sin_to_cos: bool = True,
        freq_shift: float = 0.0,
        downsample_padding: int = 1,
        dropout: float = 0.0,
        use_gradient_checkpointing: bool = False,
        pooled_context_embedding: bool = False,
    ) -> None:
        """Build the UNet.

        Args:
            block_out_channels: channels per resolution level, e.g. (128, 256, 384, 640).
            attention_blocks: per down block, whether its ResNets are followed by attention groups; the up path
                mirrors it. The mid block always has one.
            cross_attention_dims: one spatial transformer per entry after each ResNet of an attention block;
                ``None`` = self-attention only, an int = cross-attention to a context stream of that width. The
                non-None entries, in order, consume ``forward``'s ``contexts``.
            transformer_layers_per_block: transformer layers inside each spatial transformer.
            num_attention_heads: heads of every attention; head width = channels / heads.
            timestep_sinusoid_dim: width of the sinusoidal timestep features (default ``block_out_channels[0]``).
            time_embed_dim: width of the time embedding MLP (default ``4 * block_out_channels[0]``).
            dropout: dropout inside ResNets and transformer feed-forwards (0 in the public checkpoints).
            use_gradient_checkpointing: recompute ResNet and transformer activations in the backward pass to save
                memory; the ``use_gradient_checkpointing`` attribute can be changed after construction.
            pooled_context_embedding: also condition every ResNet on the first context stream: its masked mean
                (B, D) -> Linear -> SiLU -> Linear, added to the time embedding. Text then reaches the layers
                before the first cross-attention too, and a short training run learns to follow it sooner.
        """
        super().__init__()
        num_blocks = len(block_out_channels)
        if num_blocks == 0 or len(attention_blocks) != num_blocks:
            raise ValueError(
                f"attention_blocks ({len(attention_blocks)}) must have one entry per block_out_channels ({num_blocks})"
            )
        if len(cross_attention_dims) == 0:
            raise ValueError("cross_attention_dims needs at least one entry (None for a self-attention transformer)")
        for channels in block_out_channels:
            if channels % norm_groups != 0 or channels % num_attention_heads != 0:
                raise ValueError(
                    f"block channels {channels} must be divisible by norm_groups ({norm_groups}) and "
                    f"num_attention_heads ({num_attention_heads})"
                )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.cross_attention_dims = list(cross_attention_dims)
        self.use_gradient_checkpointing = use_gradient_checkpointing
        timestep_sinusoid_dim = timestep_sinusoid_dim or block_out_channels[0]
        time_embed_dim = time_embed_dim or 4 * block_out_channels[0]
        attention_args = dict(
            heads=num_attention_heads,
            transformer_layers=transformer_layers_per_block,
            norm_groups=norm_groups,
            dropout=dropout,
        )
        resnet_args = dict(temb_channels=time_embed_dim, norm_eps=norm_eps)

        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1)
        self.time_embedding = TimestepEmbedding(
            sinusoid_dim=timestep_sinusoid_dim,
            embed_dim=time_embed_dim,
            flip_sin_to_cos=flip_sin_to_cos,
            freq_shift=freq_shift,
        )
        self.pooled_context_mlp: nn.Sequential | None = None
        if pooled_context_embedding:
            if not self.context_dims:
                raise ValueError("pooled_context_embedding needs a context stream in cross_attention_dims")
            self.pooled_context_mlp = nn.Sequential(
                nn.Linear(self.context_dims[0], time_embed_dim), nn.SiLU(), nn.Linear(time_embed_dim, time_embed_dim)
            )

        skip_channels = [block_out_channels[0]]
        self.down_blocks = nn.ModuleList()
        for index, channels in enumerate(block_out_channels):
            is_last = index == num_blocks - 1
            self.down_blocks.append(
                DownBlock(
                    in_channels=block_out_channels[max(index - 1, 0)],
                    out_channels=channels,
                    num_layers=layers_per_block,
                    add_downsample=not is_last,
                    cross_attention_dims=cross_attention_dims if attention_blocks[index] else None,
                    downsample_padding=downsample_padding,
                    **resnet_args,
                    **attention_args,
                )
            )
            skip_channels += [channels] * (layers_per_block + (0 if is_last else 1))

        self.mid_block = MidBlock(
            channels=block_out_channels[-1],
            cross_attention_dims=cross_attention_dims,
            **resnet_args,
            **attention_args,
        )

        self.up_blocks = nn.ModuleList()
        previous_channels = block_out_channels[-1]
        for index in reversed(range(num_blocks)):
            consumed = [skip_channels.pop() for _ in range(layers_per_block + 1)]
            self.up_blocks.append(
                UpBlock(
                    in_channels=previous_channels,
                    out_channels=block_out_channels[index],
                    skip_channels=consumed,
                    add_upsample=index > 0,
                    cross_attention_dims=cross_attention_dims if attention_blocks[index] else None,
                    **resnet_args,
                    **attention_args,
                )
            )
            previous_channels = block_out_channels[index]

        self.norm_out = nn.GroupNorm(num_groups=norm_groups, num_channels=block_out_channels[0], eps=norm_eps)
        self.conv_out = nn.Conv2d(block_out_channels[0], out_channels, kernel_size=3, padding=1)

    @property
    def downsample_factor(self) -> int:
        """How much the down blocks shrink each side of the latent map (2 per down block but the last). Maps of
        other sizes round-trip, but are padded differently at the borders than the training crops were."""
        return 2 ** (len(self.down_blocks) - 1)

    @property
    def context_dims(self) -> list[int]:
        """Widths of the context streams ``forward`` expects, in order."""
        return [dim for dim in self.cross_attention_dims if dim is not None]

    def precompute_context(
        self, contexts: Sequence[torch.Tensor], context_masks: Sequence[torch.Tensor | None] | None = None
    ) -> PrecomputedContexts:
        """Project the context streams into every cross-attention's keys and values, once.

        Cross-attention keys and values depend only on the contexts and the weights, so a sampling run computes
        them once instead of at every step and passes the result to ``forward`` as ``contexts`` (with
        ``context_masks=None``). Run it under the same autocast as the steps (if any): the outputs then equal those
        from the raw contexts. ``contexts`` and ``context_masks`` as in ``forward``.
        """
        if not self.context_dims:
            raise ValueError("this UNet has no context streams to precompute")
        batch = contexts[0].shape[0] if len(contexts) > 0 else 0
        entry_contexts, entry_masks = self._route_contexts(batch, contexts, context_masks)
        per_transformer = {}
        for group in self.modules():
            if isinstance(group, AttentionGroup):
                for transformer, context, mask in zip(group.transformers, entry_contexts, entry_masks, strict=True):
                    if context is not None:
                        per_transformer[transformer] = transformer.project_context(context, mask)
        pooled = self._pooled_embedding(contexts, context_masks)
        return PrecomputedContexts(batch_size=batch, per_transformer=per_transformer, pooled=pooled)

    def _pooled_embedding(
        self, contexts: Sequence[torch.Tensor], context_masks: Sequence[torch.Tensor | None] | None
    ) -> torch.Tensor | None:
        """(B', time_embed_dim) embedding of the first stream's masked mean, or None without
        ``pooled_context_embedding``."""
        if self.pooled_context_mlp is None:
            return None
        states = contexts[0]
        mask = None if context_masks is None else context_masks[0]
        if mask is None:
            pooled = states.mean(dim=1)
        else:
            weights = mask.to(states.dtype)[..., None]
            pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return self.pooled_context_mlp(pooled)

    @property
    def trunk_block(self) -> int | None:
        """Index of the down block holding the first context read, or None (no down block reads a context, or
        the pooled context embedding makes every layer read the text): where ``trunk`` ends."""
        if self.pooled_context_mlp is not None or not self.context_dims:
            return None
        return next((index for index, block in enumerate(self.down_blocks) if block.attentions), None)

    def _time_embedding(self, timestep: torch.Tensor | float | int, batch: int, device: torch.device) -> torch.Tensor:
        """(batch, time_embed_dim) embedding of a scalar or (batch,) ``timestep``."""
        timesteps = torch.as_tensor(timestep, device=device)
        if timesteps.ndim > 1 or timesteps.numel() not in (1, batch):
            raise ValueError(f"timestep must be a scalar or have shape ({batch},), got {tuple(timesteps.shape)}")
        return self.time_embedding(timesteps.reshape(-1).expand(batch))

    def trunk(self, sample: torch.Tensor, timestep: torch.Tensor | float | int) -> UNetTrunk:
        """Run the layers before the first context read on ``sample`` (B, C_in, H, W) at ``timestep``.

        ``forward(sample, timestep, contexts, trunk=...)`` then goes on from there for any contexts: the same
        outputs as without the trunk. Raises ValueError where ``trunk_block`` is None.
        """
        fork = self.trunk_block
        if fork is None:
            raise ValueError("this UNet has no context-free trunk to share (no context streams, no down block "
                             "reads one, or pooled_context_embedding is on)")
        checkpoint = self.use_gradient_checkpointing
        temb = self._time_embedding(timestep, sample.shape[0], sample.device).to(sample.dtype)
        hidden = self.conv_in(_to_preferred_format(sample))
        skips = [hidden]
        for block in self.down_blocks[:fork]:  # no attention: these read no context
            hidden, block_skips = block(_to_preferred_format(hidden), temb, (), (), checkpoint=checkpoint)
            skips += block_skips
        hidden = self.down_blocks[fork].trunk(_to_preferred_format(hidden), temb, checkpoint=checkpoint)
        return UNetTrunk(hidden=hidden, skips=tuple(skips), temb=temb)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        contexts: Sequence[torch.Tensor] | PrecomputedContexts = (),
        context_masks: Sequence[torch.Tensor | None] | None = None,
        trunk: UNetTrunk | None = None,
    ) -> torch.Tensor:
        """Predict noise (or v, or x0: whatever it was trained for) for ``sample`` at ``timestep``.

        Args:
            sample: (B, C_in, H, W) noisy latents, any H and W. The contexts may have B' = n * B rows instead of B:
                context row i then sees sample row i mod B, as if ``sample`` were repeated n times, and the layers
                before the first cross-attention run once on the B rows (classifier-free guidance: the
                [negative, positive] context halves share one latent); with ``pooled_context_embedding`` every
                layer reads the text, so the sample is tiled to B' rows first.
            timestep: (B,) or scalar diffusion step (integer or fractional).
            contexts: one (B', M_i, D_i) tensor per non-None entry of ``cross_attention_dims``, in order; or the
                ``precompute_context`` of such tensors.
            context_masks: None, or one (B', M_i) mask per context (True/1 = attend) or None for "all valid".
                Must be None with precomputed contexts (their masks are built in).
            trunk: ``self.trunk(sample, timestep)`` for this sample and timestep, whose layers (those before the
                first context read) are then not run again and ``timestep`` is not read; None runs them all.

        Returns:
            (B', C_out, H, W).
        """
        batch = sample.shape[0]
        if isinstance(contexts, PrecomputedContexts):
            rows = contexts.batch_size
            entry_contexts, entry_masks = self._route_precomputed(contexts, context_masks)
            pooled = contexts.pooled
        else:
            rows = contexts[0].shape[0] if len(contexts) > 0 else batch
            entry_contexts, entry_masks = self._route_contexts(rows, contexts, context_masks)
            pooled = self._pooled_embedding(contexts, context_masks)
        if rows % batch != 0:
            raise ValueError(f"the contexts' {rows} rows are not a multiple of the sample's {batch}")
        if (pooled is None) != (self.pooled_context_mlp is None):
            raise ValueError("these PrecomputedContexts were built by another network (pooled embedding mismatch)")
        fork = None if trunk is None else self.trunk_block
        if trunk is not None:
            if fork is None:
                raise ValueError("this UNet has no context-free trunk, so it takes no trunk (pass trunk=None)")
            if trunk.temb.shape[0] != batch or trunk.skips[0].shape[-2:] != sample.shape[-2:]:
                raise ValueError(
                    f"the trunk was made for a sample of {trunk.temb.shape[0]} rows and size "
                    f"{tuple(trunk.skips[0].shape[-2:])}, not this one ({batch} rows, {tuple(sample.shape[-2:])})"
                )
            temb = repeat_rows(trunk.temb, rows)
        else:
            temb = repeat_rows(self._time_embedding(timestep, batch, sample.device), rows)
        if pooled is not None:
            # Every layer now depends on the text, so the guidance halves cannot share the first layers.
            temb = temb + pooled
            sample = repeat_rows(sample, rows)
        temb = temb.to(sample.dtype)
        checkpoint = self.use_gradient_checkpointing

        if trunk is None:
            first_block, hidden = 0, self.conv_in(_to_preferred_format(sample))
            skips = [hidden]
        else:
            first_block, hidden, skips = fork, trunk.hidden, list(trunk.skips)
        for index, block in enumerate(self.down_blocks[first_block:], start=first_block):
            resumed = trunk is not None and index == first_block
            if not resumed:  # a trunk's hidden is mid-block, in the layout the block's own layers left it
                hidden = _to_preferred_format(hidden)
            hidden, block_skips = block(
                hidden, temb, entry_contexts, entry_masks, checkpoint=checkpoint, from_trunk=resumed
            )
            skips += block_skips
        # A shared sample is tiled where the first context is read (AttentionGroup); skips taken before that, or
        # the whole map if no down block reads a context, are tiled here.
        skips = [repeat_rows(skip, rows) for skip in skips]
        hidden = _to_preferred_format(repeat_rows(hidden, rows))
        hidden = self.mid_block(hidden, temb, entry_contexts, entry_masks, checkpoint=checkpoint)
        for block in self.up_blocks:
            hidden = _to_preferred_format(hidden)
            hidden = block(hidden, skips, temb, entry_contexts, entry_masks, checkpoint=checkpoint)
        hidden = self.conv_out(F.silu(self.norm_out(_to_preferred_format(hidden))))
        return hidden.contiguous()

    def _route_precomputed(
        self, precomputed: PrecomputedContexts, context_masks: Sequence[torch.Tensor | None] | None
    ) -> tuple[list[PrecomputedContexts | None], list[None]]:
        """Hand ``precomputed`` to every context entry of ``cross_attention_dims`` (each transformer picks its own)."""
        if context_masks is not None:
            raise ValueError("precomputed contexts carry their masks; pass context_masks=None")
        routed = [None if dim is None else precomputed for dim in self.cross_attention_dims]
        return routed, [None] * len(routed)

    def _route_contexts(
        self,
        batch: int,
        contexts: Sequence[torch.Tensor],
        context_masks: Sequence[torch.Tensor | None] | None,
    ) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None]]:
        """Check the context streams and spread them over the entries of ``cross_attention_dims``."""
        expected = self.context_dims
        if len(contexts) != len(expected):
            raise ValueError(f"expected {len(expected)} context tensors of widths {expected}, got {len(contexts)}")
        masks = [None] * len(contexts) if context_masks is None else list(context_masks)
        if len(masks) != len(contexts):
            raise ValueError(f"got {len(masks)} context masks for {len(contexts)} contexts")
        for index, (context, mask, width) in enumerate(zip(contexts, masks, expected, strict=True)):
            if context.ndim != 3 or context.shape[0] != batch or context.shape[2] != width:
                raise ValueError(f"context {index} must be ({batch}, M, {width}), got {tuple(context.shape)}")
            if mask is not None and tuple(mask.shape) != tuple(context.shape[:2]):
                raise ValueError(f"context mask {index} must be {tuple(context.shape[:2])}, got {tuple(mask.shape)}")
        bool_masks = [None if mask is None else mask.to(torch.bool) for mask in masks]
        routed_contexts: list[torch.Tensor | None] = []
        routed_masks: list[torch.Tensor | None] = []
        stream = 0
        for dim in self.cross_attention_dims:
            if dim is None:
                routed_contexts.append(None)
                routed_masks.append(None)
            else:
                routed_contexts.append(contexts[stream])
                routed_masks.append(bool_masks[stream])
                stream += 1
        return routed_contexts, routed_masks
