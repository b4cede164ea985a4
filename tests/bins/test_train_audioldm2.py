"""The AudioLDM 2 fine-tuning recipe end to end under sh: convert the tiny public-layout model, fine-tune it with
egs/tta/audioldm2/run_train.sh (preprocess + bins/tta/train_tta.py's "AudioLDM2" dispatch), resume, then generate
from the fine-tuned experiment with bins/tta/inference_audioldm2.py (run_inference.sh only forwards its flags; its
own tests are in test_inference_audioldm2.py)."""

import json
import os
import subprocess

import soundfile

from bins.tta.convert_audioldm2 import main as convert_main
from bins.tta.inference_audioldm2 import main as inference_main
from tests.fixtures.tiny_audioldm2 import tiny_audioldm2_folder  # noqa: F401  (fixture)
from tests.models.tta.audioldm2.tiny_finetune import REPO_ROOT, RECIPE_CONFIG, shrink_overrides
from utils.checkpoint import list_checkpoints


def run(script: str, arguments: list[str]) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run(["sh", script, *arguments], cwd=REPO_ROOT, env=environment, capture_output=True,
                          text=True, timeout=300)


def test_convert_finetune_resume_and_generate(tiny_audioldm2_folder, tmp_path, capsys):
    converted = tmp_path / "converted"
    assert convert_main(["--model_dir", str(tiny_audioldm2_folder), "--output_dir", str(converted)]) == 0
    assert capsys.readouterr().out.strip() == str(converted)
    overrides = shrink_overrides(tmp_path / "processed", converted, tmp_path / "exp") + [
        "exp_name=tiny finetune",
        "preprocess.builtin.num_clips=10",
        "preprocess.builtin.clip_seconds=2.0",
        "preprocess.builtin.families=['sfx']",
        "preprocess.num_workers=1",
        "preprocess.valid_fraction=0.2",
        "trainer.sample_every=0",
    ]
    arguments = ["--config", str(RECIPE_CONFIG)] + [item for value in overrides for item in ("--set", value)]
    first = run("egs/tta/audioldm2/run_train.sh", arguments)
    assert first.returncode == 0, first.stderr[-3000:]
    exp_dir = tmp_path / "exp" / "tiny finetune"
    assert [step for step, _ in list_checkpoints(exp_dir / "checkpoints")] == [1, 2]
    assert json.loads((exp_dir / "config.json").read_text())["model_type"] == "AudioLDM2"

    resumed = run("egs/tta/audioldm2/run_train.sh", ["--resume", *arguments, "--set", "trainer.max_steps=3"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    assert [step for step, _ in list_checkpoints(exp_dir / "checkpoints")][-1] == 3

    output_dir = tmp_path / "generated"
    argv = ["--model_dir", str(exp_dir), "--text", "a dog barks", "--num_inference_steps", "2",
            "--audio_length_in_s", "0.32", "--seed", "3", "--output_dir", str(output_dir)]
    assert inference_main(argv) == 0
    assert capsys.readouterr().out.split() == [str(output_dir / "a_dog_barks.wav")]
    audio, sample_rate = soundfile.read(output_dir / "a_dog_barks.wav")
    assert sample_rate == 16000 and audio.shape == (int(0.32 * 16000),) and abs(audio).max() > 0
    record = json.loads((output_dir / "a_dog_barks.json").read_text())
    assert record["model_dir"] == str(exp_dir.resolve())


def test_unknown_arguments_are_refused():
    result = run("egs/tta/audioldm2/run_train.sh", ["--resum"])
    assert result.returncode == 2 and "unknown argument '--resum'" in result.stderr
