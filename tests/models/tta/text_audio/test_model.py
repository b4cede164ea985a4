"""The contrastive text–audio model: shapes, unit-norm embeddings, the InfoNCE loss and per-prompt ranking."""

import math

import pytest
import torch

from models.tta.audio_classifier.model import AudioEncoder
from models.tta.text_audio.loss import symmetric_infonce_loss
from models.tta.text_audio.model import TextAudioModel, rank_candidates

N_MELS = 64
TEXT_DIM = 20


def _tiny_model() -> TextAudioModel:
    torch.manual_seed(0)
    return TextAudioModel(n_mels=N_MELS, text_embedding_dim=TEXT_DIM, projection_dim=12, channels=(8, 16),
                          audio_embedding_dim=16)


def test_embeddings_are_unit_norm_in_one_space():
    model = _tiny_model().eval()
    audio, text, scale = model(torch.randn(3, 1, 40, N_MELS), torch.randn(3, TEXT_DIM))
    assert audio.shape == text.shape == (3, 12)
    torch.testing.assert_close(audio.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(3))
    assert scale.item() == pytest.approx(1 / 0.07, rel=1e-5)
    assert isinstance(model.audio_encoder, AudioEncoder)


def test_logit_scale_is_capped_at_100():
    model = _tiny_model()
    with torch.no_grad():
        model.log_logit_scale.fill_(10.0)
    assert model.logit_scale().item() == pytest.approx(100.0)


def test_infonce_of_aligned_embeddings_at_low_temperature_is_near_zero():
    embeddings = torch.eye(8)[:6]  # six orthonormal pairs
    loss = symmetric_infonce_loss(embeddings, embeddings, torch.tensor(100.0))
    assert loss.item() < 1e-6


def test_infonce_matches_hand_computation_and_chance_level():
    # Unrelated pairs (all similarities equal) give log(B) in both directions.
    equal = torch.ones(4, 3) / math.sqrt(3)
    assert symmetric_infonce_loss(equal, equal, torch.tensor(10.0)).item() == pytest.approx(math.log(4))
    # Two pairs, similarities [[1, 0], [0, 1]] at scale 2: -log(e^2 / (e^2 + 1)) per row and column.
    two = torch.eye(2)
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert symmetric_infonce_loss(two, two, torch.tensor(2.0)).item() == pytest.approx(expected, rel=1e-6)


def test_training_aligns_pairs():
    model = _tiny_model().train()
    mels = torch.randn(6, 1, 32, N_MELS)
    texts = torch.randn(6, TEXT_DIM)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = symmetric_infonce_loss(*model(mels, texts))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_rank_candidates_ranks_within_each_prompt():
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # Prompt 0's best candidate is its index 2; prompt 1's is its index 0. Candidates of the other prompt that
    # would win a batch-wide ranking must not leak in.
    audio = torch.tensor([
        [[0.0, 1.0], [0.6, 0.8], [1.0, 0.1]],
        [[0.1, 1.0], [1.0, 0.0], [0.8, 0.6]],
    ])
    assert rank_candidates(text, audio).tolist() == [[2, 1, 0], [0, 2, 1]]
    with pytest.raises(ValueError, match="expected text"):
        rank_candidates(text, audio[0])
