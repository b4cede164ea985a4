"""AudioCaps: CSV parsing, caption grouping and matching downloaded clips under every supported naming."""

import json
from pathlib import Path

import pytest

from preprocessors.audiocaps import audiocaps_uid, read_audiocaps
from preprocessors.common import write_processed_dataset
from preprocessors.config import PreprocessConfig, SourceConfig
from tests.preprocessors.synthetic_audio import tone, write_audio
from utils.config import ConfigError

HEADER = "audiocap_id,youtube_id,start_time,caption"

# youtube id, start, file name relative to the audio folder (None: not downloaded)
TRAIN_CLIPS = [
    ("---1_cCGK4M", 0, "---1_cCGK4M_0_10000.wav"),  # the seed's <ytid>_<start ms>_<end ms>
    ("-AbC_dEf123", 30, "-AbC_dEf123_30.flac"),  # <ytid>_<start>
    ("x9Y8z7W6v5U", 12, "x9Y8z7W6v5U_12_22.ogg"),  # <ytid>_<start>_<end>
    ("q1W2e3R4t5Y", 40, "Yq1W2e3R4t5Y_40.000_50.000.wav"),  # AudioSet segment name
    ("Zz0_-Yy1Xx2", 7, "nested/YZz0_-Yy1Xx2.mp3"),  # Y<ytid>, in a subfolder
    ("PlainId0001", 0, "PlainId0001.wav"),  # yt-dlp's <ytid>
    ("ByCapId0001", 20, "train/106.wav"),  # audiocaps-download's <audiocap_id>
    ("GoneVideo01", 50, None),
]
TEST_CAPTIONS = [f"caption {n} of the test clip" for n in range(5)]


def write_dataset(root: Path) -> SourceConfig:
    audio = root / "audio"
    train_rows = [HEADER]
    for index, (youtube_id, start, file_name) in enumerate(TRAIN_CLIPS):
        train_rows.append(f'{100 + index},{youtube_id},{start},"train caption {index}, with a comma"')
        if file_name is not None:
            path = audio / file_name
            kwargs = {"format": "MP3"} if path.suffix == ".mp3" else {}
            write_audio(path, tone(1.0, frequency=300 + 50 * index), **kwargs)
    (root / "train.csv").write_text("\n".join(train_rows) + "\n", encoding="utf-8")
    test_rows = [HEADER] + [f"{500 + n},tEsTcLiP_01,90,{caption}" for n, caption in enumerate(TEST_CAPTIONS)]
    (root / "test.csv").write_text("\n".join(test_rows) + "\n", encoding="utf-8")
    write_audio(audio / "tEsTcLiP_01_90.wav", tone(1.0))
    (root / "val.csv").write_text(f"{HEADER}\n900,VaLcLiP_001,5,a validation clip\n", encoding="utf-8")
    write_audio(audio / "VaLcLiP_001_5000_15000.wav", tone(1.0))
    write_audio(audio / "VaLcLiP_001_5000_15000.mp3", tone(1.0), format="MP3")  # .wav preferred
    return SourceConfig(
        kind="audiocaps",
        audio_dir=str(audio),
        train_csv=str(root / "train.csv"),
        valid_csv=str(root / "val.csv"),
        test_csv=str(root / "test.csv"),
    )


def test_uid_is_the_seed_naming():
    assert audiocaps_uid("---1_cCGK4M", 0) == "---1_cCGK4M_0_10000"
    assert audiocaps_uid("---lTs1dxhU", 30.0) == "---lTs1dxhU_30000_40000"


def test_every_supported_naming_is_matched(tmp_path):
    source = write_dataset(tmp_path)
    listing = read_audiocaps(source)
    by_uid = {clip.uid: clip for clip in listing.clips}
    for index, (youtube_id, start, file_name) in enumerate(TRAIN_CLIPS):
        clip = by_uid[audiocaps_uid(youtube_id, start)]
        assert clip.split == "train"
        assert clip.captions == [f"train caption {index}, with a comma"]
        expected = None if file_name is None else tmp_path / "audio" / file_name
        assert clip.audio_path == expected, youtube_id
    assert "GoneVideo01" in by_uid["GoneVideo01_50000_60000"].missing_reason

    test_clip = by_uid["tEsTcLiP_01_90000_100000"]
    assert test_clip.split == "test" and test_clip.captions == TEST_CAPTIONS
    assert test_clip.extra == {
        "YoutubeId": "tEsTcLiP_01",
        "StartTime": 90.0,
        "AudiocapIds": ["500", "501", "502", "503", "504"],
    }
    assert by_uid["VaLcLiP_001_5000_15000"].audio_path.suffix == ".wav"
    assert by_uid["VaLcLiP_001_5000_15000"].split == "valid"


def test_processed_split_files_keep_all_captions(tmp_path):
    source = write_dataset(tmp_path)
    config = PreprocessConfig(processed_dir=str(tmp_path / "out"), dataset="AudioCaps", source=source, num_workers=1)
    summary = write_processed_dataset(config, read_audiocaps(source))
    assert (summary.processed, summary.skipped) == (9, 1)
    dataset_dir = tmp_path / "out" / "AudioCaps"
    test = json.loads((dataset_dir / "test.json").read_text(encoding="utf-8"))
    assert test == [
        {
            "Dataset": "AudioCaps",
            "Uid": "tEsTcLiP_01_90000_100000",
            "Caption": TEST_CAPTIONS[0],
            "Captions": TEST_CAPTIONS,
            "YoutubeId": "tEsTcLiP_01",
            "StartTime": 90.0,
            "AudiocapIds": ["500", "501", "502", "503", "504"],
        }
    ]
    train = json.loads((dataset_dir / "train.json").read_text(encoding="utf-8"))
    assert len(train) == 7 and (dataset_dir / "mel" / "---1_cCGK4M_0_10000.npy").is_file()
    report = json.loads((dataset_dir / "report.json").read_text(encoding="utf-8"))
    assert [(s["Uid"], s["category"]) for s in report["skipped"]] == [("GoneVideo01_50000_60000", "missing")]


def test_bad_csvs_fail_naming_the_key(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "train.csv").write_text("youtube_id,caption\nabc,a dog\n", encoding="utf-8")
    source = SourceConfig(kind="audiocaps", audio_dir=str(tmp_path / "audio"), train_csv=str(tmp_path / "train.csv"))
    with pytest.raises(ConfigError, match=r"preprocess\.source\.train_csv: .* lacks .*audiocap_id, start_time"):
        read_audiocaps(source)
    source.train_csv = str(tmp_path / "absent.csv")
    with pytest.raises(ConfigError, match=r"preprocess\.source\.train_csv: file not found: .*absent\.csv"):
        read_audiocaps(source)
    with pytest.raises(ConfigError, match="at least one of train_csv"):
        read_audiocaps(SourceConfig(kind="audiocaps", audio_dir=str(tmp_path / "audio")))


def test_a_clip_listed_in_two_splits_is_kept_once(tmp_path):
    write_audio(tmp_path / "audio" / "Leak0000001.wav", tone(1.0))
    (tmp_path / "train.csv").write_text(f"{HEADER}\n1,Leak0000001,0,a caption\n", encoding="utf-8")
    (tmp_path / "test.csv").write_text(f"{HEADER}\n2,Leak0000001,0,another caption\n", encoding="utf-8")
    source = SourceConfig(
        kind="audiocaps",
        audio_dir=str(tmp_path / "audio"),
        train_csv=str(tmp_path / "train.csv"),
        test_csv=str(tmp_path / "test.csv"),
    )
    listing = read_audiocaps(source)
    assert [(clip.uid, clip.split) for clip in listing.clips] == [("Leak0000001_0_10000", "train")]
    assert [(s.split, s.category) for s in listing.skipped] == [("test", "duplicate")]
