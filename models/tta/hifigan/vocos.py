"""Vocos generator (Siuzdak 2023, "Vocos: Closing the gap between time-domain and Fourier-based neural vocoders").

A ConvNeXt backbone (Liu et al. 2022) runs at the mel frame rate, with no upsampling convolutions; a linear head
predicts each frame's STFT log-magnitude and phase, and an inverse STFT turns them into the waveform. Every
convolution sees frames, not samples, so it is far cheaper than HiFi-GAN on a CPU, and because the output is
built in the Fourier domain the model can reproduce steady tones and true silence early in training.

The inverse STFT frames the audio exactly as the mel front end (`utils.audio.LogMelSpectrogram`) does: frame t
covers the n_fft samples centred on sample t × hop + hop / 2 ("same" padding of (n_fft − hop) / 2, as in Vocos),
so frame t of the input mel describes the same audio as frame t of the output's mel, and the output has exactly
frames × hop samples.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from utils.audio import inverse_mel_basis

# Vocos clips the predicted magnitude at 1e2 before building the spectrum; clamping the log-magnitude at log(1e2)
# is the same forward value without an overflowing exp.
_MAX_LOG_MAGNITUDE = math.log(1e2)
# The floor of the magnitude prior, the AudioLDM front end's log clamp.
_MIN_PRIOR_MAGNITUDE = 1e-5
_EMBED_KERNEL_SIZE = 7
_DEPTHWISE_KERNEL_SIZE = 7


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (kernel 7) → LayerNorm → Linear (dim → intermediate) → GELU → Linear (→ dim), scaled by a
    learned per-channel factor (layer scale, initialised to `layer_scale_init`), plus a skip (Liu et al. 2022).

    Shapes: (B, dim, frames) → (B, dim, frames).
    """

    def __init__(self, *, dim: int, intermediate_dim: int, layer_scale_init: float):
        super().__init__()
        self.depthwise = nn.Conv1d(
            dim, dim, _DEPTHWISE_KERNEL_SIZE, padding=_DEPTHWISE_KERNEL_SIZE // 2, groups=dim
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.expand = nn.Linear(dim, intermediate_dim)
        self.project = nn.Linear(intermediate_dim, dim)
        self.layer_scale = nn.Parameter(torch.full((dim,), layer_scale_init))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        update = self.depthwise(hidden).transpose(1, 2)
        update = self.project(F.gelu(self.expand(self.norm(update))))
        return hidden + (self.layer_scale * update).transpose(1, 2)


class ISTFTHead(nn.Module):
    """Linear (dim → n_fft + 2) → per-frame log-magnitude and phase of n_fft // 2 + 1 bins → inverse STFT.

    With `demodulated_phase` the second half of the projection is each frame's phase relative to the bin's
    centre frequency (its phase minus 2π · bin · hop / n_fft per frame elapsed, as a phase vocoder demodulates),
    not the absolute phase Vocos predicts. A steady tone is then a constant output instead of a wrapped phase
    ramp, which is hard for a convolutional backbone blind to absolute time.

    Shapes: (B, frames, dim) → (B, frames × hop_length). The spectrum and the inverse STFT are computed in fp32
    even under bf16 autocast: the exp of the magnitude and the overlap-add need the precision.
    """

    def __init__(self, *, dim: int, n_fft: int, hop_length: int, demodulated_phase: bool = False):
        super().__init__()
        if (n_fft - hop_length) % 2 or n_fft < 2 * hop_length:
            raise ValueError(
                f"n_fft - hop_length must be even and n_fft at least 2 × hop_length ({2 * hop_length}), got n_fft "
                f"{n_fft}"
            )
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.demodulated_phase = demodulated_phase
        self.project = nn.Linear(dim, n_fft + 2)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, hidden: torch.Tensor, log_magnitude_prior: torch.Tensor | None = None) -> torch.Tensor:
        """Frames (B, frames, dim) → waveform; `log_magnitude_prior` (B, n_fft // 2 + 1, frames), if given, is
        added to the predicted log-magnitudes, which then learn a correction to it."""
        log_magnitude, phase = self.project(hidden).transpose(1, 2).chunk(2, dim=1)
        if log_magnitude_prior is not None:
            log_magnitude = log_magnitude.float() + log_magnitude_prior
        if self.demodulated_phase:
            phase = phase.float() + self.centre_phase(phase.shape[-1]).to(phase.device)
        return self.synthesize(log_magnitude, phase)

    def centre_phase(self, frames: int) -> torch.Tensor:
        """Phase (n_fft // 2 + 1, frames) of every bin's centre frequency at every frame, 2π · bin · hop · frame /
        n_fft modulo 2π (integer arithmetic keeps it exact on long clips)."""
        bin_index = torch.arange(self.n_fft // 2 + 1)
        frame_index = torch.arange(frames)
        cycles = (bin_index[:, None] * self.hop_length * frame_index[None, :]) % self.n_fft
        return cycles.float() * (2 * math.pi / self.n_fft)

    def synthesize(self, log_magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """Log-magnitude and phase (B, n_fft // 2 + 1, frames) → waveform (B, frames × hop_length): the inverse of
        the front end's Hann-windowed STFT with this head's n_fft and hop, frames centred on t × hop + hop / 2
        (log-magnitude clamped at log 100, as Vocos clips the magnitude).

        Windowed overlap-add divided by the summed squared window (Griffin & Lim 1984); torch.istft cannot trim
        "same" padding, so the overlap-add is written out with `fold`."""
        frames = log_magnitude.shape[-1]
        padding = (self.n_fft - self.hop_length) // 2
        fold = dict(output_size=(1, (frames - 1) * self.hop_length + self.n_fft), kernel_size=(1, self.n_fft),
                    stride=(1, self.hop_length))
        with torch.autocast(device_type=log_magnitude.device.type, enabled=False):
            magnitude = log_magnitude.float().clamp(max=_MAX_LOG_MAGNITUDE).exp()
            segments = torch.fft.irfft(torch.polar(magnitude, phase.float()), self.n_fft, dim=1)
            segments = segments * self.window[:, None]
            waveform = F.fold(segments, **fold).flatten(1)
            envelope = F.fold(self.window.square()[None, :, None].expand(1, -1, frames), **fold).flatten(1)
            end = padding + frames * self.hop_length
            return waveform[:, padding:end] / envelope[:, padding:end]


class VocosGenerator(nn.Module):
    """Log-mel (B, frames, n_mels) → waveform (B, frames × hop_length); the Vocos mel vocoder (Siuzdak 2023).

    Conv1d embedding (kernel 7) → LayerNorm → `num_layers` ConvNeXt blocks → LayerNorm → `ISTFTHead` (with
    `demodulated_phase`, phases relative to the bins' centre frequencies, see there). It has no weight
    normalisation: LayerNorm keeps the activations in range, as in the paper.

    With `magnitude_prior` the head's log-magnitudes are corrections to log |M⁺ exp(mel)|, the linear
    magnitudes the pseudo-inverse M⁺ of the front end's mel filters (Slaney, for `sample_rate`, `fmin`, `fmax`
    and the head's n_fft) recovers from the input, as FreeV does (Lv et al. 2024): the network starts from the
    right spectral envelope and learns phase and detail.

    `mean` and `scale` are stored like `HifiGanGenerator`'s (checkpoints carry them) and used only when
    `normalize_before` is set: the input is then standardised as (mel - mean) / scale.
    """

    def __init__(
        self,
        *,
        n_mels: int = 64,
        dim: int = 512,
        intermediate_dim: int = 1536,
        num_layers: int = 8,
        n_fft: int = 640,
        hop_length: int = 160,
        demodulated_phase: bool = False,
        magnitude_prior: bool = False,
        sample_rate: int = 16000,
        fmin: float = 0.0,
        fmax: float = 8000.0,
        normalize_before: bool = False,
    ):
        super().__init__()
        if min(n_mels, dim, intermediate_dim, num_layers, hop_length) < 1:
            raise ValueError(
                f"n_mels, dim, intermediate_dim, num_layers and hop_length must be >= 1, got {n_mels}, {dim}, "
                f"{intermediate_dim}, {num_layers}, {hop_length}"
            )
        self.normalize_before = normalize_before
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("scale", torch.ones(n_mels))
        self.embed = nn.Conv1d(n_mels, dim, _EMBED_KERNEL_SIZE, padding=_EMBED_KERNEL_SIZE // 2)
        self.norm_in = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim=dim, intermediate_dim=intermediate_dim, layer_scale_init=1.0 / num_layers)
            for _ in range(num_layers)
        )
        self.norm_out = nn.LayerNorm(dim, eps=1e-6)
        self.head = ISTFTHead(dim=dim, n_fft=n_fft, hop_length=hop_length, demodulated_phase=demodulated_phase)
        self.magnitude_prior = magnitude_prior
        if magnitude_prior:
            inverse = torch.from_numpy(
                inverse_mel_basis(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
            ).float()
            # Derived from the constructor arguments, so not stored in checkpoints.
            self.register_buffer("inverse_mel_filters", inverse, persistent=False)
        self.apply(_init_weights)

    @property
    def hop_length(self) -> int:
        """Waveform samples per mel frame (the inverse STFT's hop)."""
        return self.head.hop_length

    def num_samples(self, mel_frames: int) -> int:
        """Exact output length for `mel_frames` input frames."""
        return mel_frames * self.hop_length

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, frames, n_mels) → waveform (B, frames × hop_length)."""
        if mel.dim() != 3 or mel.shape[-1] != self.mean.shape[0]:
            raise ValueError(f"expected mel of shape (B, frames, {self.mean.shape[0]}), got {tuple(mel.shape)}")
        prior = self._log_magnitude_prior(mel) if self.magnitude_prior else None
        if self.normalize_before:
            mel = (mel - self.mean) / self.scale
        hidden = self.embed(mel.transpose(1, 2))
        hidden = self.norm_in(hidden.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            hidden = block(hidden)
        return self.head(self.norm_out(hidden.transpose(1, 2)), prior)

    def _log_magnitude_prior(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, frames, n_mels) → log |M⁺ exp(mel)| (B, n_fft // 2 + 1, frames), floored at the front
        end's usual 1e-5, in fp32."""
        with torch.autocast(device_type=mel.device.type, enabled=False):
            magnitude = torch.matmul(self.inverse_mel_filters, mel.float().exp().transpose(1, 2))
            return magnitude.abs().clamp(min=_MIN_PRIOR_MAGNITUDE).log()


def _init_weights(module: nn.Module) -> None:
    """Vocos' initialisation: truncated normal (std 0.02) convolution and linear weights, zero biases."""
    if isinstance(module, (nn.Conv1d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
