"""The evaluation classifier stage: label sets, losses, the egs recipe on a tiny built-in-like dataset, loading
the checkpoint as the "ours" backbone, and held-out accuracy."""

import json
from pathlib import Path

import pytest
import soundfile
import torch

from bins.tta.train_tta import main as train_main
from evaluation.backbones import build_backbone
from evaluation.heldout import classifier_accuracy
from evaluation.metrics.attributes import SCORED_ATTRIBUTES
from models.tta.audio_classifier.config import AudioClassifierExperiment, build_classifier
from models.tta.audio_classifier.dataset import LabelledMelDataset, collate_labelled, shift_log_mel_gain
from models.tta.audio_classifier.inference import load_classifier
from models.tta.audio_classifier.labels import (
    ANIMAL_SOURCES,
    ATTRIBUTE_HEADS,
    CATEGORY_LABELS,
    LabelError,
    chance_accuracy,
    decode_attributes,
    expected_label_counts,
    record_targets,
)
from models.tta.audio_classifier.loss import classifier_losses, head_loss, soft_cross_entropy
from models.base.data import LOG_MEL_FLOOR
from tests.fixtures.builtin_clips import write_builtin_like_dataset
from tests.models.base.toy_stage import reset_accelerate_state
from utils.config import ConfigError, load_config

EGS_CONFIG = Path("egs/tta/evaluation/exp_config_classifier.json")


def tiny_overrides(processed_dir: Path, **trainer) -> list[str]:
    settings = {"max_steps": 2, "batch_size": 4, "valid_batch_size": 3, "valid_every": 2, "save_every": 2,
                "log_every": 1, **trainer}
    return [
        f"preprocess.processed_dir={processed_dir}",
        "preprocess.dataset=builtin",
        "model.channels=[4, 8]",
        "model.embedding_dim=8",
        "data.segment_frames=200",
        *(f"trainer.{key}={value}" for key, value in settings.items()),
    ]


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("processed")
    return root, write_builtin_like_dataset(root)


@pytest.fixture(scope="module")
def trained(processed, tmp_path_factory) -> Path:
    """The egs recipe, shrunk, trained for two steps through the train_tta CLI."""
    reset_accelerate_state()
    exp_dir = tmp_path_factory.mktemp("classifier_exp")
    arguments = ["--config", str(EGS_CONFIG), "--exp_dir", str(exp_dir)]
    for override in tiny_overrides(processed[0]):
        arguments += ["--set", override]
    assert train_main(arguments) == 0
    return exp_dir


def test_one_head_per_scored_attribute():
    heads = sorted((head.family, head.name) for head in ATTRIBUTE_HEADS)
    assert heads == sorted((family, name) for family, names in SCORED_ATTRIBUTES.items() for name in names)
    animal_records = [{"Family": "animals", "Attributes": {"sources": ["dog"]}},
                      {"Family": "animals", "Attributes": {"sources": ["dog", "owl"]}}]
    assert set(chance_accuracy(animal_records)) == {f"{family}/{name}" for family, name in heads}
    assert chance_accuracy(animal_records)["sfx/pitch"] == 0.5


def test_chance_of_the_prompted_animals_being_the_top_k_of_a_random_ranking():
    single = {"Family": "animals", "Attributes": {"sources": ["cat"]}}
    pair = {"Family": "animals", "Attributes": {"sources": ["cat", "cow"]}}
    music = {"Family": "music", "Attributes": {"instrument": "piano"}}
    assert chance_accuracy([single])["animals/sources"] == pytest.approx(1 / 10)
    assert chance_accuracy([pair])["animals/sources"] == pytest.approx(1 / 45)
    assert chance_accuracy([single, pair, music])["animals/sources"] == pytest.approx((1 / 10 + 1 / 45) / 2)
    assert "animals/sources" not in chance_accuracy([music]), "no animal prompt, no animal chance"


def test_targets_of_a_two_event_clip_and_of_an_animal_pair():
    sfx_record = {"Uid": "a", "Family": "sfx", "Attributes": {
        "events": [{"sound": "hum"}, {"sound": "beep"}], "sound": "beep", "pitch": "high", "count": 3,
        "sweep": None, "loudness": "quiet", "length": "short"}}
    targets = record_targets(sfx_record)
    category = dict(zip(CATEGORY_LABELS, targets["category"].tolist()))
    assert category["sfx/hum"] == category["sfx/beep"] == 0.5 and targets["category"].sum() == 1.0
    assert targets["count"] == 2 and targets["sweep"] == 0  # count classes 1..4; "no sweep" is a class
    assert targets["instrument"] == -1 and (targets["sources"] == -1).all()
    animals = record_targets({"Uid": "b", "Family": "animals", "Attributes": {"sources": ["owl", "dog"]}})
    assert animals["sources"].sum() == 2 and animals["pitch"] == -1
    sweep = record_targets({"Uid": "c", "Family": "sfx", "Attributes": {"sound": "sweep", "pitch": None,
                                                                         "sweep": "rising"}})
    assert sweep["pitch"] == -1, "a sweep has no pitch: the head does not apply"
    with pytest.raises(LabelError, match="count 7"):
        record_targets({"Uid": "d", "Family": "sfx", "Attributes": {"sound": "beep", "count": 7}})


def test_decoding_inverts_the_targets():
    record = {"Uid": "a", "Family": "animals", "Attributes": {"sources": ["dog", "owl"]}}
    sources = record_targets(record)["sources"]
    logits = {"sources": (sources * 8 - 4)[None], "tempo": torch.tensor([[0.1, 2.0]])}
    decoded = decode_attributes(logits)[0]
    assert decoded == {"sources": ["dog", "owl"], "tempo": "fast"}
    assert decode_attributes({"sources": torch.full((1, 10), -5.0).index_fill(1, torch.tensor([3]), -1.0)})[0] == {
        "sources": ["duck"]}, "the most likely species is kept even below the threshold"


def test_decoding_with_the_prompts_label_count_takes_the_top_k():
    # Sigmoids: dog 0.9, owl 0.4 (under the threshold), cat 0.2, the rest 0.02.
    logits = torch.full((2, 10), -4.0)
    logits[:, ANIMAL_SOURCES.index("dog")] = 2.2
    logits[:, ANIMAL_SOURCES.index("owl")] = -0.4
    logits[:, ANIMAL_SOURCES.index("cat")] = -1.4
    record = {"Family": "animals", "Attributes": {"sources": ["owl", "dog"]}}
    assert expected_label_counts(record["Family"], record["Attributes"]) == {"sources": 2}
    assert expected_label_counts("music", {"instrument": "piano"}) == {}
    decoded = decode_attributes({"sources": logits}, [{"sources": 2}, {"sources": 1}])
    assert decoded == [{"sources": ["dog", "owl"]}, {"sources": ["dog"]}]
    assert decode_attributes({"sources": logits[:1]})[0] == {"sources": ["dog"]}, "the threshold alone names one"
    with pytest.raises(ValueError, match="label_counts has 1 entries for a batch of 2"):
        decode_attributes({"sources": logits}, [{"sources": 2}])


def test_losses_skip_heads_that_do_not_apply_but_keep_their_gradient():
    logits = torch.zeros(2, 3, requires_grad=True)
    loss, count = head_loss("pitch", logits[:, :2], torch.tensor([-1, -1]))
    assert count == 0 and loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None
    uniform = torch.full((1, 4), 0.25)
    assert soft_cross_entropy(torch.zeros(1, 4), uniform).item() == pytest.approx(torch.log(torch.tensor(4.0)).item())


def test_gain_shift_moves_sound_and_keeps_silence():
    mel = torch.tensor([LOG_MEL_FLOOR, -3.0, 0.0])
    shifted = shift_log_mel_gain(mel, 20.0)
    assert shifted[0] == LOG_MEL_FLOOR
    torch.testing.assert_close(shifted[1:], mel[1:] + torch.log(torch.tensor(10.0)))


def test_config_errors_name_the_key(processed):
    with pytest.raises(ConfigError, match="weights names unknown losses"):
        load_config(EGS_CONFIG, AudioClassifierExperiment, [*tiny_overrides(processed[0]), "loss.weights.pich=2"])
    with pytest.raises(ConfigError, match="model.channels: 8 conv blocks"):
        load_config(EGS_CONFIG, AudioClassifierExperiment, ["model.channels=[2,2,2,2,2,2,2,2]"])


def test_recipe_trains_and_its_checkpoint_is_the_ours_backbone(trained, processed):
    config = json.loads((trained / "config.json").read_text())
    assert config["model_type"] == "AudioClassifier" and config["exp_name"] == "audio_classifier_builtin"
    model, _ = load_classifier(trained)
    assert not model.training and model.category_head.out_features == len(CATEGORY_LABELS)
    backbone = build_backbone("ours", path=trained)
    assert backbone.provides == {"clip", "frames", "logits", "attributes"}
    features = backbone.audio_features(0.1 * torch.randn(2, 8000), 8000)  # 0.5 s at 8 kHz: resampled, padded
    assert features.clip_embeddings.shape == (2, 8) and features.frame_embeddings.shape == (2, 50, 8)
    assert features.class_logits.shape == (2, len(CATEGORY_LABELS))
    assert set(features.attribute_logits) == {head.name for head in ATTRIBUTE_HEADS}
    # The backbone sees a clip as training did: the stored mel of a clip gives the same logits as its wav.
    records = processed[1]["test"]
    dataset = LabelledMelDataset(processed_dir=processed[0], records=records, segment_frames=200, n_mels=64)
    batch = collate_labelled([dataset[index] for index in range(len(records))])
    with torch.no_grad():
        stored = model(batch["mel"]).category_logits
    waves = torch.stack([torch.from_numpy(soundfile.read(processed[0] / "builtin" / "wav" / f"{r['Uid']}.wav",
                                                         dtype="float32")[0]) for r in records])
    torch.testing.assert_close(backbone.audio_features(waves, 16000).class_logits, stored, atol=2e-3, rtol=0)  # 16-bit wav
    accuracy = classifier_accuracy(trained, records, processed[0], show_progress=False)
    assert accuracy["num_clips"] == 3 and 0.0 <= accuracy["category"] <= 1.0
    assert {"sfx/pitch", "music/tempo", "animals/sources"} <= set(accuracy)


def test_losses_fit_a_batch(processed):
    """The targets are consistent and every loss is learnable: a few Adam steps on one batch halve the loss."""
    torch.manual_seed(0)
    dataset = LabelledMelDataset(processed_dir=processed[0], records=processed[1]["train"], segment_frames=200,
                                 n_mels=64)
    batch = collate_labelled([dataset[index] for index in range(len(dataset))])
    config = load_config(EGS_CONFIG, AudioClassifierExperiment, ["model.channels=[8, 16]", "model.embedding_dim=16",
                                                                 "model.dropout=0.0"])
    model = build_classifier(config.model, n_mels=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    history = []
    for _ in range(25):
        losses, counts = classifier_losses(model(batch["mel"]), batch["targets"])
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
    assert all(counts[name] > 0 for name in counts), "the batch covers every head"
    assert history[-1] < 0.5 * history[0]
