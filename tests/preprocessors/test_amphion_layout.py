"""The seed recipe's layout (`wav/` + train/valid/test JSON lists of {Dataset, Uid, Caption}) as input."""

import json
from pathlib import Path

import pytest
import soundfile

from preprocessors.amphion_layout import read_amphion_layout
from preprocessors.common import write_processed_dataset
from preprocessors.config import PreprocessConfig, SourceConfig
from tests.preprocessors.synthetic_audio import tone, write_audio
from utils.config import ConfigError


def write_seed_layout(root: Path) -> Path:
    dataset_dir = root / "AudioCaps"
    write_audio(dataset_dir / "wav" / "---1_cCGK4M_0_10000.wav", tone(1.0))
    write_audio(dataset_dir / "wav" / "---lTs1dxhU_30000_40000.wav", tone(1.0, 22050), 22050)
    write_audio(dataset_dir / "wav" / "abc_0_10000.wav", tone(1.0))
    splits = {
        "train": [
            {"Dataset": "AudioCaps", "Uid": "---1_cCGK4M_0_10000", "Caption": "Idling car, train blows horn"},
            {"Dataset": "AudioCaps", "Uid": "no_audio_0_10000", "Caption": "A clip never downloaded"},
            {"Dataset": "AudioCaps", "Uid": "abc_0_10000", "Caption": ""},
        ],
        "val": [
            {
                "Dataset": "AudioCaps",
                "Uid": "---lTs1dxhU_30000_40000",
                "Caption": "A racing vehicle engine is heard passing by",
                "Source": "kept as an extra field",
            }
        ],
        "test": [{"Dataset": "AudioCaps", "Uid": "---1_cCGK4M_0_10000", "Caption": "Listed twice"}],
    }
    for name, records in splits.items():
        (dataset_dir / f"{name}.json").write_text(json.dumps(records), encoding="utf-8")
    return dataset_dir


def test_seed_layout_is_reprocessed_into_the_common_layout(tmp_path):
    dataset_dir = write_seed_layout(tmp_path)
    source = SourceConfig(kind="amphion", dataset_dir=str(dataset_dir))
    config = PreprocessConfig(processed_dir=str(tmp_path / "out"), dataset="AudioCaps", source=source, num_workers=1)
    summary = write_processed_dataset(config, read_amphion_layout(source))
    assert (summary.processed, summary.skipped) == (2, 3)
    out = tmp_path / "out" / "AudioCaps"
    train = json.loads((out / "train.json").read_text(encoding="utf-8"))
    valid = json.loads((out / "valid.json").read_text(encoding="utf-8"))
    assert train == [
        {
            "Dataset": "AudioCaps",
            "Uid": "---1_cCGK4M_0_10000",
            "Caption": "Idling car, train blows horn",
            "Captions": ["Idling car, train blows horn"],
        }
    ]
    assert valid[0]["Source"] == "kept as an extra field"
    assert json.loads((out / "test.json").read_text(encoding="utf-8")) == []
    assert soundfile.info(str(out / "wav" / "---lTs1dxhU_30000_40000.wav")).samplerate == 16000
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert sorted((s["Uid"], s["category"]) for s in report["skipped"]) == [
        ("---1_cCGK4M_0_10000", "duplicate"),
        ("abc_0_10000", "no_caption"),
        ("no_audio_0_10000", "missing"),
    ]


def test_seed_layout_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"preprocess\.source\.dataset_dir: folder not found"):
        read_amphion_layout(SourceConfig(kind="amphion", dataset_dir=str(tmp_path / "absent")))
    (tmp_path / "empty" / "wav").mkdir(parents=True)
    with pytest.raises(ConfigError, match="holds none of train.json"):
        read_amphion_layout(SourceConfig(kind="amphion", dataset_dir=str(tmp_path / "empty")))
    (tmp_path / "nowav").mkdir()
    with pytest.raises(ConfigError, match="has no wav/ folder"):
        read_amphion_layout(SourceConfig(kind="amphion", dataset_dir=str(tmp_path / "nowav")))
    (tmp_path / "empty" / "train.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        read_amphion_layout(SourceConfig(kind="amphion", dataset_dir=str(tmp_path / "empty")))


def test_processing_the_seed_layout_in_place_is_refused(tmp_path):
    dataset_dir = write_seed_layout(tmp_path / "processed")
    source = SourceConfig(kind="amphion", dataset_dir=str(dataset_dir))
    config = PreprocessConfig(processed_dir=str(tmp_path / "processed"), dataset="AudioCaps", source=source)
    with pytest.raises(ConfigError, match="never writes over its sources"):
        write_processed_dataset(config, read_amphion_layout(source))
