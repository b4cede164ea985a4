"""Shapes and basic behaviour of the CNN audio classifier and its shared encoder."""

import pytest
import torch

from models.tta.audio_classifier.model import AudioClassifier, AudioEncoder

N_MELS = 64


def _tiny_classifier() -> AudioClassifier:
    torch.manual_seed(0)
    return AudioClassifier(
        n_mels=N_MELS, num_categories=11, attribute_classes={"pitch": 2, "count": 4, "tempo": 2},
        channels=(8, 16, 32), embedding_dim=24,
    )


def test_output_shapes():
    model = _tiny_classifier().eval()
    output = model(torch.randn(3, 1, 100, N_MELS))
    assert output.clip_embedding.shape == (3, 24)
    assert output.frame_embeddings.shape == (3, 100 // 8, 24)
    assert output.category_logits.shape == (3, 11)
    assert {name: logits.shape for name, logits in output.attribute_logits.items()} == {
        "pitch": (3, 2), "count": (3, 4), "tempo": (3, 2)
    }


def test_eval_output_of_a_clip_does_not_depend_on_the_batch():
    model = _tiny_classifier().eval()
    mels = torch.randn(4, 1, 64, N_MELS)
    with torch.no_grad():
        batch = model(mels).category_logits
        single = model(mels[2:3]).category_logits
    torch.testing.assert_close(batch[2:3], single, atol=1e-5, rtol=1e-5)


def test_training_step_reduces_the_loss():
    model = _tiny_classifier().train()
    mels = torch.randn(8, 1, 32, N_MELS)
    labels = torch.arange(8) % 11
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(mels).category_logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_bad_inputs_are_named():
    encoder = AudioEncoder(n_mels=N_MELS, channels=(8, 16), embedding_dim=8)
    with pytest.raises(ValueError, match=r"\(B, 1, T, 64\)"):
        encoder(torch.randn(2, 1, 32, 80))
    with pytest.raises(ValueError, match="shorter"):
        encoder(torch.randn(2, 1, 2, N_MELS))
    with pytest.raises(ValueError, match="too small"):
        AudioEncoder(n_mels=8, channels=(8, 16, 32, 64))
