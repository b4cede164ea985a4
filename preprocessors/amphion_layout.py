"""The Amphion TTA recipe's own layout as input: `<dataset_dir>/wav/<Uid>.wav` plus split files of
{"Dataset", "Uid", "Caption"} records, as the seed recipe documents it (and ships processed AudioCaps in).

Split files looked for in `dataset_dir`: train.json; valid.json, else val.json; test.json (at least one). A record
may carry a "Captions" list instead of or besides "Caption"; any other field is kept. The audio is
`<audio_dir>/<Uid>.<ext>` with audio_dir defaulting to `<dataset_dir>/wav` (any extension of AUDIO_EXTENSIONS,
searched recursively); it is read, resampled and checked like any other source, so mels made by another front
end are never reused.
"""

from preprocessors.common import (
    RESERVED_FIELDS,
    SkippedClip,
    SourceClip,
    SourceListing,
    find_audio_files,
    merge_clips,
    preferred_by_stem,
    read_json_records,
    record_captions,
    required_path,
)
from preprocessors.config import SourceConfig
from utils.config import ConfigError

SPLIT_FILES = {"train": ("train.json",), "valid": ("valid.json", "val.json"), "test": ("test.json",)}


def read_amphion_layout(source: SourceConfig) -> SourceListing:
    """List the clips of a seed-layout folder. Raises ConfigError for a missing folder or split file."""
    dataset_dir = required_path(source.dataset_dir, "preprocess.source.dataset_dir", kind="amphion", is_dir=True)
    if source.audio_dir:
        audio_dir = required_path(source.audio_dir, "preprocess.source.audio_dir", kind="amphion", is_dir=True)
    else:
        audio_dir = dataset_dir / "wav"
        if not audio_dir.is_dir():
            raise ConfigError(
                f"preprocess.source.dataset_dir: {dataset_dir.resolve()} has no wav/ folder "
                "(set preprocess.source.audio_dir if the audio lives elsewhere)"
            )
    split_paths = []
    for split, names in SPLIT_FILES.items():
        path = next((dataset_dir / name for name in names if (dataset_dir / name).is_file()), None)
        if path is not None:
            split_paths.append((split, path))
    if not split_paths:
        raise ConfigError(
            f"preprocess.source.dataset_dir: {dataset_dir.resolve()} holds none of train.json, valid.json, "
            "val.json, test.json"
        )
    by_stem = preferred_by_stem(find_audio_files(audio_dir), key=lambda path: path.stem)

    clips: list[SourceClip] = []
    skipped: list[SkippedClip] = []
    for split, path in split_paths:
        for index, record in enumerate(read_json_records(path, "preprocess.source.dataset_dir")):
            uid = record.get("Uid") if isinstance(record, dict) else None
            if isinstance(uid, int) and not isinstance(uid, bool):
                uid = str(uid)
            if not isinstance(uid, str) or not uid:
                skipped.append(SkippedClip("", split, "bad_record", f"{path} record {index}: no Uid"))
                continue
            captions = record_captions(record)
            if not captions:
                skipped.append(SkippedClip(uid, split, "no_caption", f"{path} record {index}: no caption"))
                continue
            audio_path = by_stem.get(uid)
            extra = {key: value for key, value in record.items() if key not in RESERVED_FIELDS}
            missing_reason = "" if audio_path else f"no audio named {uid}.* under {audio_dir}"
            clips.append(SourceClip(uid, split, captions, audio_path, extra, missing_reason))
    return merge_clips(clips, skipped)
