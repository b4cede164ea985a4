"""Load a trained evaluation classifier from this repo's checkpoints, and find the checkpoint an experiment
folder's newest one. The resolved config stored in the checkpoint rebuilds the model (`config.build_classifier`)."""

from pathlib import Path
from typing import Any

from models.tta.audio_classifier.config import classifier_from_resolved_config
from models.tta.audio_classifier.model import AudioClassifier
from utils.checkpoint import META_FILE, CheckpointError, latest_valid_checkpoint, load_model_weights, read_checkpoint_meta

# Name of the classifier in the AudioClassifier stage's checkpoints (`AudioClassifierTrainer.build_models`).
CLASSIFIER_NAME = "classifier"


def resolve_checkpoint(path: Path | str) -> Path:
    """`path` itself when it is a checkpoint folder (holds meta.json), else the newest valid checkpoint of the
    experiment folder `path` (holds checkpoints/); CheckpointError naming what was expected otherwise."""
    path = Path(path)
    if (path / META_FILE).is_file():
        return path
    if (path / "checkpoints").is_dir():
        checkpoint = latest_valid_checkpoint(path / "checkpoints")
        if checkpoint is not None:
            return checkpoint
        raise CheckpointError(f"{path}: no valid checkpoint in {path / 'checkpoints'}")
    raise CheckpointError(
        f"{path}: neither a checkpoint folder (with {META_FILE}) nor an experiment folder (with checkpoints/); "
        "train the model first (sh egs/tta/evaluation/run_train.sh)"
    )


def load_classifier(path: Path | str) -> tuple[AudioClassifier, dict[str, Any]]:
    """(classifier in eval mode without gradients, its resolved experiment config) from a checkpoint or
    experiment folder; EMA weights when the checkpoint has them."""
    checkpoint = resolve_checkpoint(path)
    config = read_checkpoint_meta(checkpoint)["config"]
    model = classifier_from_resolved_config(config, source=str(checkpoint / META_FILE))
    load_model_weights(checkpoint, CLASSIFIER_NAME, model)
    return model.eval().requires_grad_(False), config
