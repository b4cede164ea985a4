"""models.text_encoder: the offline MiniLM default, padding masks, truncation and the embedding cache."""

import pytest
import torch

from models.text_encoder import BUILTIN_MINILM, TextEmbeddingCache, load_text_encoder, resolve_text_encoder_path


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder(BUILTIN_MINILM, max_length=16)


def test_builtin_minilm_loads_offline_and_masks_padding(minilm):
    states, mask = minilm(["a dog barks", "three short high beeps, then a low hum"])
    assert states.shape[0] == 2 and states.shape[2] == minilm.hidden_size == 384
    assert mask.dtype == torch.bool and mask[1].all() and not mask[0].all()
    alone, alone_mask = minilm(["a dog barks"])
    assert torch.allclose(states[0, : alone.shape[1]], alone[0], atol=1e-5)
    assert all(not p.requires_grad for p in minilm.parameters())
    minilm.train()
    assert not minilm.model.training


def test_long_prompt_is_truncated_with_a_warning(minilm):
    with pytest.warns(UserWarning, match="truncated to 16 tokens"):
        states, mask = minilm(["a dog barks " * 20])
    assert states.shape[1] == 16


def test_unknown_builtin_name_is_an_error():
    with pytest.raises(ValueError, match="unknown built-in text encoder"):
        resolve_text_encoder_path("builtin:nope")


def test_cache_round_trip_and_keys(tmp_path):
    cache = TextEmbeddingCache(tmp_path, "enc-a", 16)
    assert cache.get("hello") is None
    cache.put("hello", torch.ones(3, 4))
    assert torch.equal(cache.get("hello"), torch.ones(3, 4))
    assert TextEmbeddingCache(tmp_path, "enc-b", 16).get("hello") is None
    next(cache.directory.glob("*.safetensors")).write_bytes(b"corrupt")
    assert cache.get("hello") is None
