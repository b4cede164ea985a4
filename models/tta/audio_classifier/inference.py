"""Load a trained evaluation classifier from this repo's checkpoints. The resolved config stored in the
checkpoint rebuilds the model (`config.build_classifier`)."""

from pathlib import Path
from typing import Any

from models.tta.audio_classifier.config import classifier_from_resolved_config
from models.tta.audio_classifier.model import AudioClassifier
from utils.checkpoint import META_FILE, load_model_weights, read_checkpoint_meta, resolve_checkpoint

# Name of the classifier in the AudioClassifier stage's checkpoints (`AudioClassifierTrainer.build_models`).
CLASSIFIER_NAME = "classifier"


def load_classifier(path: Path | str) -> tuple[AudioClassifier, dict[str, Any]]:
    """(classifier in eval mode without gradients, its resolved experiment config) from a checkpoint or
    experiment folder; EMA weights when the checkpoint has them."""
    checkpoint = resolve_checkpoint(path)
    config = read_checkpoint_meta(checkpoint)["config"]
    model = classifier_from_resolved_config(config, source=str(checkpoint / META_FILE))
    load_model_weights(checkpoint, CLASSIFIER_NAME, model)
    return model.eval().requires_grad_(False), config
