"""GPT-2 "language of audio" loop: KV cache vs no cache, padding semantics, parity with diffusers' loop."""

import pytest
import torch
from transformers import GPT2Config, GPT2Model

from models.tta.audioldm2.key_map import load_diffusers_projection
from models.tta.audioldm2.language_model import generate_language_of_audio
from tests.fixtures.tiny_audioldm2 import (  # noqa: F401  (pytest fixture)
    CLAP_PROJECTION_DIM,
    T5_HIDDEN_DIM,
    load_reference_pipeline,
    tiny_audioldm2_folder,
)


def _gpt2(width: int = 16) -> GPT2Model:
    torch.manual_seed(0)
    # A wide initialisation so the output depends strongly on the inputs and their positions.
    config = GPT2Config(vocab_size=8, n_positions=64, n_embd=width, n_layer=2, n_head=2, initializer_range=0.3)
    return GPT2Model(config).eval()


def _padded_prompt(width: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    inputs_embeds = torch.randn(3, 9, width)
    attention_mask = torch.ones(3, 9, dtype=torch.long)
    attention_mask[1, 5:8] = 0  # padding in the middle, as T5 padding before its end vector
    attention_mask[2, 3:8] = 0
    return inputs_embeds, attention_mask


def test_kv_cache_equals_full_recompute() -> None:
    model = _gpt2()
    inputs_embeds, attention_mask = _padded_prompt()
    with torch.no_grad():
        cached = generate_language_of_audio(model, inputs_embeds, attention_mask, num_vectors=8, use_cache=True)
        recomputed = generate_language_of_audio(model, inputs_embeds, attention_mask, num_vectors=8, use_cache=False)
    assert cached.shape == (3, 8, 16)
    assert (cached - recomputed).abs().max().item() <= 1e-5


def test_first_vector_is_final_hidden_state_and_padding_content_is_ignored_but_counted() -> None:
    model = _gpt2()
    inputs_embeds, attention_mask = _padded_prompt()
    with torch.no_grad():
        generated = generate_language_of_audio(model, inputs_embeds, attention_mask, num_vectors=3)
        last_state = model(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state[:, -1]
        torch.testing.assert_close(generated[:, 0], last_state)

        # What padded positions hold does not matter ...
        scrambled = inputs_embeds.clone()
        scrambled[attention_mask == 0] = 100.0
        scrambled_generated = generate_language_of_audio(model, scrambled, attention_mask, num_vectors=3)
        torch.testing.assert_close(scrambled_generated, generated)

        # ... but they take up positions: dropping the padding of row 2 changes its vectors.
        row = 2
        kept = attention_mask[row].bool()
        unpadded = generate_language_of_audio(
            model, inputs_embeds[row : row + 1, kept], attention_mask[row : row + 1, kept], num_vectors=3
        )
    assert (unpadded[0] - generated[row]).abs().max().item() > 1e-3


def test_rejects_bad_arguments() -> None:
    model = _gpt2()
    inputs_embeds, attention_mask = _padded_prompt()
    with pytest.raises(ValueError, match="num_vectors"):
        generate_language_of_audio(model, inputs_embeds, attention_mask, num_vectors=0)
    with pytest.raises(ValueError, match="attention_mask"):
        generate_language_of_audio(model, inputs_embeds, attention_mask[:, :-1])


def test_matches_diffusers_generate_language_model(tiny_audioldm2_folder) -> None:
    """Same 8 vectors as ``AudioLDM2Pipeline.generate_language_model`` on the tiny checkpoint's own projection."""
    pipeline = load_reference_pipeline(tiny_audioldm2_folder)
    projection = load_diffusers_projection(tiny_audioldm2_folder / "projection_model").eval()
    torch.manual_seed(2)
    clap = torch.nn.functional.normalize(torch.randn(2, 1, CLAP_PROJECTION_DIM), dim=-1)
    t5 = torch.randn(2, 7, T5_HIDDEN_DIM)
    t5_mask = torch.ones(2, 7, dtype=torch.long)
    t5_mask[0, 3:] = 0
    with torch.no_grad():
        prompt, prompt_mask = projection(clap, torch.ones(2, 1, dtype=torch.long), t5, t5_mask)
        expected = pipeline.generate_language_model(prompt, attention_mask=prompt_mask, max_new_tokens=8)
        ours = generate_language_of_audio(pipeline.language_model.base_model, prompt, prompt_mask, num_vectors=8)
    assert ours.shape == expected.shape == (2, 8, prompt.shape[-1])
    assert (ours - expected).abs().max().item() <= 1e-5
