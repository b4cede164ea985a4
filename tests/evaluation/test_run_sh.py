"""egs/tta/evaluation/run_train.sh and run_evaluate.sh under sh (dash on Debian), on a tiny built-in dataset:
both models train, a re-run resumes instead of retraining, overrides reach the right command, and the
evaluation script measures the models and a folder of clips."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from utils.checkpoint import list_checkpoints

REPO_ROOT = Path(__file__).resolve().parents[2]
EVALUATE_WIRED = "eval_models" in (REPO_ROOT / "bins/tta/evaluate.py").read_text(encoding="utf-8")


def run(script: str, arguments: list[str]) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["sh", f"egs/tta/evaluation/{script}", *arguments], cwd=REPO_ROOT, env=environment,
                          capture_output=True, text=True, timeout=600)


def as_overrides(flag: str, values: dict) -> list[str]:
    return [item for key, value in values.items()
            for item in (flag, f"{key}={value if isinstance(value, str) else json.dumps(value)}")]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("recipe")
    exp = root / "exp dir"  # a space: values must reach python whole
    common = {
        "preprocess.processed_dir": str(root / "processed"), "preprocess.builtin.num_clips": 24,
        "preprocess.builtin.clip_seconds": 2.0, "preprocess.builtin.families": ["sfx"],
        "preprocess.num_workers": 1, "log_dir": str(exp), "model.channels": [4, 8], "data.segment_frames": 200,
        "trainer.max_steps": 2, "trainer.batch_size": 4, "trainer.save_every": 2,
    }
    arguments = [
        "--debug", *as_overrides("--set", common),
        *as_overrides("--classifier_set", {"model.embedding_dim": 8}),
        *as_overrides("--text_audio_set", {"model.audio_embedding_dim": 8, "model.projection_dim": 8,
                                           "model.audio_encoder_init": str(exp / "audio_classifier_debug")}),
    ]
    first = run("run_train.sh", arguments)
    return {"root": root, "exp": exp, "arguments": arguments, "first": first}


def test_both_models_train_then_a_rerun_resumes(recipe):
    first = recipe["first"]
    assert first.returncode == 0, first.stderr[-3000:]
    for name in ("audio_classifier_debug", "text_audio_debug"):
        assert [step for step, _ in list_checkpoints(recipe["exp"] / name / "checkpoints")] == [2], name
    assert "audio encoder initialised from" in first.stderr
    again = run("run_train.sh", recipe["arguments"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("resumed from") == 2
    for name in ("audio_classifier_debug", "text_audio_debug"):
        assert [step for step, _ in list_checkpoints(recipe["exp"] / name / "checkpoints")] == [2], name


def test_unknown_arguments_are_refused():
    for script in ("run_train.sh", "run_evaluate.sh"):
        result = run(script, ["--resum"])
        assert result.returncode == 2 and "unknown argument '--resum'" in result.stderr


@pytest.mark.skipif(not EVALUATE_WIRED, reason="bins/tta/evaluate.py does not register the evaluation "
                    "subcommands (evaluation.cli) yet")
def test_run_evaluate_measures_models_and_clips(recipe, tmp_path):
    exp, processed = recipe["exp"], recipe["root"] / "processed"
    # The evaluation models train on their own build of the built-in data ("builtin_eval"), the only one here.
    overrides = as_overrides("--set", {
        "preprocess.processed_dir": str(processed),
        "preprocess.dataset": "builtin_eval",
        "evaluation.backbones": [{"name": "ours", "path": str(exp / "audio_classifier_debug")}],
        "evaluation.text_audio": {"kind": "ours", "path": str(exp / "text_audio_debug")},
    })
    models = run("run_evaluate.sh", ["--eval_models", "--split", "valid", "--output_dir", str(tmp_path), *overrides])
    assert models.returncode == 0, models.stderr[-3000:]
    report = json.loads((tmp_path / "eval_models_valid.json").read_text())
    assert report["classifier"]["num_clips"] == 1 and "sfx/pitch" in report["classifier"]
    clips = tmp_path / "real clips"
    clips.mkdir()
    for wav in sorted((processed / "builtin_eval" / "wav").glob("*.wav"))[:4]:
        shutil.copy(wav, clips / wav.name)
    generation = run("run_evaluate.sh", ["--clips", f"real={clips}", "--output_dir", str(tmp_path), *overrides])
    assert generation.returncode == 0, generation.stderr[-3000:]
    assert "| real | 4 |" in (tmp_path / "generation_metrics.md").read_text()
