"""The backbone registry: our classifier from its checkpoint, a local transformers CLAP, clear errors."""

import math

import pytest
import torch

from evaluation.backbones import BackboneUnavailableError, build_backbone
from evaluation.metrics.distribution import frechet_audio_distance, frechet_distance, inception_score, text_audio_score
from models.tta.audio_classifier.config import AudioClassifierExperiment, build_classifier
from models.tta.audio_classifier.labels import CATEGORY_LABELS
from tests.fixtures.tiny_audioldm2 import tiny_audioldm2_folder  # noqa: F401  (pytest fixture)
from utils.audio import LogMelSpectrogram
from utils.checkpoint import CheckpointError, save_inference_checkpoint
from utils.config import config_to_dict, load_config


@pytest.fixture(scope="module")
def classifier_checkpoint(tmp_path_factory) -> tuple:
    """An AudioClassifier checkpoint (random weights) as the classifier stage writes it: weights + config."""
    config = load_config("config/audio_classifier.json", AudioClassifierExperiment,
                         ["model.channels=[8, 16]", "model.embedding_dim=12", "data.segment_frames=100"])
    torch.manual_seed(0)
    model = build_classifier(config.model, n_mels=64).eval()
    path = tmp_path_factory.mktemp("classifier") / "step_00000001"
    save_inference_checkpoint(path, models={"classifier": model}, config=config_to_dict(config), step=1)
    return model, path


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # 3 clips, 12 dimensions: singular covariances
def test_ours_gives_clip_frame_and_class_outputs_of_the_loaded_weights(classifier_checkpoint):
    model, path = classifier_checkpoint
    backbone = build_backbone("ours", path=path)
    assert backbone.provides == {"clip", "frames", "logits", "attributes"}
    torch.manual_seed(1)
    waveforms = 0.1 * torch.randn(3, 16000)
    features = backbone.audio_features(waveforms, 16000)
    assert features.clip_embeddings.shape == (3, 12)
    assert features.frame_embeddings.shape == (3, 100 // 4, 12)
    assert features.class_logits.shape == (3, len(CATEGORY_LABELS))
    with torch.no_grad():
        mel = LogMelSpectrogram()(waveforms).transpose(1, 2).unsqueeze(1)
        expected = model(mel)
    torch.testing.assert_close(features.class_logits, expected.category_logits)
    torch.testing.assert_close(features.attribute_logits["pitch"], expected.attribute_logits["pitch"])
    # Metrics accept the features as they come.
    assert frechet_distance(features.clip_embeddings, features.clip_embeddings) == pytest.approx(0.0, abs=1e-6)
    assert frechet_audio_distance(features.frame_embeddings, features.frame_embeddings) == pytest.approx(0.0, abs=1e-6)
    assert 1.0 <= inception_score(features.class_logits.softmax(dim=1), splits=1)[0] <= len(CATEGORY_LABELS)


def test_ours_resamples_and_sees_clips_at_the_trained_length(classifier_checkpoint):
    model, path = classifier_checkpoint
    backbone = build_backbone("ours", path=path)
    features = backbone.audio_features(0.1 * torch.randn(2, 32000), 32000)
    assert features.frame_embeddings.shape == (2, 25, 12), "2 s at 32 kHz: resampled, cut to 100 frames"
    short = 0.1 * torch.randn(1, 8000)
    with torch.no_grad():
        mel = LogMelSpectrogram()(short)
        padded = torch.nn.functional.pad(mel, (0, 50), value=math.log(1e-5)).transpose(1, 2).unsqueeze(1)
        expected = model(padded).category_logits
    torch.testing.assert_close(backbone.audio_features(short, 16000).class_logits, expected)


def test_ours_needs_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="neither a checkpoint folder"):
        build_backbone("ours", path=tmp_path / "missing")


def test_transformers_clap_from_an_audioldm2_folder(tiny_audioldm2_folder):  # noqa: F811
    backbone = build_backbone("transformers_clap", path=tiny_audioldm2_folder)
    assert backbone.provides == {"clip", "text"}
    torch.manual_seed(0)
    features = backbone.audio_features(0.1 * torch.randn(2, 16000), 16000)
    assert features.frame_embeddings is None and features.class_logits is None
    text = backbone.text_embeddings(["a dog barking", "rain on the roof"])
    assert features.clip_embeddings.shape == text.shape == (2, 24)
    torch.testing.assert_close(features.clip_embeddings.norm(dim=-1), torch.ones(2))
    assert -1.0 <= text_audio_score(text, features.clip_embeddings) <= 1.0
    # Deterministic: clips are cut to the extractor's maximum length by us, not at random by the extractor.
    long_clip = 0.1 * torch.randn(1, 16000 * 11)
    torch.testing.assert_close(backbone.audio_features(long_clip, 16000).clip_embeddings,
                               backbone.audio_features(long_clip, 16000).clip_embeddings)


def test_transformers_clap_folder_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="CLAP folder not found"):
        build_backbone("transformers_clap", path=tmp_path / "nowhere")


def test_unshipped_backbone_says_what_to_use():
    with pytest.raises(BackboneUnavailableError, match="VGGish is not available.*fadtk"):
        build_backbone("vggish", path="unused")


def test_unknown_backbone_lists_the_names():
    with pytest.raises(ValueError, match="choose one of ours, panns_cnn14, transformers_clap, vggish"):
        build_backbone("openl3", path="unused")
