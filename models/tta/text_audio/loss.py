"""Symmetric InfoNCE loss of the contrastive text–audio model."""

import torch
import torch.nn.functional as F


def symmetric_infonce_loss(
    audio_embeddings: torch.Tensor, text_embeddings: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """Mean of audio->text and text->audio cross-entropies over a batch of B matching pairs.

    Oord et al. 2018 (InfoNCE), Radford et al. 2021 (CLIP): logits = scale * A T^T (B, B) on unit-norm
    embeddings (B, D); the i-th audio clip's positive is the i-th text and every other text in the batch is a
    negative, and symmetrically. Returns a scalar.
    """
    if audio_embeddings.shape != text_embeddings.shape or audio_embeddings.ndim != 2:
        raise ValueError(
            f"expected paired (B, D) embeddings, got {tuple(audio_embeddings.shape)} and {tuple(text_embeddings.shape)}"
        )
    logits = logit_scale * audio_embeddings @ text_embeddings.T
    targets = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
