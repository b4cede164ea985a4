"""The backbone registry: our classifier from safetensors weights, a local transformers CLAP, clear errors."""

import pytest
import torch
from safetensors.torch import save_file

from evaluation.backbones import BackboneUnavailableError, build_backbone
from evaluation.metrics.distribution import frechet_audio_distance, frechet_distance, inception_score, text_audio_score
from models.tta.audio_classifier.model import AudioClassifier
from tests.fixtures.tiny_audioldm2 import tiny_audioldm2_folder  # noqa: F401  (pytest fixture)
from utils.audio import LogMelSpectrogram

CLASSIFIER_KWARGS = {"n_mels": 64, "num_categories": 5, "attribute_classes": {"pitch": 2}, "channels": (8, 16),
                     "embedding_dim": 12}


@pytest.fixture(scope="module")
def classifier_weights(tmp_path_factory) -> tuple:
    torch.manual_seed(0)
    model = AudioClassifier(**CLASSIFIER_KWARGS).eval()
    path = tmp_path_factory.mktemp("classifier") / "model.safetensors"
    save_file(model.state_dict(), str(path))
    return model, path


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # 3 clips, 12 dimensions: singular covariances
def test_ours_gives_clip_frame_and_class_outputs_of_the_loaded_weights(classifier_weights):
    model, path = classifier_weights
    backbone = build_backbone("ours", path=path, classifier_kwargs=CLASSIFIER_KWARGS)
    assert backbone.provides == {"clip", "frames", "logits"}
    torch.manual_seed(1)
    waveforms = 0.1 * torch.randn(3, 16000)
    features = backbone.audio_features(waveforms, 16000)
    assert features.clip_embeddings.shape == (3, 12)
    assert features.frame_embeddings.shape == (3, 100 // 4, 12)
    assert features.class_logits.shape == (3, 5)
    with torch.no_grad():
        mel = LogMelSpectrogram()(waveforms).transpose(1, 2).unsqueeze(1)
        expected = model(mel)
    torch.testing.assert_close(features.class_logits, expected.category_logits)
    # Metrics accept the features as they come.
    assert frechet_distance(features.clip_embeddings, features.clip_embeddings) == pytest.approx(0.0, abs=1e-6)
    assert frechet_audio_distance(features.frame_embeddings, features.frame_embeddings) == pytest.approx(0.0, abs=1e-6)
    assert 1.0 <= inception_score(features.class_logits.softmax(dim=1), splits=1)[0] <= 5.0


def test_ours_resamples_other_rates(classifier_weights):
    _, path = classifier_weights
    backbone = build_backbone("ours", path=path, classifier_kwargs=CLASSIFIER_KWARGS)
    features = backbone.audio_features(0.1 * torch.randn(2, 32000), 32000)
    assert features.frame_embeddings.shape == (2, 25, 12)


def test_ours_needs_weights_and_arguments(tmp_path, classifier_weights):
    with pytest.raises(FileNotFoundError, match="weights not found"):
        build_backbone("ours", path=tmp_path / "missing.safetensors", classifier_kwargs=CLASSIFIER_KWARGS)
    with pytest.raises(ValueError, match="classifier_kwargs"):
        build_backbone("ours", path=classifier_weights[1])


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
