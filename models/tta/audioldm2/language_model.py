"""GPT-2 continuation of the projected text prompt into AudioLDM 2's "language of audio" (LOA) vectors.

AudioLDM 2 does not decode tokens: GPT-2 is fed the projected CLAP/T5 sequence as ``inputs_embeds``, its final
hidden state (after the last LayerNorm) at the last position is appended to the input, and this repeats N times
(8 in the public checkpoints); the N appended vectors condition the UNet. Liu et al. 2024, "AudioLDM 2", Sec. 3.2.

This loop talks to ``transformers.GPT2Model.forward`` only (no ``GenerationMixin`` / ``generate()`` helpers, whose
internals change between transformers releases), and passes position ids explicitly: position p is the p-th
vector of the sequence counting padded positions, which is what the public checkpoints were run with.
"""

import torch
from transformers import GPT2Model


def generate_language_of_audio(
    language_model: GPT2Model,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    num_vectors: int = 8,
    use_cache: bool = True,
) -> torch.Tensor:
    """Continue ``inputs_embeds`` (B, L, D) by ``num_vectors`` GPT-2 hidden states; return them as (B, N, D).

    ``attention_mask`` (B, L) holds 1 for real positions and 0 for padding; each generated vector is attended.
    With ``use_cache`` the keys/values of earlier positions are reused so each step feeds one vector; without it
    every step re-feeds the whole sequence (same result, kept as a check and for models without a cache).
    """
    if num_vectors < 1:
        raise ValueError(f"num_vectors must be at least 1, got {num_vectors}")
    batch_size, prompt_length, _ = inputs_embeds.shape
    if attention_mask.shape != (batch_size, prompt_length):
        raise ValueError(
            f"attention_mask {tuple(attention_mask.shape)} does not match inputs_embeds (B, L) = "
            f"{(batch_size, prompt_length)}"
        )
    device = inputs_embeds.device
    sequence = inputs_embeds
    mask = attention_mask
    generated: list[torch.Tensor] = []
    past_key_values = None
    for step in range(num_vectors):
        if use_cache and past_key_values is not None:
            # Only the newest vector is fed; its position is the number of vectors already in the cache.
            step_inputs = sequence[:, -1:]
            first_position = prompt_length + step - 1
        else:
            step_inputs = sequence
            first_position = 0
        positions = torch.arange(first_position, sequence.shape[1], device=device).expand(batch_size, -1)
        output = language_model(
            inputs_embeds=step_inputs,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=past_key_values,
            use_cache=use_cache,
            return_dict=True,
        )
        next_vector = output.last_hidden_state[:, -1:]
        generated.append(next_vector)
        if use_cache:
            past_key_values = output.past_key_values
        sequence = torch.cat([sequence, next_vector.to(sequence.dtype)], dim=1)
        mask = torch.cat([mask, mask.new_ones(batch_size, 1)], dim=1)
    return torch.cat(generated, dim=1)
