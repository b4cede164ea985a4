"""A captioned folder described by a JSON captions file, and the hash split for sources without splits."""

import json

from preprocessors.common import hashed_split
from preprocessors.config import SourceConfig
from preprocessors.folder import read_folder
from tests.preprocessors.synthetic_audio import tone, write_audio


def test_json_records_keep_their_fields_and_find_their_audio(tmp_path):
    write_audio(tmp_path / "audio" / "dog_01.wav", tone(1.0))
    write_audio(tmp_path / "audio" / "birds" / "song.flac", tone(1.0))
    write_audio(tmp_path / "audio" / "rain.ogg", tone(1.0))
    records = [
        {"Uid": "dog_01", "Captions": ["A dog barks", "Barking"], "Split": "val", "Attributes": {"loud": True}},
        {"File": "birds/song.flac", "Caption": "Birds sing", "Split": "test", "Family": "animals"},
        {"Uid": "rain", "Caption": "Rain falls"},
        {"Uid": "odd", "Caption": "x", "Split": "holdout"},
        {"Caption": "no id"},
        {"Uid": "silent_caption", "Captions": []},
    ]
    (tmp_path / "captions.json").write_text(json.dumps(records), encoding="utf-8")
    source = SourceConfig(
        kind="folder", audio_dir=str(tmp_path / "audio"), captions_file=str(tmp_path / "captions.json")
    )
    listing = read_folder(source, valid_fraction=0.0, test_fraction=0.0)
    clips = {clip.uid: clip for clip in listing.clips}
    assert clips["dog_01"].split == "valid" and clips["dog_01"].captions == ["A dog barks", "Barking"]
    assert clips["dog_01"].extra == {"Attributes": {"loud": True}}
    assert clips["birds__song"].audio_path == tmp_path / "audio" / "birds" / "song.flac"
    assert clips["birds__song"].extra == {"Family": "animals"}
    assert clips["rain"].split == "train" and clips["rain"].audio_path.suffix == ".ogg"
    assert sorted(s.category for s in listing.skipped) == ["bad_record", "bad_split", "no_caption"]


def test_hashed_split_is_stable_and_follows_the_fractions():
    uids = [f"clip_{index:05d}" for index in range(4000)]
    splits = [hashed_split(uid, 0.1, 0.2) for uid in uids]
    assert splits == [hashed_split(uid, 0.1, 0.2) for uid in uids]
    assert abs(splits.count("valid") / 4000 - 0.1) < 0.02
    assert abs(splits.count("test") / 4000 - 0.2) < 0.02
    assert set(hashed_split(uid, 0.0, 0.0) for uid in uids) == {"train"}
