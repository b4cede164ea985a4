"""evaluation.generation and its CLI: pairing clips with records, set metrics, adherence, problem reporting and
the JSON / Markdown reports, on a tiny built-in-like dataset with small random evaluation models."""

import argparse
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from evaluation.backbones import build_backbone
from evaluation.cli import METRICS_JSON, METRICS_MARKDOWN, add_eval_models_subcommand, add_generation_subcommand
from evaluation.features import FeatureCache
from evaluation.generation import evaluate_generation, pair_clips
from evaluation.ranking import ours_joint_embedding
from evaluation.report import markdown_report
from models.text_encoder import load_text_encoder
from models.tta.audio_classifier.config import AudioClassifierExperiment, build_classifier
from models.tta.text_audio.config import TextAudioExperiment, build_text_audio_model
from preprocessors.builtin import is_held_out
from tests.fixtures.builtin_clips import write_builtin_like_dataset
from utils.audio import MelConfig
from utils.checkpoint import save_inference_checkpoint
from utils.config import config_to_dict, load_config

SMALL = ["model.channels=[4, 8]", "data.segment_frames=200"]
# A dozen clips in 8 dimensions give singular covariances; the Fréchet distance handles them (with a warning).
pytestmark = pytest.mark.filterwarnings("ignore:Matrix is singular")


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """Processed data, a classifier and a text–audio checkpoint (random weights), and the records."""
    root = tmp_path_factory.mktemp("evaluation")
    processed = root / "processed"
    splits = write_builtin_like_dataset(processed)
    torch.manual_seed(0)
    classifier_config = load_config("egs/tta/evaluation/exp_config_classifier.json", AudioClassifierExperiment,
                                    [f"preprocess.processed_dir={processed}", *SMALL, "model.embedding_dim=8"])
    save_inference_checkpoint(root / "classifier", models={"classifier": build_classifier(classifier_config.model,
                              n_mels=64)}, config=config_to_dict(classifier_config), step=1)
    text_config = load_config("egs/tta/evaluation/exp_config_text_audio.json", TextAudioExperiment,
                              [f"preprocess.processed_dir={processed}", *SMALL, "model.audio_embedding_dim=8",
                               "model.projection_dim=8", "model.audio_encoder_init=",
                               "model.freeze_audio_encoder=false"])
    hidden = load_text_encoder(text_config.text_encoder.name, max_length=8).hidden_size
    text_model = build_text_audio_model(text_config.model, n_mels=64, text_embedding_dim=hidden)
    save_inference_checkpoint(root / "text_audio", models={"text_audio": text_model},
                              config=config_to_dict(text_config), step=1)
    records = [record for split in ("train", "valid", "test") for record in splits[split]]
    return {"root": root, "processed": processed, "splits": splits, "records": records}


@pytest.fixture(scope="module")
def models(setup) -> dict:
    return {"backbones": {"ours": build_backbone("ours", path=setup["root"] / "classifier")},
            "joint": ours_joint_embedding(setup["root"] / "text_audio")}


def wav_of(setup: dict, record: dict) -> Path:
    return setup["processed"] / "builtin" / "wav" / f"{record['Uid']}.wav"


@pytest.fixture
def generated(setup, tmp_path) -> Path:
    """Two clips with sidecar prompts (a caption written differently), one unpaired clip, one corrupt clip, and a
    sidecar without its audio."""
    folder = tmp_path / "generated"
    folder.mkdir()
    sfx, music = setup["splits"]["test"][0], setup["splits"]["test"][2]
    for stem, record, prompt in (("first", sfx, sfx["Captions"][1].upper() + "."), ("second", music, music["Caption"])):
        shutil.copy(wav_of(setup, record), folder / f"{stem}.wav")
        (folder / f"{stem}.json").write_text(json.dumps({"prompt": prompt, "seed": 0}))
    shutil.copy(wav_of(setup, setup["splits"]["train"][0]), folder / "no_prompt.wav")
    (folder / "broken.wav").write_bytes(b"RIFF not really a wav")
    (folder / "broken.json").write_text(json.dumps({"prompt": sfx["Caption"]}))
    (folder / "lost.json").write_text(json.dumps({"prompt": "a prompt whose audio went missing"}))
    return folder


def test_pairing_by_sidecar_prompt_uid_and_reference_uid(setup, generated):
    sfx = setup["splits"]["test"][0]
    shutil.copy(wav_of(setup, sfx), generated / f"{setup['splits']['valid'][0]['Uid']}.wav")
    shutil.copy(wav_of(setup, sfx), generated / "named.wav")
    (generated / "named.json").write_text(json.dumps({"prompt": "anything", "reference_uid": sfx["Uid"]}))
    clips, problems = pair_clips(generated, setup["records"])
    by_key = {clip.key: clip for clip in clips}
    assert [record["Uid"] for record in by_key["first.wav"].references] == [sfx["Uid"]]
    assert by_key["no_prompt.wav"].references == [] and by_key["no_prompt.wav"].prompt is None
    uid_named = by_key[f"{setup['splits']['valid'][0]['Uid']}.wav"]
    assert uid_named.prompt == setup["splits"]["valid"][0]["Caption"] and len(uid_named.references) == 1
    assert by_key["named.wav"].references[0]["Uid"] == sfx["Uid"] and by_key["named.wav"].prompt == "anything"
    assert problems == [{"file": "lost.json", "reason": "missing audio for this sidecar"}]


def test_real_clips_against_themselves(setup, models, tmp_path):
    """Every clip named after its record and evaluated against the same records: FD, FAD and KL are 0."""
    folder = tmp_path / "real"
    folder.mkdir()
    for record in setup["records"]:
        shutil.copy(wav_of(setup, record), folder / f"{record['Uid']}.wav")
    results = evaluate_generation(
        folder, reference_records=setup["records"], processed_dir=setup["processed"], show_progress=False,
        output_json=tmp_path / "real.json", output_markdown=tmp_path / "real.md", **models,
    )
    metrics = results["metrics"]["ours"]
    assert results["num_clips"] == results["num_paired"] == len(setup["records"]) == 18
    assert metrics["fd"] == pytest.approx(0.0, abs=1e-3) and metrics["fad"] == pytest.approx(0.0, abs=1e-3)
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-4)
    assert 1.0 <= metrics["is"] <= 22.0
    assert -1.0 <= results["text_audio"]["score"] <= 1.0
    # The built-in generator's own sound effects measure as what their records say.
    assert results["adherence_signal"]["sfx/loudness"] == 1.0 and results["adherence_signal"]["sfx/pitch"] >= 0.75
    assert set(results["adherence"]) == {"sfx/sound", "sfx/pitch", "sfx/count", "sfx/sweep", "sfx/loudness",
                                         "sfx/length", "animals/sources", "music/instrument", "music/tempo",
                                         "music/register", "music/texture"}
    for key in ("sfx/pitch", "sfx/loudness"):
        assert results["adherence"][key] == results["adherence_signal"][key], "physical attributes: the signal"
    assert results["adherence"]["music/tempo"] == results["adherence_classifier"]["music/tempo"]
    # Animal clips are scored by the classifier's top k for a prompt naming k animals, against that chance.
    by_uid = {record["Uid"]: record for record in setup["records"]}
    animal_clips = [clip for clip in results["clips"] if by_uid[clip["references"][0]]["Family"] == "animals"]
    wanted = [len(by_uid[clip["references"][0]]["Attributes"]["sources"]) for clip in animal_clips]
    assert animal_clips and [len(clip["classifier"]["sources"]) for clip in animal_clips] == wanted
    assert results["chance"]["animals/sources"] == pytest.approx(
        sum(1 / math.comb(10, count) for count in wanted) / len(wanted))
    assert json.loads((tmp_path / "real.json").read_text())["num_clips"] == 18
    assert "| real | 18 |" in (tmp_path / "real.md").read_text()
    # Adherence is also split by whether the prompt's combination was held out of training.
    held_out = [record for record in setup["records"] if is_held_out(record["Family"], record["Attributes"])]
    by_combination = results["adherence_by_combination"]
    assert by_combination["held_out"]["num_clips"] == len(held_out) >= 1
    assert by_combination["seen"]["num_clips"] == 18 - len(held_out)
    assert {key.split("/")[0] for key in by_combination["held_out"]["adherence"]} == {r["Family"] for r in held_out}
    assert f"| real | held out | {len(held_out)} |" in (tmp_path / "real.md").read_text()


def test_generated_folder_with_problems_is_evaluated(setup, models, generated):
    results = evaluate_generation(
        generated, reference_records=setup["splits"]["train"], prompt_records=setup["records"],
        processed_dir=setup["processed"], mel_config=MelConfig(), show_progress=False, **models,
    )
    assert results["num_clips"] == 3 and results["num_with_prompt"] == 2 and results["num_paired"] == 2
    reasons = {problem["file"]: problem["reason"] for problem in results["problems"]}
    assert reasons["lost.json"] == "missing audio for this sidecar"
    assert "unreadable audio" in reasons["broken.wav"]
    metrics = results["metrics"]["ours"]
    assert metrics["fd"] is not None and metrics["num_kl_pairs"] == 2
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-3), "each generated clip is a copy of its paired clip"
    clips = {clip["file"]: clip for clip in results["clips"]}
    assert clips["first.wav"]["signal"]["loudness"] in ("loud", "quiet") and clips["second.wav"]["signal"] == {}
    assert clips["no_prompt.wav"]["text_audio"] is None and clips["first.wav"]["text_audio"] is not None


def test_reference_features_are_computed_once(setup, models, generated):
    cache = FeatureCache(processed_dir=setup["processed"], backbones=models["backbones"], sample_rate=16000,
                         show_progress=False)
    first = evaluate_generation(generated, reference_records=setup["splits"]["train"], cache=cache,
                                processed_dir=setup["processed"], show_progress=False, **models)
    computed = dict(cache.features)
    second = evaluate_generation(generated, reference_records=setup["splits"]["train"], cache=cache,
                                 processed_dir=setup["processed"], show_progress=False, **models)
    assert all(cache.features[uid] is features for uid, features in computed.items())
    assert first["metrics"] == second["metrics"]


def test_markdown_has_one_row_per_folder_and_a_chance_row():
    result = {"name": "generated", "num_clips": 4, "problems": [{}],
              "metrics": {"ours": {"fd": 1.234, "fad": None, "kl": 0.5, "is": 2.0}},
              "text_audio": {"score": 0.25}, "adherence_by_family": {"sfx": 0.75},
              "adherence": {"sfx/pitch": 0.75}, "chance": {"sfx/pitch": 0.5}}
    text = markdown_report([{**result, "name": "real"}, result])
    assert "| Clips | N | FD | KL | IS | Text–audio | Adherence sfx | Problems |" in text
    assert "| real | 4 | 1.23 | 0.50 | 2.00 | 0.250 | 75.0% | 1 |" in text
    assert text.index("| real |") < text.index("| generated |")
    assert "| chance | 50.0% |" in text
    # Sets whose prompts give different chances (more or fewer two-animal prompts) get a chance row each.
    animals = {**result, "adherence": {"animals/sources": 0.5}, "chance": {"animals/sources": 0.1}}
    text = markdown_report([{**animals, "name": "real", "chance": {"animals/sources": 0.05}}, animals])
    assert "| chance (real) | 5.0% |" in text and "| chance (generated) | 10.0% |" in text


def test_cli_generation_and_eval_models(setup, generated, tmp_path):
    config = tmp_path / "eval.json"
    config.write_text(json.dumps({
        "base_config": str(Path("config/tta_base.json").resolve()),
        "preprocess": {"processed_dir": str(setup["processed"])},
        "evaluation": {"backbones": [{"name": "ours", "path": str(setup["root"] / "classifier")}],
                       "text_audio": {"kind": "ours", "path": str(setup["root"] / "text_audio")}},
    }))
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    add_generation_subcommand(commands)
    add_eval_models_subcommand(commands)
    args = parser.parse_args(["generation", "--config", str(config), "--clips", f"gen={generated}",
                              "--clips", str(generated), "--output_dir", str(tmp_path / "out"), "--no_progress",
                              "--set", "evaluation.reference_split=valid"])
    summary = args.run(args)
    assert list(summary["results"]) == ["gen", "generated"] and summary["results"]["gen"]["problems"] == 2
    saved = json.loads((tmp_path / "out" / METRICS_JSON).read_text())
    assert saved["reference"] == {"datasets": ["builtin"], "split": "valid"}
    markdown = (tmp_path / "out" / METRICS_MARKDOWN).read_text()
    assert markdown.count("| gen |") == markdown.count("| generated |") == 2  # set metrics and adherence tables
    args = parser.parse_args(["eval_models", "--config", str(config), "--split", "valid", "--no_progress"])
    report = args.run(args)
    captions = sum(len(record["Captions"]) for record in setup["splits"]["valid"])
    assert report["classifier"]["num_clips"] == 3 and report["text_audio"]["num_captions"] == captions
    with pytest.raises(SystemExit):
        parser.parse_args(["generation", "--config", str(config), "--clips", "=nowhere", "--output_dir", "x"])
