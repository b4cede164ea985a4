"""Any folder of audio files with a captions file: a CSV (`file,caption[,split]`) or a JSON list of records.

CSV: a header with `file` and `caption`, optionally `split`; `file` is the audio's path relative to `audio_dir`,
with or without extension; several rows naming one file add captions to it. The Uid is that path without its
extension, "/" replaced by "__" (`dogs/bark1.wav` -> `dogs__bark1`).

JSON (e.g. the built-in set's captions.json): records with "Uid" and/or "File", "Caption" and/or "Captions",
optionally "Split"; every other field ("Attributes", "Family", ...) is kept in the split files. Without "File",
the audio is the file whose path without extension relative to `audio_dir` (or, failing that, whose name
without extension) equals the Uid.

Splits are train/valid/test (val, validation, dev, eval are accepted); a clip that names none is split by a
stable hash of its Uid with `preprocess.valid_fraction` and `preprocess.test_fraction`.
"""

import csv
from pathlib import Path, PurePosixPath

from preprocessors.common import (
    AUDIO_EXTENSIONS,
    RESERVED_FIELDS,
    SkippedClip,
    SourceClip,
    SourceListing,
    find_audio_files,
    hashed_split,
    merge_clips,
    preferred_by_stem,
    read_json_records,
    record_captions,
    required_path,
    split_name,
)
from preprocessors.config import SourceConfig
from utils.config import ConfigError

_SOURCE_FIELDS = ("File", "Split")


class _AudioIndex:
    """Finds a clip's file under `audio_dir` by relative path (with or without extension) or by Uid."""

    def __init__(self, audio_dir: Path):
        self.audio_dir = audio_dir
        files = find_audio_files(audio_dir)
        self.by_relative = preferred_by_stem(
            files, key=lambda path: path.relative_to(audio_dir).with_suffix("").as_posix()
        )
        self.by_stem = preferred_by_stem(files, key=lambda path: path.stem)

    def named(self, relative: str) -> tuple[str, Path | None]:
        """(Uid, file) for a path as a captions file writes it; the file is None when nothing matches."""
        relative = relative.strip().replace("\\", "/")
        direct = self.audio_dir / relative
        posix = PurePosixPath(relative)
        if direct.is_file() or posix.suffix.lower() in AUDIO_EXTENSIONS:
            posix = posix.with_suffix("")
        uid = posix.as_posix().replace("/", "__")
        return uid, direct if direct.is_file() else self.by_relative.get(posix.as_posix())

    def for_uid(self, uid: str) -> Path | None:
        return self.by_relative.get(uid) or self.by_stem.get(uid)


def _split_of(value, uid: str, valid_fraction: float, test_fraction: float) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return hashed_split(uid, valid_fraction, test_fraction)
    return split_name(value) if isinstance(value, str) else None


def _csv_clips(path: Path, index: _AudioIndex, valid_fraction: float, test_fraction: float, key: str):
    clips, skipped = [], []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip().lower() for name in next(reader, [])]
        if "file" not in header or "caption" not in header:
            raise ConfigError(f"{key}: {path} needs a header with columns file,caption[,split], got {header}")
        columns = {name: position for position, name in enumerate(header)}
        for line, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            cells = {name: (row[position].strip() if position < len(row) else "") for name, position in columns.items()}
            uid, audio_path = index.named(cells["file"])
            if not cells["file"] or not cells["caption"]:
                skipped.append(SkippedClip(uid, "", "bad_row", f"{path}:{line}: empty file or caption"))
                continue
            split = _split_of(cells.get("split"), uid, valid_fraction, test_fraction)
            if split is None:
                skipped.append(SkippedClip(uid, "", "bad_split", f"{path}:{line}: unknown split {cells['split']!r}"))
                continue
            missing = "" if audio_path else f"no audio file {cells['file']!r} under {index.audio_dir}"
            clips.append(SourceClip(uid, split, [cells["caption"]], audio_path, {}, missing))
    return clips, skipped


def _json_clips(path: Path, index: _AudioIndex, valid_fraction: float, test_fraction: float, key: str):
    clips, skipped = [], []
    for position, record in enumerate(read_json_records(path, key)):
        if not isinstance(record, dict):
            skipped.append(SkippedClip("", "", "bad_record", f"{path} record {position}: not an object"))
            continue
        uid, file_name = record.get("Uid"), record.get("File")
        audio_path = None
        if isinstance(file_name, str) and file_name.strip():
            file_uid, audio_path = index.named(file_name)
            uid = uid if isinstance(uid, str) and uid else file_uid
        elif isinstance(uid, str) and uid:
            audio_path = index.for_uid(uid)
        else:
            skipped.append(SkippedClip("", "", "bad_record", f"{path} record {position}: no Uid or File"))
            continue
        captions = record_captions(record)
        split = _split_of(record.get("Split"), uid, valid_fraction, test_fraction)
        if not captions or split is None:
            problem = "no caption" if not captions else f"unknown Split {record.get('Split')!r}"
            category = "no_caption" if not captions else "bad_split"
            skipped.append(SkippedClip(uid, split or "", category, f"{path} record {position}: {problem}"))
            continue
        extra = {k: v for k, v in record.items() if k not in RESERVED_FIELDS and k not in _SOURCE_FIELDS}
        missing = "" if audio_path else f"no audio for Uid {uid!r} under {index.audio_dir}"
        clips.append(SourceClip(uid, split, captions, audio_path, extra, missing))
    return clips, skipped


def read_captioned_folder(
    audio_dir: Path,
    captions_path: Path,
    *,
    valid_fraction: float,
    test_fraction: float,
    captions_key: str = "preprocess.source.captions_file",
) -> SourceListing:
    """List the clips of `audio_dir` described by a .csv or .json captions file (see module docstring).

    `captions_key` is the config key named in errors about the captions file.
    """
    index = _AudioIndex(audio_dir)
    suffix = captions_path.suffix.lower()
    if suffix == ".csv":
        clips, skipped = _csv_clips(captions_path, index, valid_fraction, test_fraction, captions_key)
    elif suffix == ".json":
        clips, skipped = _json_clips(captions_path, index, valid_fraction, test_fraction, captions_key)
    else:
        raise ConfigError(f"{captions_key}: {captions_path} must be a .csv or .json file")
    return merge_clips(clips, skipped)


def read_folder(source: SourceConfig, *, valid_fraction: float, test_fraction: float) -> SourceListing:
    """List a "folder" source. Raises ConfigError for a missing folder or captions file."""
    audio_dir = required_path(source.audio_dir, "preprocess.source.audio_dir", kind="folder", is_dir=True)
    captions_path = required_path(
        source.captions_file, "preprocess.source.captions_file", kind="folder", is_dir=False
    )
    return read_captioned_folder(
        audio_dir, captions_path, valid_fraction=valid_fraction, test_fraction=test_fraction
    )
