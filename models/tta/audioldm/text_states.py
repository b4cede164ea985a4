"""Text states for cross-attention: encode each distinct prompt once (optionally through the on-disk cache) and
pad the batch, with a mask that marks the real tokens.

`TextConditioning` is what the stage-2 trainer needs from its frozen text side: captions -> one context tensor
(and mask) per UNet cross-attention stream, where rows flagged `unconditional` get the contexts the matching
pipeline builds for an empty negative prompt (caption dropout for classifier-free guidance, Ho & Salimans 2022).
`EncoderConditioning` is stage 2's single stream (MiniLM / T5); AudioLDM 2 fine-tuning plugs in its two streams
(`models.tta.audioldm2.training_conditioning`).
"""

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import torch
from torch import nn

from models.text_encoder import FrozenTextEncoder, TextEmbeddingCache

# The caption that stands for "no text": dropped training captions, and the default negative prompt.
UNCONDITIONAL_CAPTION = ""


class TextContexts(NamedTuple):
    """Cross-attention inputs for B captions: one (B, L_s, D_s) tensor per stream, and per stream a (B, L_s) mask
    (True / 1 = attend) or None (every position attended)."""

    states: list[torch.Tensor]
    masks: list[torch.Tensor | None]


class TextConditioning(Protocol):
    """The frozen text side of a stage-2 trainer (an `nn.Module`, moved with `.to(device)`, never trained)."""

    @property
    def context_dims(self) -> list[int]:
        """The width D_s of each stream, in the order the UNet's cross-attentions consume them."""

    def contexts(self, captions: Sequence[str], *, unconditional: Sequence[bool] | None = None) -> TextContexts:
        """Contexts of B captions; rows with `unconditional[i]` True get the unconditional contexts."""


def pad_states(states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Unpadded states [(L_i, D)] -> (padded (B, max L_i, D) with zeros, mask (B, max L_i) bool, True = real)."""
    length = max(item.shape[0] for item in states)
    padded = states[0].new_zeros(len(states), length, states[0].shape[1])
    mask = torch.zeros(len(states), length, dtype=torch.bool, device=states[0].device)
    for row, item in enumerate(states):
        padded[row, : item.shape[0]] = item
        mask[row, : item.shape[0]] = True
    return padded, mask


def encode_with_negative(
    encoder: FrozenTextEncoder, texts: list[str], negative_text: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Texts (B) and one negative text, for classifier-free guidance -> (states (B, L, D), mask (B, L), negative
    states (1, L, D), negative mask (1, L)), both padded to one length L so their rows stack."""
    states, mask = encode_texts(encoder, texts)
    negative_states, negative_mask = encode_texts(encoder, [negative_text])
    length = max(states.shape[1], negative_states.shape[1])
    return (*pad_to_length(states, mask, length), *pad_to_length(negative_states, negative_mask, length))


def pad_to_length(states: torch.Tensor, mask: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Extend (B, L, D) states and their (B, L) mask with masked zero positions up to `length` >= L."""
    extra = length - states.shape[1]
    if extra <= 0:
        return states, mask
    states = torch.cat([states, states.new_zeros(states.shape[0], extra, states.shape[2])], dim=1)
    mask = torch.cat([mask, mask.new_zeros(mask.shape[0], extra)], dim=1)
    return states, mask


def encode_texts(
    encoder: FrozenTextEncoder, texts: list[str], cache: TextEmbeddingCache | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts (B) -> (states (B, L, D) float32, mask (B, L) bool). Each distinct text is encoded once; with a
    cache, texts already on disk are not encoded at all and new ones are added."""
    device = next(encoder.parameters()).device
    distinct = list(dict.fromkeys(texts))
    found: dict[str, torch.Tensor] = {}
    if cache is not None:
        for text in distinct:
            states = cache.get(text)
            if states is not None:
                found[text] = states.to(device)
    missing = [text for text in distinct if text not in found]
    if missing:
        states, mask = encoder(missing)
        for row, text in enumerate(missing):
            found[text] = states[row, mask[row]]
            if cache is not None:
                cache.put(text, found[text])
    return pad_states([found[text] for text in texts])


class EncoderConditioning(nn.Module):
    """Stage 2's conditioning: one stream, the frozen encoder's last hidden states with the padding mask; the
    unconditional caption is the empty string, encoded like any other (the pipeline's default negative prompt)."""

    def __init__(self, *, encoder: FrozenTextEncoder, cache: TextEmbeddingCache | None = None):
        super().__init__()
        self.encoder = encoder
        self.cache = cache

    @property
    def context_dims(self) -> list[int]:
        return [self.encoder.hidden_size]

    def contexts(self, captions: Sequence[str], *, unconditional: Sequence[bool] | None = None) -> TextContexts:
        flags = [False] * len(captions) if unconditional is None else list(unconditional)
        if len(flags) != len(captions):
            raise ValueError(f"got {len(flags)} unconditional flags for {len(captions)} captions")
        texts = [UNCONDITIONAL_CAPTION if flag else caption for caption, flag in zip(captions, flags)]
        states, mask = encode_texts(self.encoder, texts, self.cache)
        return TextContexts([states], [mask])
