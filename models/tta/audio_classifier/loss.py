"""Losses of the evaluation classifier: soft-target cross-entropy on the category distribution, and one masked
loss per attribute head (cross-entropy, or binary cross-entropy per class for multi-label heads)."""

import torch
import torch.nn.functional as F

from models.tta.audio_classifier.labels import HEADS_BY_NAME
from models.tta.audio_classifier.model import AudioClassifierOutput


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_k target_k log softmax(logits)_k; logits and target (B, K), target rows sum
    to 1. Its minimum is the entropy of the target (log 2 for a two-source clip), not 0."""
    return -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def head_loss(name: str, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(loss, number of clips it applies to) of one head. logits (B, C); target (B,) class indices with -1 where
    the head does not apply, or for a multi-label head (B, C) multi-hot rows, all -1 where it does not apply.
    With no applicable clip the loss is a zero that still depends on the logits (so every parameter gets a
    gradient, as DDP requires)."""
    applies = target[:, 0] >= 0 if HEADS_BY_NAME[name].multi_label else target >= 0
    count = int(applies.sum())
    if count == 0:
        return logits.sum() * 0.0, 0
    if HEADS_BY_NAME[name].multi_label:
        return F.binary_cross_entropy_with_logits(logits[applies].float(), target[applies].float()), count
    return F.cross_entropy(logits[applies].float(), target[applies]), count


def classifier_losses(
    output: AudioClassifierOutput, targets: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """({"category": loss, <head>: loss, ...}, {name: clips it applied to}) for a batch of B clips; `targets` as
    `labels.record_targets` stacked: "category" (B, K) and one entry per head."""
    losses = {"category": soft_cross_entropy(output.category_logits, targets["category"])}
    counts = {"category": targets["category"].shape[0]}
    for name, logits in output.attribute_logits.items():
        losses[name], counts[name] = head_loss(name, logits, targets[name])
    return losses, counts
