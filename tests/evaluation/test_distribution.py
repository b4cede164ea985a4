"""Set-level metrics against closed forms and hand computations."""

import math

import numpy as np
import pytest
import torch

from evaluation.metrics.distribution import (
    frechet_audio_distance,
    frechet_distance,
    frechet_distance_from_statistics,
    gaussian_statistics,
    inception_score,
    kl_sigmoid,
    kl_softmax,
    paired_kl_divergence,
    text_audio_score,
)


def _diagonal_gaussian_fd(mean_1, variances_1, mean_2, variances_2) -> float:
    """Closed form for diagonal covariances: ||mu1 - mu2||^2 + sum (sqrt(v1) - sqrt(v2))^2."""
    return float(np.sum((mean_1 - mean_2) ** 2) + np.sum((np.sqrt(variances_1) - np.sqrt(variances_2)) ** 2))


def test_frechet_distance_of_identical_sets_is_zero():
    embeddings = np.random.default_rng(0).standard_normal((500, 16))
    assert abs(frechet_distance(embeddings, embeddings)) < 1e-6
    assert abs(frechet_distance(torch.from_numpy(embeddings).float(), embeddings.astype(np.float32))) < 1e-4


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    mean_1, mean_2 = rng.standard_normal(6), rng.standard_normal(6)
    variances_1, variances_2 = rng.uniform(0.5, 2.0, 6), rng.uniform(0.5, 2.0, 6)
    distance = frechet_distance_from_statistics(mean_1, np.diag(variances_1), mean_2, np.diag(variances_2))
    assert distance == pytest.approx(_diagonal_gaussian_fd(mean_1, variances_1, mean_2, variances_2), rel=1e-9)


def test_frechet_distance_grows_with_mean_shift_as_its_square():
    # Identical samples shifted by `shift` along every one of D axes: covariances are equal, so FD = D * shift^2.
    embeddings = np.random.default_rng(1).standard_normal((400, 8))
    distances = [frechet_distance(embeddings, embeddings + shift) for shift in (0.5, 1.0, 2.0)]
    assert distances == pytest.approx([8 * 0.25, 8 * 1.0, 8 * 4.0], rel=1e-6)


def test_frechet_distance_with_fewer_samples_than_dimensions_is_finite():
    rng = np.random.default_rng(2)
    distance = frechet_distance(rng.standard_normal((10, 32)), rng.standard_normal((10, 32)))
    assert math.isfinite(distance) and distance > 0


def test_frechet_audio_distance_pools_frames_of_every_clip():
    rng = np.random.default_rng(3)
    clips = [rng.standard_normal((length, 4)) for length in (30, 50, 20)]
    assert frechet_audio_distance(clips, clips) == pytest.approx(0.0, abs=1e-6)
    shifted = [clip + 1.0 for clip in clips]
    assert frechet_audio_distance(clips, shifted) == pytest.approx(4.0, rel=1e-6)
    batch = rng.standard_normal((3, 40, 4))
    assert frechet_audio_distance(batch, batch + 1.0) == pytest.approx(
        frechet_distance(batch.reshape(-1, 4), batch.reshape(-1, 4) + 1.0)
    )


def test_statistics_reject_bad_shapes():
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_statistics(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="differ in dimension"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))


def test_kl_of_identical_posteriors_is_zero():
    logits = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    # The 1e-6 inside the log (AudioLDM's) leaves a residual of at most about K * 1e-6.
    assert abs(kl_softmax(logits, logits)) < 1e-5
    assert abs(kl_sigmoid(logits, logits)) < 1e-5


def test_kl_matches_hand_computation():
    p = np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]])
    q = np.array([[0.25, 0.5, 0.25], [0.1, 0.1, 0.8]])
    by_hand = np.mean([
        0.5 * np.log(0.5 / 0.25) + 0.25 * np.log(0.25 / 0.5) + 0.0,
        0.0 + 0.8 * np.log(0.8 / 0.1) + 0.1 * np.log(0.1 / 0.8),
    ])
    assert paired_kl_divergence(p, q) == pytest.approx(by_hand, abs=1e-5)
    # Through logits: log-probabilities are valid logits of the same softmax distribution.
    assert kl_softmax(np.log(p), np.log(q)) == pytest.approx(by_hand, abs=1e-5)
    # Sigmoid variant: per-class probabilities sigmoid(0) = 0.5 vs sigmoid(log 3) = 0.75.
    assert kl_sigmoid(np.zeros((1, 2)), np.full((1, 2), np.log(3.0))) == pytest.approx(
        2 * 0.5 * np.log(0.5 / 0.75), abs=1e-5
    )


def test_inception_score_of_confident_uniform_predictions_is_number_of_classes():
    classes = 7
    one_hot = np.eye(classes)[np.arange(70) % classes]
    mean, std = inception_score(one_hot, splits=1)
    assert mean == pytest.approx(classes, rel=1e-9) and std == 0.0
    mean, _ = inception_score(one_hot, splits=10, shuffle_seed=0)
    assert 1.0 < mean <= classes
    uniform = np.full((20, classes), 1.0 / classes)
    assert inception_score(uniform, splits=2)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="splits"):
        inception_score(one_hot, splits=0)


def test_text_audio_score_is_mean_cosine():
    text = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    audio = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    expected = (1.0 + 1.0 / math.sqrt(2.0)) / 2
    assert text_audio_score(text, audio) == pytest.approx(expected)
    assert text_audio_score(text, audio, scale=100.0) == pytest.approx(100 * expected)
    assert text_audio_score(text, -text) == pytest.approx(-1.0)
