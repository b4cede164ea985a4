"""The built-in dataset through the preprocessing stage: generated once, loudness kept, reused on re-runs."""

import json

import pytest
import soundfile

from preprocessors import builtin_source
from preprocessors.builtin import active_rms_db
from preprocessors.config import BuiltinConfig, PreprocessConfig, SourceConfig
from preprocessors.pipeline import run_preprocess
from utils.config import ConfigError


def builtin_config(tmp_path, **builtin) -> PreprocessConfig:
    settings = {"num_clips": 6, "clip_seconds": 2.0, "families": ["sfx"], **builtin}
    return PreprocessConfig(
        processed_dir=str(tmp_path / "data"),
        dataset="builtin",
        source=SourceConfig(kind="builtin"),
        builtin=BuiltinConfig(**settings),
        num_workers=1,
        valid_fraction=0.2,
        test_fraction=0.2,
    )


def test_builtin_set_is_generated_processed_and_reused(tmp_path, monkeypatch):
    summary = run_preprocess(builtin_config(tmp_path))
    assert (summary.processed, summary.skipped) == (6, 0)
    dataset_dir = tmp_path / "data" / "builtin"
    assert (tmp_path / "data" / "builtin_raw" / "captions.json").is_file()
    records = [
        record
        for split in ("train", "valid", "test")
        for record in json.loads((dataset_dir / f"{split}.json").read_text(encoding="utf-8"))
    ]
    assert len(records) == 6
    for record in records:
        assert record["Family"] == "sfx" and record["Caption"] == record["Captions"][0]
        waveform, sample_rate = soundfile.read(str(dataset_dir / "wav" / f"{record['Uid']}.wav"), dtype="float32")
        # No peak normalisation by default: the level the "loud"/"quiet" captions describe is still there.
        assert active_rms_db(waveform, sample_rate) == pytest.approx(record["Attributes"]["rms_db"], abs=0.2)

    def must_not_build(**kwargs):
        raise AssertionError("the raw built-in set should have been reused")

    monkeypatch.setattr(builtin_source, "build_builtin_dataset", must_not_build)
    again = run_preprocess(builtin_config(tmp_path))
    assert (again.processed, again.resumed) == (0, 6)


def test_builtin_generator_errors_become_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"preprocess\.builtin: .*families"):
        run_preprocess(builtin_config(tmp_path, families=["spaceships"]))
