"""PANNs CNN14 (16 kHz), the audio tagger behind AudioLDM's FD, KL and IS, for inference only.

Kong et al. 2020, "PANNs: Large-Scale Pretrained Audio Neural Networks for Audio Pattern Recognition". The
network takes 16 kHz waveforms: power STFT (Hann 512, hop 160, centred, reflect padding) -> 64 Slaney mel bins
over 50-8000 Hz -> 10 log10(max(mel, 1e-10)) -> BatchNorm over mel bins -> six double-conv blocks (64 ... 2048
channels, 2x2 average pooling except the last) -> mean over frequency -> max + mean over time -> fc1 + ReLU (the
2048-d embedding of AudioLDM's FD) -> fc_audioset (527 AudioSet logits, read with softmax for KL/IS and sigmoid
for KL_Sigmoid). Parameter names are those of the public checkpoint `Cnn14_16k_mAP=0.438.pth` (Zenodo record
3987831), which users download themselves; dropout and SpecAugment only act in training and are left out.
"""

from pathlib import Path

import librosa
import torch
import torch.nn.functional as F
from torch import nn

from models.tta.audio_classifier.model import ConvBlock

# Checkpoint entries that hold the reference's STFT and mel matrices as weights; this module computes them itself.
FRONT_END_PREFIXES = ("spectrogram_extractor.", "logmel_extractor.")
POWER_FLOOR = 1e-10


class PannsCnn14(nn.Module):
    """Waveforms (B, S) at `sample_rate` -> (embedding (B, 2048), AudioSet logits (B, num_classes))."""

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 160,
        n_mels: int = 64,
        fmin: float = 50.0,
        fmax: float = 8000.0,
        num_classes: int = 527,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        mel_basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        self.register_buffer("mel_basis", torch.from_numpy(mel_basis).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.bn0 = nn.BatchNorm2d(n_mels)
        widths = (1, 64, 128, 256, 512, 1024, 2048)
        for index in range(6):
            block = ConvBlock(in_channels=widths[index], out_channels=widths[index + 1], pool=index < 5)
            self.add_module(f"conv_block{index + 1}", block)
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, num_classes)

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(B, S) -> log-mel power in dB (B, 1, 1 + S // hop, n_mels)."""
        spectrum = torch.stft(waveforms, self.n_fft, hop_length=self.hop_length, window=self.window, center=True,
                              pad_mode="reflect", return_complex=True)
        mel = torch.matmul(self.mel_basis, spectrum.abs().square())
        return 10.0 * torch.log10(mel.clamp(min=POWER_FLOOR)).transpose(1, 2).unsqueeze(1)

    def forward(self, waveforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.bn0(self.log_mel(waveforms).transpose(1, 3)).transpose(1, 3)
        for index in range(6):
            hidden = getattr(self, f"conv_block{index + 1}")(hidden)
        hidden = hidden.mean(dim=3)
        pooled = hidden.amax(dim=2) + hidden.mean(dim=2)
        embedding = F.relu(self.fc1(pooled))
        return embedding, self.fc_audioset(embedding)


def load_panns_cnn14(checkpoint_path: str | Path) -> PannsCnn14:
    """CNN14 in eval mode with the weights of a PANNs checkpoint (.pth holding {"model": state_dict, ...}).

    The official file also pickles its training sampler's numpy state, so it is read with full unpickling:
    load only a checkpoint you trust (the one from the PANNs Zenodo record).
    """
    checkpoint_path = Path(checkpoint_path)
    if not checkpoint_path.is_file():
        raise FileNotFoundError(
            f"PANNs checkpoint not found: {checkpoint_path}; download Cnn14_16k_mAP=0.438.pth from Zenodo record "
            "3987831 yourself and point the config at it"
        )
    checkpoint = torch.load(str(checkpoint_path), map_location="cpu", weights_only=False)
    state_dict = checkpoint["model"] if "model" in checkpoint else checkpoint
    model = PannsCnn14()
    model.load_state_dict({key: value for key, value in state_dict.items() if not key.startswith(FRONT_END_PREFIXES)})
    return model.eval()
