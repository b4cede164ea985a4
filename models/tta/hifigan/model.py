"""HiFi-GAN generator (Kong et al. 2020) laid out like AudioLDM 2's vocoder (transformers `SpeechT5HifiGan`).

A log-mel spectrogram (B, frames, n_mels) is turned into a waveform (B, samples) by a stack of transposed
convolutions, each followed by a multi-receptive-field fusion (MRF): the mean of several residual blocks with
different kernel sizes and dilations. Weight normalisation (Salimans & Kingma 2016) is applied while training
and folded back into plain weights for inference; the public AudioLDM 2 checkpoint stores plain weights.
"""

from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

# The official HiFi-GAN code draws the weights of the upsampling, residual and output convolutions from N(0, 0.01).
_CONV_INIT_STD = 0.01
# The official HiFi-GAN (and SpeechT5HifiGan) uses PyTorch's default slope 0.01, not the configured one, before the
# output convolution; kept so the public weights reproduce their waveforms.
_OUTPUT_LEAKY_RELU_SLOPE = 0.01
_IO_KERNEL_SIZE = 7


def _same_padding(kernel_size: int, dilation: int) -> int:
    """Padding that keeps the length of a stride-1 convolution with an odd kernel."""
    return dilation * (kernel_size - 1) // 2


class ResidualBlock(nn.Module):
    """HiFi-GAN "ResBlock1": for each dilation, leaky ReLU → dilated conv → leaky ReLU → conv, plus a skip.

    Shapes: (B, C, S) → (B, C, S).
    """

    def __init__(self, *, channels: int, kernel_size: int, dilations: Sequence[int], leaky_relu_slope: float):
        super().__init__()
        self.leaky_relu_slope = leaky_relu_slope
        self.dilated_convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_same_padding(kernel_size, d))
            for d in dilations
        )
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=_same_padding(kernel_size, 1)) for _ in dilations
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        for dilated_conv, conv in zip(self.dilated_convs, self.convs):
            update = dilated_conv(F.leaky_relu(hidden, self.leaky_relu_slope))
            update = conv(F.leaky_relu(update, self.leaky_relu_slope))
            hidden = hidden + update
        return hidden


class UpsampleStage(nn.Module):
    """Leaky ReLU → transposed conv (×`rate` in time, channels halved) → MRF (mean of the residual blocks).

    Shapes: (B, C, L) → (B, C // 2, L' ≈ L × rate); see `HifiGanGenerator.num_samples` for the exact length.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        rate: int,
        kernel_size: int,
        resblock_kernel_sizes: Sequence[int],
        resblock_dilation_sizes: Sequence[Sequence[int]],
        leaky_relu_slope: float,
    ):
        super().__init__()
        self.leaky_relu_slope = leaky_relu_slope
        out_channels = in_channels // 2
        self.upsample = nn.ConvTranspose1d(
            in_channels, out_channels, kernel_size, stride=rate, padding=(kernel_size - rate) // 2
        )
        self.resblocks = nn.ModuleList(
            ResidualBlock(
                channels=out_channels, kernel_size=k, dilations=dilations, leaky_relu_slope=leaky_relu_slope
            )
            for k, dilations in zip(resblock_kernel_sizes, resblock_dilation_sizes)
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = self.upsample(F.leaky_relu(hidden, self.leaky_relu_slope))
        fused = self.resblocks[0](hidden)
        for resblock in self.resblocks[1:]:
            fused = fused + resblock(hidden)
        return fused / len(self.resblocks)


class HifiGanGenerator(nn.Module):
    """Log-mel (B, frames, n_mels) → waveform in [-1, 1] (B, samples); HiFi-GAN V1 generator (Kong et al. 2020).

    `samples` is `num_samples(frames)`: about `frames × hop_length`, a few samples more with the AudioLDM 2
    kernels (160 × frames + 32), because the first transposed conv (kernel 16, stride 5) adds one frame's tail.
    Callers that need exactly `frames × hop_length` samples (training against a clip) crop the end.

    `mean` and `scale` are always stored (as in SpeechT5HifiGan, so checkpoints round-trip) but only used when
    `normalize_before` is set: the input is then standardised as (mel - mean) / scale.
    """

    def __init__(
        self,
        *,
        model_in_dim: int = 64,
        upsample_initial_channel: int = 1024,
        upsample_rates: Sequence[int] = (5, 4, 2, 2, 2),
        upsample_kernel_sizes: Sequence[int] = (16, 16, 8, 4, 4),
        resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
        resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        leaky_relu_slope: float = 0.1,
        normalize_before: bool = False,
        use_weight_norm: bool = False,
    ):
        super().__init__()
        if len(upsample_rates) != len(upsample_kernel_sizes) or not upsample_rates:
            raise ValueError(
                f"upsample_rates {tuple(upsample_rates)} and upsample_kernel_sizes {tuple(upsample_kernel_sizes)} "
                "must be non-empty and of equal length"
            )
        if len(resblock_kernel_sizes) != len(resblock_dilation_sizes) or not resblock_kernel_sizes:
            raise ValueError(
                f"resblock_kernel_sizes {tuple(resblock_kernel_sizes)} and resblock_dilation_sizes "
                f"{tuple(map(tuple, resblock_dilation_sizes))} must be non-empty and of equal length"
            )
        if upsample_initial_channel % 2 ** len(upsample_rates):
            raise ValueError(
                f"upsample_initial_channel={upsample_initial_channel} must be divisible by "
                f"2 ** {len(upsample_rates)} (channels halve at every upsampling stage)"
            )
        for rate, kernel_size in zip(upsample_rates, upsample_kernel_sizes):
            if kernel_size < rate:
                raise ValueError(f"upsample kernel {kernel_size} must be at least its rate {rate}")
        self.upsample_rates = tuple(upsample_rates)
        self.normalize_before = normalize_before
        self.register_buffer("mean", torch.zeros(model_in_dim))
        self.register_buffer("scale", torch.ones(model_in_dim))

        self.conv_in = nn.Conv1d(
            model_in_dim, upsample_initial_channel, _IO_KERNEL_SIZE, padding=_same_padding(_IO_KERNEL_SIZE, 1)
        )
        self.stages = nn.ModuleList(
            UpsampleStage(
                in_channels=upsample_initial_channel // 2**i,
                rate=rate,
                kernel_size=kernel_size,
                resblock_kernel_sizes=resblock_kernel_sizes,
                resblock_dilation_sizes=resblock_dilation_sizes,
                leaky_relu_slope=leaky_relu_slope,
            )
            for i, (rate, kernel_size) in enumerate(zip(upsample_rates, upsample_kernel_sizes))
        )
        final_channels = upsample_initial_channel // 2 ** len(upsample_rates)
        self.conv_out = nn.Conv1d(final_channels, 1, _IO_KERNEL_SIZE, padding=_same_padding(_IO_KERNEL_SIZE, 1))

        for stage in self.stages:
            stage.apply(_init_conv)
        _init_conv(self.conv_out)
        if use_weight_norm:
            self.apply_weight_norm()

    @property
    def hop_length(self) -> int:
        """Waveform samples per mel frame: the product of the upsampling rates."""
        hop = 1
        for rate in self.upsample_rates:
            hop *= rate
        return hop

    def num_samples(self, mel_frames: int) -> int:
        """Exact output length for `mel_frames` input frames (transposed-conv arithmetic, stage by stage)."""
        length = mel_frames
        for stage in self.stages:
            conv = stage.upsample
            length = (length - 1) * conv.stride[0] - 2 * conv.padding[0] + conv.kernel_size[0]
        return length

    def _convolutions(self) -> Iterator[nn.Module]:
        """Every convolution that carries weight normalisation during training."""
        yield self.conv_in
        for stage in self.stages:
            yield stage.upsample
            for resblock in stage.resblocks:
                yield from resblock.dilated_convs
                yield from resblock.convs
        yield self.conv_out

    @property
    def has_weight_norm(self) -> bool:
        return parametrize.is_parametrized(self.conv_in, "weight")

    def apply_weight_norm(self) -> None:
        """Reparametrise every convolution weight as g · v / ‖v‖ (output unchanged up to rounding)."""
        if self.has_weight_norm:
            raise RuntimeError("weight norm is already applied")
        for conv in self._convolutions():
            weight_norm(conv)

    def remove_weight_norm(self) -> None:
        """Fold g · v / ‖v‖ back into plain weights, for inference and for export to the public layout."""
        if not self.has_weight_norm:
            raise RuntimeError("weight norm is not applied")
        for conv in self._convolutions():
            parametrize.remove_parametrizations(conv, "weight")

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, frames, n_mels) → waveform (B, num_samples(frames)) in [-1, 1]."""
        if mel.dim() != 3 or mel.shape[-1] != self.mean.shape[0]:
            raise ValueError(f"expected mel of shape (B, frames, {self.mean.shape[0]}), got {tuple(mel.shape)}")
        if self.normalize_before:
            mel = (mel - self.mean) / self.scale
        hidden = self.conv_in(mel.transpose(1, 2))
        for stage in self.stages:
            hidden = stage(hidden)
        hidden = self.conv_out(F.leaky_relu(hidden, _OUTPUT_LEAKY_RELU_SLOPE))
        return torch.tanh(hidden).squeeze(1)


def _init_conv(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
        nn.init.normal_(module.weight, mean=0.0, std=_CONV_INIT_STD)
