"""Contrastive text–audio stage on the shared trainer: whole-clip log-mels and their captions in one space.

The model scores how well a clip matches a prompt (the text–audio score of the evaluation, and ranking of
`num_waveforms_per_prompt` candidates when no CLAP is configured). The text tower's input is the frozen
sentence encoder's pooled embedding of each caption; those are computed once, when the datasets are built, for
every caption of the training and validation clips. Each step pairs each clip with one of its captions at random
and minimises the symmetric InfoNCE loss over the batch (with `model.freeze_audio_encoder`, through the
projections only); validation reports the loss and the in-batch top-1 retrieval accuracy in both directions.
"""

import logging

import torch
from torch import nn
from torch.utils.data import Dataset

from models.base.data import MelSegmentDataset, collate_skipping_missing, read_split
from models.base.trainer import Trainer
from models.tta.audio_classifier.inference import load_classifier
from models.tta.text_audio.config import TextAudioExperiment, TextAudioModelConfig, build_text_audio_model
from models.tta.text_audio.inference import TEXT_AUDIO_NAME, load_sentence_embedder
from models.tta.text_audio.loss import symmetric_infonce_loss
from models.tta.text_audio.model import TextAudioModel
from utils.config import ConfigError

logger = logging.getLogger(__name__)


class TextAudioTrainer(Trainer):
    """Trains `text_audio` (`TextAudioModel`). Batches are `collate_skipping_missing` dicts with "mel"
    (B, 1, segment_frames, n_mels), "caption" and "text" (B, sentence_dim), the captions' sentence embeddings."""

    config_schema = TextAudioExperiment

    def build_models(self) -> dict[str, nn.Module]:
        config = self.config
        self._sentences = load_sentence_embedder(config.text_encoder)
        model = build_text_audio_model(
            config.model, n_mels=config.preprocess.mel.n_mels, text_embedding_dim=self._sentences.dim
        )
        if config.model.audio_encoder_init:
            _initialise_audio_encoder(model, config.model)
        if config.model.freeze_audio_encoder:
            model.audio_encoder.requires_grad_(False)
        return {TEXT_AUDIO_NAME: model}

    def build_datasets(self) -> tuple[Dataset, Dataset | None]:
        config = self.config
        datasets = config.data.datasets or [config.preprocess.dataset]
        processed_dir = config.preprocess.processed_dir
        records = {"train": [record for split in config.data.train_splits
                             for record in read_split(processed_dir, datasets, split)]}
        if config.data.valid_split:
            records["valid"] = read_split(processed_dir, datasets, config.data.valid_split)
        captions = sorted({caption for role in records.values() for record in role for caption in record.captions})
        logger.info("embedding %d captions with %s", len(captions), config.text_encoder.name)
        self._caption_embeddings = dict(zip(captions, self._sentences(captions)))

        def clips(role: str) -> MelSegmentDataset:
            return MelSegmentDataset(
                processed_dir=processed_dir,
                records=records[role],
                segment_frames=config.data.segment_frames,
                n_mels=config.preprocess.mel.n_mels,
                random_crop=role == "train",
                seed=self.trainer_config.seed,
            )

        return clips("train"), clips("valid") if "valid" in records else None

    def collate(self, items: list) -> dict:
        batch = collate_skipping_missing(items)
        if "caption" in batch:
            batch["text"] = torch.stack([self._caption_embeddings[caption] for caption in batch["caption"]])
        return batch

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        skipped = {"skipped_clips": float(batch["num_skipped"])} if batch["num_skipped"] else {}
        if batch.get("mel") is None or batch["mel"].shape[0] < 2:
            return skipped
        if self.config.model.freeze_audio_encoder:
            # A locked encoder keeps its batch-norm statistics and runs without dropout.
            self.unwrap(TEXT_AUDIO_NAME).audio_encoder.eval()
        audio, text, logit_scale = self.models[TEXT_AUDIO_NAME](batch["mel"], batch["text"])
        loss = symmetric_infonce_loss(audio, text, logit_scale)
        self.backward(loss, name="infonce")
        self.optimizer_step(TEXT_AUDIO_NAME)
        return {**skipped, "infonce": loss.item(), "temperature": 1.0 / logit_scale.item()}

    def validate(self, batch: dict) -> dict[str, float]:
        if batch.get("mel") is None or batch["mel"].shape[0] < 2:
            return {}
        audio, text, logit_scale = self.models[TEXT_AUDIO_NAME](batch["mel"], batch["text"])
        similarity = audio @ text.T
        targets = torch.arange(similarity.shape[0], device=similarity.device)
        return {
            "infonce": symmetric_infonce_loss(audio, text, logit_scale).item(),
            "audio_to_text_top1": float((similarity.argmax(dim=1) == targets).float().mean()),
            "text_to_audio_top1": float((similarity.argmax(dim=0) == targets).float().mean()),
        }


def _initialise_audio_encoder(model: TextAudioModel, config: TextAudioModelConfig) -> None:
    """Copy the trained `AudioEncoder` of the classifier named by `audio_encoder_init` into the audio tower."""
    classifier, classifier_config = load_classifier(config.audio_encoder_init)
    trained = classifier_config["model"]
    if list(trained["channels"]) != list(config.channels) or trained["embedding_dim"] != config.audio_embedding_dim:
        raise ConfigError(
            f"model.audio_encoder_init: {config.audio_encoder_init} has channels {trained['channels']} and "
            f"embedding_dim {trained['embedding_dim']}; model.channels {config.channels} and "
            f"model.audio_embedding_dim {config.audio_embedding_dim} must match them"
        )
    model.audio_encoder.load_state_dict(classifier.encoder.state_dict())
    logger.info("audio encoder initialised from %s", config.audio_encoder_init)
