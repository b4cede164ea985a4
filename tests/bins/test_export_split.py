"""`bins/tta/export_split.py`: a split's prompts (first captions, no repeats) and real wavs, on the tiny built-in
dataset; usage errors exit with status 2 and overwrite nothing."""

import json

import pytest

from bins.tta.export_split import main as export_main
from bins.tta.export_split import split_prompts
from models.base.data import ClipRecord, read_split
from tests.models.tta.autoencoderkl.tiny_recipe import DEBUG_CONFIG, as_overrides, build_tiny_dataset, data_values


@pytest.fixture(scope="module")
def processed_dir(tmp_path_factory):
    return build_tiny_dataset(tmp_path_factory.mktemp("data") / "processed")


def test_split_prompts_keep_first_captions_once_in_uid_order():
    records = [ClipRecord("d", "b", ["Two beeps", "x"], {}), ClipRecord("d", "a", ["One beep"], {}),
               ClipRecord("d", "c", ["Two beeps "], {})]
    assert split_prompts(records) == ["One beep", "Two beeps"]


def test_prompts_and_wavs_of_a_split(processed_dir, tmp_path):
    prompts, wav_dir = tmp_path / "prompts.txt", tmp_path / "real"
    arguments = ["--config", str(DEBUG_CONFIG), *as_overrides(data_values(processed_dir)), "--split", "train"]
    assert export_main([*arguments, "--prompts", str(prompts), "--wav_dir", str(wav_dir)]) == 0
    records = read_split(processed_dir, ["builtin_sfx"], "train")
    assert prompts.read_text().splitlines() == split_prompts(records)
    assert sorted(path.name for path in wav_dir.iterdir()) == sorted(f"{record.uid}.wav" for record in records)
    first = wav_dir / f"{records[0].uid}.wav"
    assert first.read_bytes() == records[0].wav_path(processed_dir).read_bytes()

    before = prompts.read_text()
    assert export_main([*arguments, "--prompts", str(prompts)]) == 2
    assert prompts.read_text() == before
    assert export_main([*arguments, "--prompts", str(prompts), "--overwrite", "--max_clips", "1"]) == 0
    assert prompts.read_text().splitlines() == [sorted(records, key=lambda r: r.uid)[0].captions[0].strip()]


def test_usage_errors(processed_dir, tmp_path, capsys):
    arguments = ["--config", str(DEBUG_CONFIG), *as_overrides(data_values(processed_dir))]
    assert export_main(arguments) == 2
    assert "nothing to do" in capsys.readouterr().err
    assert export_main([*arguments, "--split", "nope", "--prompts", str(tmp_path / "p.txt")]) == 2
    assert "nope.json not found" in capsys.readouterr().err
    assert not (tmp_path / "p.txt").exists()
    assert export_main([*arguments, "--max_clips", "0", "--prompts", str(tmp_path / "p.txt")]) == 2
    assert "--max_clips must be >= 1" in capsys.readouterr().err
    # A split listing a clip whose wav is gone names it.
    split = processed_dir / "builtin_sfx" / "valid.json"
    missing = tmp_path / "processed"
    (missing / "builtin_sfx").mkdir(parents=True)
    (missing / "builtin_sfx" / "valid.json").write_text(split.read_text())
    overrides = as_overrides({**data_values(processed_dir), "preprocess.processed_dir": str(missing)})
    assert export_main(["--config", str(DEBUG_CONFIG), *overrides, "--split", "valid",
                        "--wav_dir", str(tmp_path / "w")]) == 2
    uid = json.loads(split.read_text())[0]["Uid"]
    assert f"clip {uid!r}" in capsys.readouterr().err
