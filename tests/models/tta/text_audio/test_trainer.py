"""The contrastive text–audio stage: the egs recipe on a tiny built-in-like dataset, starting its audio tower
from a classifier checkpoint, then the trained model as scorer and in held-out retrieval."""

from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation.heldout import retrieval_recall, text_audio_retrieval
from evaluation.ranking import load_text_audio_scorer
from models.tta.audio_classifier.config import AudioClassifierExperiment, build_classifier
from models.tta.text_audio.config import TextAudioExperiment
from models.tta.text_audio.inference import load_text_audio_embedder, mean_pool
from models.tta.text_audio.trainer import TextAudioTrainer
from tests.fixtures.builtin_clips import write_builtin_like_dataset
from tests.models.base.toy_stage import reset_accelerate_state
from utils.checkpoint import save_inference_checkpoint
from utils.config import ConfigError, config_to_dict, load_config

EGS_CONFIG = Path("egs/tta/evaluation/exp_config_text_audio.json")
CLASSIFIER_CONFIG = Path("egs/tta/evaluation/exp_config_classifier.json")


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("processed")
    return root, write_builtin_like_dataset(root)


@pytest.fixture(scope="module")
def classifier_checkpoint(processed, tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """An AudioClassifier checkpoint (random weights) with a small encoder."""
    config = load_config(CLASSIFIER_CONFIG, AudioClassifierExperiment, [
        f"preprocess.processed_dir={processed[0]}", "preprocess.dataset=builtin", "model.channels=[4, 8]",
        "model.embedding_dim=8",
        "data.segment_frames=200"])
    torch.manual_seed(0)
    classifier = build_classifier(config.model, n_mels=64)
    path = tmp_path_factory.mktemp("classifier") / "step_00000001"
    save_inference_checkpoint(path, models={"classifier": classifier}, config=config_to_dict(config), step=1)
    return path, classifier


def text_audio_config(processed_dir: Path, init: Path | str, **model) -> TextAudioExperiment:
    overrides = [
        f"preprocess.processed_dir={processed_dir}",
        "preprocess.dataset=builtin",
        f"model.audio_encoder_init={init}",
        "data.segment_frames=200",
        *(f"model.{key}={value}" for key, value in {"channels": "[4, 8]", "audio_embedding_dim": 8,
                                                     "projection_dim": 8, "freeze_audio_encoder": "false",
                                                     **model}.items()),
        "trainer.max_steps=2", "trainer.batch_size=4", "trainer.valid_batch_size=3", "trainer.valid_every=2",
        "trainer.save_every=2", "trainer.log_every=1",
    ]
    return load_config(EGS_CONFIG, TextAudioExperiment, overrides)


@pytest.fixture(scope="module")
def trained(processed, classifier_checkpoint, tmp_path_factory) -> tuple[Path, TextAudioTrainer]:
    reset_accelerate_state()
    config = text_audio_config(processed[0], classifier_checkpoint[0])
    exp_dir = tmp_path_factory.mktemp("text_audio_exp")
    trainer = TextAudioTrainer(config, exp_dir, config_to_dict(config))
    initial = {key: value.clone() for key, value in trainer.unwrap("text_audio").audio_encoder.state_dict().items()}
    trainer.train()
    return exp_dir, initial


def test_audio_tower_starts_from_the_classifier_encoder(trained, classifier_checkpoint):
    _, initial = trained
    for key, value in classifier_checkpoint[1].encoder.state_dict().items():
        torch.testing.assert_close(initial[key], value, msg=key)


def test_a_frozen_audio_tower_stays_the_classifier_encoder(processed, classifier_checkpoint, tmp_path):
    reset_accelerate_state()
    config = text_audio_config(processed[0], classifier_checkpoint[0], freeze_audio_encoder="true")
    trainer = TextAudioTrainer(config, tmp_path, config_to_dict(config))
    model = trainer.unwrap("text_audio")
    projection = model.audio_projection.linear1.weight.detach().clone()
    trainer.train()
    for key, value in classifier_checkpoint[1].encoder.state_dict().items():
        torch.testing.assert_close(model.audio_encoder.state_dict()[key], value, msg=key)  # batch-norm stats too
    assert not torch.equal(model.audio_projection.linear1.weight, projection)
    with pytest.raises(ConfigError, match="freeze_audio_encoder needs audio_encoder_init"):
        text_audio_config(processed[0], "", freeze_audio_encoder="true")


def test_a_classifier_of_another_size_is_refused(processed, classifier_checkpoint, tmp_path):
    reset_accelerate_state()
    config = text_audio_config(processed[0], classifier_checkpoint[0], audio_embedding_dim=16)
    with pytest.raises(ConfigError, match="must match them"):
        TextAudioTrainer(config, tmp_path, config_to_dict(config))


def test_recipe_checkpoint_loads_and_scores(trained, processed):
    exp_dir, _ = trained
    assert (exp_dir / "checkpoints" / "step_00000002" / "text_audio.safetensors").is_file()
    embedder = load_text_audio_embedder(exp_dir)
    text = embedder.embed_texts(["three short high beeps", "a dog barks"])
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(2))
    rng = np.random.default_rng(0)
    waveforms = [0.1 * rng.standard_normal(32000).astype(np.float32) for _ in range(2)]
    waveforms.append(0.1 * rng.standard_normal(24000).astype(np.float32))  # another length: its own batch
    prompts = ["three short high beeps", "a dog barks", "a dog barks"]
    scores = load_text_audio_scorer(exp_dir)(prompts, waveforms)
    audio = [embedder.embed_waveforms(torch.from_numpy(w)[None], 16000)[0] for w in waveforms]
    expected = [float(embedder.embed_texts([p])[0] @ a) for p, a in zip(prompts, audio)]
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    as_tensor = load_text_audio_scorer(exp_dir)(prompts[:2], torch.from_numpy(np.stack(waveforms[:2])))
    np.testing.assert_allclose(as_tensor, expected[:2], atol=1e-5)  # the pipelines pass (N, S) tensors
    with pytest.raises(ValueError, match="scored in pairs"):
        load_text_audio_scorer(exp_dir)(prompts[:1], waveforms)
    retrieval = text_audio_retrieval(exp_dir, processed[1]["test"], processed[0], show_progress=False)
    assert retrieval["num_clips"] == 3
    assert retrieval["num_captions"] == sum(len(record["Captions"]) for record in processed[1]["test"])
    assert all(0.0 <= retrieval[key] <= 1.0 for key in ("text_to_audio_r1", "audio_to_text_r5"))
    assert retrieval["text_to_audio_r5"] == 1.0, "with 3 clips every caption finds its clip in the top 5"


def test_mean_pool_ignores_padding():
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    torch.testing.assert_close(mean_pool(states, torch.tensor([[True, True, False]])), torch.tensor([[2.0, 3.0]]))


def test_retrieval_recall_by_hand():
    # Captions 0, 1 belong to clip 0, caption 2 to clip 1.
    similarity = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    recall = retrieval_recall(similarity, [0, 0, 1], (1, 2))
    assert recall["text_to_audio_r1"] == pytest.approx(2 / 3)  # caption 1 ranks clip 1 first
    assert recall["text_to_audio_r2"] == 1.0
    # Clip 0 ranks caption 0 first (own); clip 1 ranks caption 1 (not its own) first, then caption 2 (own).
    assert recall["audio_to_text_r1"] == 0.5 and recall["audio_to_text_r2"] == 1.0
