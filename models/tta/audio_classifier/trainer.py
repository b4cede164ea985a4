"""Evaluation classifier stage on the shared trainer: whole-clip log-mels -> category + attribute heads.

The classifier is the offline backbone of the evaluation (`evaluation.backbones`, "ours"): its clip and frame
embeddings give FD and FAD, its category posteriors KL and IS, and its attribute heads the classifier half of
attribute adherence. Each step minimises the weighted sum of the soft-target category cross-entropy and one
masked loss per head (`models.tta.audio_classifier.loss`); validation reports those losses and the accuracy of
every head on the clips it applies to.
"""

import torch
from torch import nn
from torch.utils.data import Dataset

from models.base.trainer import Trainer
from models.tta.audio_classifier.config import AudioClassifierExperiment, build_classifier
from models.tta.audio_classifier.dataset import LabelledMelDataset, collate_labelled, read_split_records
from models.tta.audio_classifier.inference import CLASSIFIER_NAME
from models.tta.audio_classifier.labels import HEADS_BY_NAME
from models.tta.audio_classifier.loss import classifier_losses
from models.tta.audio_classifier.model import AudioClassifierOutput


class AudioClassifierTrainer(Trainer):
    """Trains `classifier` (`AudioClassifier` with the built-in label sets). Batches are `collate_labelled`
    dicts: "mel" (B, 1, segment_frames, n_mels) and "targets"; unreadable clips are dropped and counted in the
    `skipped_clips` metric."""

    config_schema = AudioClassifierExperiment

    def build_models(self) -> dict[str, nn.Module]:
        return {CLASSIFIER_NAME: build_classifier(self.config.model, n_mels=self.config.preprocess.mel.n_mels)}

    def build_datasets(self) -> tuple[Dataset, Dataset | None]:
        config = self.config
        datasets = config.data.datasets or [config.preprocess.dataset]

        def labelled(splits: str | list[str], gain_jitter_db: float) -> LabelledMelDataset:
            return LabelledMelDataset(
                processed_dir=config.preprocess.processed_dir,
                records=read_split_records(config.preprocess.processed_dir, datasets, splits),
                segment_frames=config.data.segment_frames,
                n_mels=config.preprocess.mel.n_mels,
                gain_jitter_db=gain_jitter_db,
                seed=self.trainer_config.seed,
            )

        train_set = labelled(config.data.train_splits, config.data.gain_jitter_db)
        valid_set = labelled(config.data.valid_split, 0.0) if config.data.valid_split else None
        return train_set, valid_set

    def collate(self, items: list) -> dict:
        return collate_labelled(items)

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        skipped = {"skipped_clips": float(batch["num_skipped"])} if batch["num_skipped"] else {}
        if "mel" not in batch:
            return skipped
        output = self.models[CLASSIFIER_NAME](batch["mel"])
        losses, counts = classifier_losses(output, batch["targets"])
        total = sum(self.config.loss.weight(name) * loss for name, loss in losses.items())
        self.backward(total, name="loss")
        self.optimizer_step(CLASSIFIER_NAME)
        logged = {name: loss.item() for name, loss in losses.items() if counts[name]}
        return {**skipped, "loss": total.item(), **logged}

    def validate(self, batch: dict) -> dict[str, float]:
        if "mel" not in batch:
            return {}
        output = self.models[CLASSIFIER_NAME](batch["mel"])
        losses, counts = classifier_losses(output, batch["targets"])
        metrics = {name: loss.item() for name, loss in losses.items() if counts[name]}
        metrics.update(_accuracies(output, batch["targets"]))
        return metrics


def _accuracies(output: AudioClassifierOutput, targets: dict[str, torch.Tensor]) -> dict[str, float]:
    """"accuracy/<head>" on the clips each head applies to (a multi-label head counts a clip right when its
    whole set is); "accuracy/category": the top category is one of the clip's sources."""
    top = output.category_logits.argmax(dim=1)
    accuracies = {"accuracy/category": float((targets["category"].gather(1, top[:, None]) > 0).float().mean())}
    for name, logits in output.attribute_logits.items():
        target = targets[name]
        if HEADS_BY_NAME[name].multi_label:
            applies = target[:, 0] >= 0
            correct = ((logits > 0).float() == target).all(dim=1)
        else:
            applies = target >= 0
            correct = logits.argmax(dim=1) == target
        if applies.any():
            accuracies[f"accuracy/{name}"] = float(correct[applies].float().mean())
    return accuracies
