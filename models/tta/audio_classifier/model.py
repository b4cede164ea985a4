"""A small CNN audio classifier over log-mels, the project's own evaluation backbone.

It gives what the distribution metrics need when no pretrained tagger is at hand: clip embeddings (FD),
frame embeddings (FAD) and class logits (KL, IS), plus per-attribute heads for attribute adherence on the
built-in dataset. The convolutional trunk, `AudioEncoder`, is shared with the contrastive text–audio model.
The design follows the PANNs CNN family (Kong et al. 2020, "PANNs: Large-Scale Pretrained Audio Neural Networks
for Audio Pattern Recognition"): batch-normalised mel input, double-conv blocks with 2x2 average pooling, mean
over frequency, and mean + max pooling over time.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class ConvBlock(nn.Module):
    """Two 3x3 conv + BatchNorm + ReLU layers, then 2x2 average pooling: (B, C_in, T, F) -> (B, C_out, T/2, F/2)
    (or (B, C_out, T, F) with `pool=False`). Parameter names are PANNs' so its CNN14 reuses this block."""

    def __init__(self, *, in_channels: int, out_channels: int, pool: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.pool = pool

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(self.bn1(self.conv1(hidden)))
        hidden = F.relu(self.bn2(self.conv2(hidden)))
        return F.avg_pool2d(hidden, kernel_size=2) if self.pool else hidden


class AudioEncoder(nn.Module):
    """Log-mel (B, 1, T, n_mels) -> frame embeddings (B, T / 2^L, D) and clip embedding (B, D).

    L = len(channels) conv blocks each halve time and frequency; the frequency axis is then averaged, a linear
    layer maps channels to `embedding_dim`, and the clip embedding is mean + max over frames. Needs
    T, n_mels >= 2^L.
    """

    def __init__(
        self,
        *,
        n_mels: int,
        channels: Sequence[int] = (32, 64, 128, 256),
        embedding_dim: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError("channels must name at least one conv block")
        self.n_mels = n_mels
        self.downsampling = 2 ** len(channels)
        if n_mels < self.downsampling:
            raise ValueError(f"n_mels={n_mels} is too small for {len(channels)} blocks (needs >= {self.downsampling})")
        # Normalises each mel bin over the batch and time, so raw log-mels (about -11.5 to 3) need no scaling.
        self.input_norm = nn.BatchNorm2d(n_mels)
        widths = (1, *channels)
        self.blocks = nn.ModuleList(
            ConvBlock(in_channels=widths[index], out_channels=widths[index + 1]) for index in range(len(channels))
        )
        self.dropout = nn.Dropout(dropout)
        self.frame_projection = nn.Linear(channels[-1], embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mel (B, 1, T, n_mels) -> (frame embeddings (B, T', D), clip embedding (B, D))."""
        if mel.ndim != 4 or mel.shape[1] != 1 or mel.shape[3] != self.n_mels:
            raise ValueError(f"expected a log-mel (B, 1, T, {self.n_mels}), got shape {tuple(mel.shape)}")
        if mel.shape[2] < self.downsampling:
            raise ValueError(
                f"a log-mel of {mel.shape[2]} frames is shorter than the {self.downsampling}-frame minimum"
            )
        hidden = self.input_norm(mel.transpose(1, 3)).transpose(1, 3)
        for block in self.blocks:
            hidden = self.dropout(block(hidden))
        frames = F.relu(self.frame_projection(hidden.mean(dim=3).transpose(1, 2)))
        clip = frames.mean(dim=1) + frames.amax(dim=1)
        return frames, clip


@dataclass
class AudioClassifierOutput:
    """Everything the classifier computes for a batch of B clips."""

    clip_embedding: torch.Tensor  # (B, D)
    frame_embeddings: torch.Tensor  # (B, T', D)
    category_logits: torch.Tensor  # (B, num_categories)
    attribute_logits: dict[str, torch.Tensor]  # name -> (B, num_classes of that attribute)


class AudioClassifier(nn.Module):
    """`AudioEncoder` + a category head and one head per attribute.

    `num_categories` is the size of the combined label set (e.g. families, animal sources, instruments and sound
    types in one list); `attribute_classes` maps an attribute name (e.g. "pitch", "count", "tempo") to its number
    of classes. The heads return logits; whether they are read with softmax or sigmoid is the loss's choice.
    """

    def __init__(
        self,
        *,
        n_mels: int,
        num_categories: int,
        attribute_classes: Mapping[str, int] | None = None,
        channels: Sequence[int] = (32, 64, 128, 256),
        embedding_dim: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.encoder = AudioEncoder(n_mels=n_mels, channels=channels, embedding_dim=embedding_dim, dropout=dropout)
        self.category_head = nn.Linear(embedding_dim, num_categories)
        self.attribute_heads = nn.ModuleDict(
            {name: nn.Linear(embedding_dim, size) for name, size in (attribute_classes or {}).items()}
        )

    def forward(self, mel: torch.Tensor) -> AudioClassifierOutput:
        """mel (B, 1, T, n_mels) -> embeddings and logits (see `AudioClassifierOutput`)."""
        frames, clip = self.encoder(mel)
        return AudioClassifierOutput(
            clip_embedding=clip,
            frame_embeddings=frames,
            category_logits=self.category_head(clip),
            attribute_logits={name: head(clip) for name, head in self.attribute_heads.items()},
        )
