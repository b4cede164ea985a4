"""AudioCaps (Kim et al., NAACL 2019) from its official CSVs and a folder of downloaded clips.

The CSVs have the columns `audiocap_id,youtube_id,start_time,caption`; train.csv has one caption per clip, val
and test five. Rows that share (youtube_id, start_time) are one clip: all its captions go to "Captions" and the
first to "Caption". The Uid is the Amphion recipe's `<youtube_id>_<start ms>_<end ms>` (`---1_cCGK4M_0_10000`),
AudioCaps clips being 10 s long. Extra fields kept: "YoutubeId", "StartTime" (seconds), "AudiocapIds".

Downloaders name files differently, so a clip's audio is the first file under `audio_dir` (searched
recursively; .wav, then .flac, .ogg, .mp3, .m4a) whose name without extension is, in this order:
1. `<ytid>_<start ms>_<end ms>`        the seed recipe's naming, e.g. `---1_cCGK4M_0_10000`
2. `<ytid>_<start>`                    seconds, e.g. `---1_cCGK4M_0` (also `_0.0`, `_0.000`)
3. `<ytid>_<start>_<end>`              seconds, e.g. `---1_cCGK4M_0_10`
4. `Y<ytid>_<start>.000_<end>.000`     AudioSet segment names, e.g. `Y---1_cCGK4M_0.000_10.000`
5. `Y<ytid>`                           AudioSet / AudioLDM style, e.g. `Y---1_cCGK4M`
6. `<ytid>`                            yt-dlp's default `%(id)s`
7. `<audiocap_id>` of any of the clip's rows, as the `audiocaps-download` package names its files.
Names 5-7 carry no start time; AudioCaps takes one segment per video, so the id alone identifies the clip.
Decoding .m4a needs ffmpeg on the PATH (libsndfile reads the other formats itself).
"""

import csv
from pathlib import Path

from preprocessors.common import (
    SkippedClip,
    SourceClip,
    SourceListing,
    find_audio_files,
    merge_clips,
    preferred_by_stem,
    required_path,
)
from preprocessors.config import SourceConfig
from utils.config import ConfigError

CLIP_SECONDS = 10
CSV_COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
_CSV_KEYS = (("train_csv", "train"), ("valid_csv", "valid"), ("test_csv", "test"))


def _seconds_text(seconds: float) -> list[str]:
    """The ways a start or end time appears in file names: `30`, `30.0`, `30.000` (or `12.5`, `12.500`)."""
    if float(seconds).is_integer():
        whole = int(seconds)
        return [str(whole), f"{whole}.0", f"{whole}.000"]
    return [repr(float(seconds)), f"{seconds:.3f}"]


def audiocaps_uid(youtube_id: str, start_seconds: float) -> str:
    """The seed recipe's Uid, `<youtube_id>_<start ms>_<end ms>`."""
    start_ms = int(round(start_seconds * 1000))
    return f"{youtube_id}_{start_ms}_{start_ms + CLIP_SECONDS * 1000}"


def candidate_stems(youtube_id: str, start_seconds: float, audiocap_ids: list[str]) -> list[str]:
    """File names (without extension) that may hold this clip, in the order of the module docstring."""
    end_seconds = start_seconds + CLIP_SECONDS
    starts, ends = _seconds_text(start_seconds), _seconds_text(end_seconds)
    stems = [audiocaps_uid(youtube_id, start_seconds)]
    stems += [f"{youtube_id}_{start}" for start in starts]
    stems += [f"{youtube_id}_{start}_{end}" for start, end in zip(starts, ends)]
    stems += [f"Y{youtube_id}_{start_seconds:.3f}_{end_seconds:.3f}", f"Y{youtube_id}", youtube_id]
    stems += audiocap_ids
    return stems


def _read_csv(path: Path, key: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in CSV_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(
                f"preprocess.source.{key}: {path} lacks the AudioCaps column(s) {', '.join(missing)} "
                f"(expected a header {','.join(CSV_COLUMNS)})"
            )
        return list(reader)


def read_audiocaps(source: SourceConfig) -> SourceListing:
    """List AudioCaps clips from the CSVs named in `source`, matched to files under `source.audio_dir`.

    Raises ConfigError (naming the key) for a missing folder or CSV or a CSV without the AudioCaps header.
    """
    csv_paths = [
        (key, split, required_path(getattr(source, key), f"preprocess.source.{key}", kind="audiocaps", is_dir=False))
        for key, split in _CSV_KEYS
        if getattr(source, key)
    ]
    if not csv_paths:
        raise ConfigError(
            "preprocess.source.train_csv: source kind 'audiocaps' needs at least one of train_csv, valid_csv, test_csv"
        )
    audio_dir = required_path(source.audio_dir, "preprocess.source.audio_dir", kind="audiocaps", is_dir=True)
    by_stem = preferred_by_stem(find_audio_files(audio_dir), key=lambda path: path.stem)

    clips: dict[tuple[str, str], SourceClip] = {}
    skipped: list[SkippedClip] = []
    for key, split, csv_path in csv_paths:
        for line, row in enumerate(_read_csv(csv_path, key), start=2):
            youtube_id = (row["youtube_id"] or "").strip()
            caption = (row["caption"] or "").strip()
            try:
                start_seconds = float(row["start_time"])
            except (TypeError, ValueError):
                skipped.append(
                    SkippedClip(youtube_id, split, "bad_row", f"{csv_path}:{line}: start_time {row['start_time']!r}")
                )
                continue
            if not youtube_id or not caption:
                skipped.append(SkippedClip(youtube_id, split, "bad_row", f"{csv_path}:{line}: empty id or caption"))
                continue
            uid = audiocaps_uid(youtube_id, start_seconds)
            clip = clips.get((split, uid))
            if clip is None:
                clip = clips[(split, uid)] = SourceClip(
                    uid,
                    split,
                    [],
                    None,
                    {"YoutubeId": youtube_id, "StartTime": start_seconds, "AudiocapIds": []},
                )
            clip.captions.append(caption)
            clip.extra["AudiocapIds"].append(str(row["audiocap_id"]).strip())

    for clip in clips.values():
        stems = candidate_stems(clip.extra["YoutubeId"], clip.extra["StartTime"], clip.extra["AudiocapIds"])
        clip.audio_path = next((by_stem[stem] for stem in stems if stem in by_stem), None)
        if clip.audio_path is None:
            clip.missing_reason = f"no audio under {audio_dir} named {' / '.join(stems[:2])} / ... (all names tried "
            clip.missing_reason += "are listed in preprocessors/audiocaps.py)"
    return merge_clips(list(clips.values()), skipped)
