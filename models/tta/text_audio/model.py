"""A small contrastive text–audio model (CLAP-like) for the text–audio score and for ranking candidates.

Audio tower: the classifier's `AudioEncoder` over log-mels, then a projection MLP. Text tower: the pooled
embedding of a frozen sentence encoder (computed elsewhere and passed in as (B, E)), then a projection MLP.
Both projections are L2-normalised into one space; the learnable temperature scales their cosine similarities
in the symmetric InfoNCE loss (`models.tta.text_audio.loss`). Elizalde et al. 2023, "CLAP: Learning Audio
Concepts from Natural Language Supervision"; Radford et al. 2021 (CLIP) for the loss and temperature.
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.tta.audio_classifier.model import AudioEncoder

# CLIP's cap on the logit scale (temperature >= 0.01): keeps the softmax from saturating early in training.
MAX_LOGIT_SCALE = math.log(100.0)


class ProjectionHead(nn.Module):
    """Linear -> GELU -> Linear, with a residual from the first linear: (B, in_dim) -> (B, out_dim)."""

    def __init__(self, *, in_dim: int, out_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.linear1 = nn.Linear(in_dim, out_dim)
        self.linear2 = nn.Linear(out_dim, out_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        projected = self.linear1(features)
        return projected + self.dropout(self.linear2(F.gelu(projected)))


class TextAudioModel(nn.Module):
    """Joint embedding of log-mels (B, 1, T, n_mels) and sentence embeddings (B, text_embedding_dim)."""

    def __init__(
        self,
        *,
        n_mels: int,
        text_embedding_dim: int,
        projection_dim: int = 256,
        channels: Sequence[int] = (32, 64, 128, 256),
        audio_embedding_dim: int = 256,
        dropout: float = 0.1,
        initial_temperature: float = 0.07,
    ) -> None:
        super().__init__()
        self.audio_encoder = AudioEncoder(
            n_mels=n_mels, channels=channels, embedding_dim=audio_embedding_dim, dropout=dropout
        )
        self.audio_projection = ProjectionHead(in_dim=audio_embedding_dim, out_dim=projection_dim, dropout=dropout)
        self.text_projection = ProjectionHead(in_dim=text_embedding_dim, out_dim=projection_dim, dropout=dropout)
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / initial_temperature)))

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, 1, T, n_mels) -> unit-norm audio embeddings (B, projection_dim)."""
        _, clip = self.audio_encoder(mel)
        return F.normalize(self.audio_projection(clip), dim=-1)

    def embed_text(self, text_embeddings: torch.Tensor) -> torch.Tensor:
        """Pooled sentence embeddings (B, text_embedding_dim) -> unit-norm text embeddings (B, projection_dim)."""
        return F.normalize(self.text_projection(text_embeddings), dim=-1)

    def logit_scale(self) -> torch.Tensor:
        """1 / temperature, a scalar, capped at 100."""
        return self.log_logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()

    def forward(
        self, mel: torch.Tensor, text_embeddings: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (audio embeddings (B, P), text embeddings (B, P), logit scale ()), the inputs of the loss."""
        return self.embed_audio(mel), self.embed_text(text_embeddings), self.logit_scale()


def rank_candidates(text_embeddings: torch.Tensor, audio_embeddings: torch.Tensor) -> torch.Tensor:
    """Order each prompt's candidate clips by cosine similarity with that prompt, best first.

    text_embeddings (P, D), audio_embeddings (P, N, D) with N candidates per prompt -> indices (P, N) into
    the candidate axis. Ranking stays within a prompt (the AudioLDM 2 reference pipeline ranks across the whole
    batch, mixing prompts). Works with any paired embedding space (this model's or CLAP's).
    """
    if audio_embeddings.ndim != 3 or text_embeddings.shape != (audio_embeddings.shape[0], audio_embeddings.shape[2]):
        raise ValueError(
            f"expected text (P, D) and audio (P, N, D), got {tuple(text_embeddings.shape)} and "
            f"{tuple(audio_embeddings.shape)}"
        )
    similarity = torch.einsum("pd,pnd->pn", F.normalize(text_embeddings, dim=-1), F.normalize(audio_embeddings, dim=-1))
    return similarity.argsort(dim=1, descending=True)
