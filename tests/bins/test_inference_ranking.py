"""`--ranker` of bins/tta/inference.py (and egs run_inference.sh under sh and bash) on a tiny random stage-2
checkpoint and a tiny random TextAudio model: files and JSON follow the scores within each prompt, every spec
is checked before anything is generated or written, one waveform per prompt is scored too, "auto" uses the
built-in text–audio model only when it exists, and a local CLAP folder ranks as well."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from bins.tta import inference
from evaluation.ranking import load_text_audio_scorer
from models.tta.audioldm.config import AudioLDMExperiment
from models.tta.audioldm.pipeline import UNET_NAME, build_unet
from models.tta.text_audio.config import TextAudioExperiment, build_text_audio_model
from models.tta.text_audio.inference import TEXT_AUDIO_NAME
from tests.fixtures.tiny_audioldm2 import tiny_audioldm2_folder  # noqa: F401
from tests.models.tta.audioldm.tiny_stage2 import DEBUG_CONFIG, REPO_ROOT, make_tiny_vae_checkpoint, shrink_overrides
from utils.checkpoint import checkpoint_name, save_inference_checkpoint
from utils.config import ConfigError, config_to_dict, load_config

PROMPTS = ["three short high beeps", "a low hum"]
TEXT_AUDIO_CONFIG = REPO_ROOT / "egs" / "tta" / "evaluation" / "exp_config_text_audio.json"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A stage-2 checkpoint (random UNet, perturbed so candidates differ), and a TextAudio experiment folder
    (random weights) with its checkpoint under checkpoints/, as the trainer lays it out."""
    root = tmp_path_factory.mktemp("ranking")
    processed = root / "processed"
    vae = make_tiny_vae_checkpoint(root / "vae_checkpoint", processed)
    overrides = [*shrink_overrides(processed, vae, root / "exp"), "inference.scheduler=ddim"]
    stage2_checkpoint = save_stage2(root / "stage2", overrides)
    text_config = load_config(TEXT_AUDIO_CONFIG, TextAudioExperiment, [
        f"preprocess.processed_dir={processed}", "model.channels=[4, 8]", "data.segment_frames=200",
        "model.audio_embedding_dim=8", "model.projection_dim=8", "model.audio_encoder_init=",
        "model.freeze_audio_encoder=false",
    ])
    text_audio = build_text_audio_model(text_config.model, n_mels=64, text_embedding_dim=384)
    text_audio_exp = root / "text_audio_exp"
    save_inference_checkpoint(text_audio_exp / "checkpoints" / checkpoint_name(2),
                              models={TEXT_AUDIO_NAME: text_audio}, config=config_to_dict(text_config), step=2)
    return {"stage2": stage2_checkpoint, "text_audio": text_audio_exp, "overrides": overrides}


def save_stage2(path: Path, overrides: list[str]) -> Path:
    stage2 = load_config(DEBUG_CONFIG, AudioLDMExperiment, overrides)
    torch.manual_seed(0)
    unet = build_unet(stage2.unet, text_width=384)
    with torch.no_grad():
        for parameter in unet.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return save_inference_checkpoint(path, models={UNET_NAME: unet}, config=config_to_dict(stage2), step=1)


def generate(models: dict, output_dir: Path, *extra: str, prompts=PROMPTS) -> int:
    arguments = ["--checkpoint", str(models["stage2"]), "--output_dir", str(output_dir), "--seed", "5",
                 "--num_inference_steps", "2", "--audio_length_in_s", "0.5", "--batch_size", "3"]
    return inference.main([*arguments, *[part for prompt in prompts for part in ("--text", prompt)], *extra])


def read_records(output_dir: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(output_dir.glob("*.json"))}


def test_files_are_named_by_rank_and_follow_the_scores_within_each_prompt(models, tmp_path):
    ranker = f"ours:{models['text_audio']}"
    assert generate(models, tmp_path / "ranked", "--num_waveforms_per_prompt", "3", "--ranker", ranker) == 0
    assert generate(models, tmp_path / "unranked", "--num_waveforms_per_prompt", "3", "--ranker", "none") == 0
    ranked, unranked = read_records(tmp_path / "ranked"), read_records(tmp_path / "unranked")
    stems = ["three_short_high_beeps", "a_low_hum"]
    assert sorted(ranked) == sorted(unranked) == sorted(f"{stem}_{index}" for stem in stems for index in range(3))
    checkpoint = str((models["text_audio"] / "checkpoints" / checkpoint_name(2)).resolve())
    scorer = load_text_audio_scorer(models["text_audio"])
    reordered = False
    for prompt_index, (prompt, stem) in enumerate(zip(PROMPTS, stems)):
        records = [ranked[f"{stem}_{rank}"] for rank in range(3)]
        assert all(record["prompt"] == prompt and record["prompt_index"] == prompt_index for record in records)
        assert [record["rank"] for record in records] == [0, 1, 2]
        assert all(record["ranker"] == f"ours:{checkpoint}" for record in records)
        scores = [record["score"] for record in records]
        assert scores == sorted(scores, reverse=True) and len(set(scores)) == 3
        order = [record["generation_index"] for record in records]
        assert sorted(order) == [0, 1, 2]
        reordered |= order != [0, 1, 2]
        # The ranked files are the unranked candidates, moved; their recorded scores are the scorer's on them.
        originals = [soundfile.read(tmp_path / "unranked" / f"{stem}_{index}.wav")[0] for index in range(3)]
        expected = scorer([prompt] * 3, [wave.astype(np.float32) for wave in originals])
        for rank, index in enumerate(order):
            wave, _ = soundfile.read(tmp_path / "ranked" / f"{stem}_{rank}.wav")
            np.testing.assert_array_equal(wave, originals[index])
            assert abs(scores[rank] - expected[index]) < 1e-3
        assert all(unranked[f"{stem}_{index}"]["rank"] is None and unranked[f"{stem}_{index}"]["score"] is None
                   and unranked[f"{stem}_{index}"]["generation_index"] == index for index in range(3))
    assert reordered, "with this seed the scores must reorder some prompt's candidates"
    assert unranked["a_low_hum_0"]["ranker"] == "none"


def test_one_waveform_per_prompt_with_a_ranker_records_its_score(models, tmp_path):
    assert generate(models, tmp_path, "--ranker", f"ours:{models['text_audio']}", prompts=["a low hum"]) == 0
    record = read_records(tmp_path)["a_low_hum"]
    assert record["rank"] == 0 and record["generation_index"] == 0 and isinstance(record["score"], float)
    wave, _ = soundfile.read(tmp_path / "a_low_hum.wav")
    expected = load_text_audio_scorer(models["text_audio"])(["a low hum"], [wave.astype(np.float32)])
    assert abs(record["score"] - expected[0]) < 1e-3


@pytest.mark.parametrize(
    "spec, message",
    [
        ("bogus:somewhere", "--ranker: 'bogus:somewhere' is not a ranker; use \"none\", \"auto\""),
        ("ours", "--ranker: 'ours' is not a ranker"),
        ("", "--ranker: '' is not a ranker"),
        ("ours:", "--ranker: 'ours:' is not a ranker"),
        ("ours:{tmp}/missing", "--ranker: ours ranker: {tmp}/missing does not exist"),
        ("clap:{tmp}/missing", "--ranker: clap ranker: {tmp}/missing does not exist"),
        ("ours:{tmp}", "--ranker: ours ranker: {tmp}: neither a checkpoint folder"),
        ("ours:{stage2}", "is a 'AudioLDM' checkpoint, not a TextAudio model"),
        ("clap:{stage2}/meta.json", "is not a folder"),
        ("clap:{tmp}", "--ranker: cannot load clap:{tmp}"),
    ],
)
def test_a_bad_ranker_stops_before_anything_is_generated_or_written(models, tmp_path, capsys, spec, message):
    fill = {"tmp": tmp_path, "stage2": models["stage2"]}
    output_dir = tmp_path / "out"
    assert generate(models, output_dir, "--num_waveforms_per_prompt", "2", "--ranker", spec.format(**fill)) == 2
    assert message.format(**fill) in capsys.readouterr().err
    assert not output_dir.exists()


def test_auto_ranks_with_the_builtin_model_only_when_it_exists(models, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(inference, "BUILTIN_RANKER", str(models["text_audio"]))
    assert generate(models, tmp_path / "auto", "--num_waveforms_per_prompt", "2", prompts=["a low hum"]) == 0
    assert "note: ranking each prompt's candidates with ours:" in capsys.readouterr().err
    records = read_records(tmp_path / "auto")
    assert records["a_low_hum_0"]["ranker"].startswith("ours:") and records["a_low_hum_0"]["rank"] == 0
    assert records["a_low_hum_0"]["score"] >= records["a_low_hum_1"]["score"]
    assert generate(models, tmp_path / "single", prompts=["a low hum"]) == 0
    assert read_records(tmp_path / "single")["a_low_hum"]["ranker"] == "none", "one candidate: nothing to rank"
    assert "note:" not in capsys.readouterr().err

    monkeypatch.setattr(inference, "BUILTIN_RANKER", str(tmp_path / "text_audio_builtin"))
    assert generate(models, tmp_path / "none", "--num_waveforms_per_prompt", "2", prompts=["a low hum"]) == 0
    assert "note: candidates stay in generation order" in capsys.readouterr().err
    assert read_records(tmp_path / "none")["a_low_hum_1"]["generation_index"] == 1


def test_the_checkpoint_config_sets_the_default_ranker(models, tmp_path, capsys):
    quiet = save_stage2(tmp_path / "quiet", [*models["overrides"], "inference.ranker=none"])
    base = ["--text", "a low hum", "--num_waveforms_per_prompt", "2", "--num_inference_steps", "1",
            "--audio_length_in_s", "0.2", "--output_dir"]
    assert inference.main(["--checkpoint", str(quiet), *base, str(tmp_path / "out")]) == 0
    assert "note:" not in capsys.readouterr().err, "an explicit none needs no note"
    assert read_records(tmp_path / "out")["a_low_hum_0"]["ranker"] == "none"
    broken = save_stage2(tmp_path / "broken", [*models["overrides"], f"inference.ranker=ours:{tmp_path}/gone"])
    assert inference.main(["--checkpoint", str(broken), *base, str(tmp_path / "never")]) == 2
    assert f"--ranker (default inference.ranker of {broken}): ours ranker:" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
    with pytest.raises(ConfigError, match="inference.ranker must be"):
        load_config(DEBUG_CONFIG, AudioLDMExperiment, [*models["overrides"], "inference.ranker=clap"])


def test_a_clap_folder_ranks_the_candidates(models, tmp_path, tiny_audioldm2_folder):  # noqa: F811
    assert generate(models, tmp_path, "--num_waveforms_per_prompt", "3", "--ranker",
                    f"clap:{tiny_audioldm2_folder}", prompts=["a low hum"]) == 0
    records = [read_records(tmp_path)[f"a_low_hum_{rank}"] for rank in range(3)]
    assert records[0]["ranker"] == f"clap:{tiny_audioldm2_folder.resolve()}"
    scores = [record["score"] for record in records]
    assert scores == sorted(scores, reverse=True) and sorted(r["generation_index"] for r in records) == [0, 1, 2]


def test_run_inference_sh_forwards_the_ranker_under_sh_and_bash(models, tmp_path):
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    common = ["egs/tta/audioldm/run_inference.sh", "--checkpoint", str(models["stage2"]), "--text", "a low hum",
              "--num_waveforms_per_prompt", "2", "--num_inference_steps", "1", "--audio_length_in_s", "0.2",
              "--output_dir", str(tmp_path / "out")]
    result = subprocess.run(["sh", *common, "--ranker", f"ours:{models['text_audio']}"], cwd=REPO_ROOT,
                            capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    records = read_records(tmp_path / "out")
    assert sorted(records) == ["a_low_hum_0", "a_low_hum_1"]
    assert records["a_low_hum_0"]["ranker"].startswith("ours:") and records["a_low_hum_1"]["rank"] == 1
    # The script's own checks (no Python start-up): --ranker is a flag that takes a value, in both shells.
    for shell in ("sh", "bash"):
        missing = subprocess.run([shell, *common, "--ranker"], cwd=REPO_ROOT, capture_output=True, text=True)
        assert missing.returncode == 2 and "run_inference.sh: --ranker needs a value" in missing.stderr
