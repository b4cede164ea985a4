"""Text states for cross-attention: encode each distinct prompt once (optionally through the on-disk cache) and
pad the batch, with a mask that marks the real tokens."""

import torch

from models.text_encoder import FrozenTextEncoder, TextEmbeddingCache


def pad_states(states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Unpadded states [(L_i, D)] -> (padded (B, max L_i, D) with zeros, mask (B, max L_i) bool, True = real)."""
    length = max(item.shape[0] for item in states)
    padded = states[0].new_zeros(len(states), length, states[0].shape[1])
    mask = torch.zeros(len(states), length, dtype=torch.bool, device=states[0].device)
    for row, item in enumerate(states):
        padded[row, : item.shape[0]] = item
        mask[row, : item.shape[0]] = True
    return padded, mask


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
