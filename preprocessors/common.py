"""The common processed layout, and the writer that produces it from any source's list of clips.

Layout under `<processed_dir>/<dataset>/` (the Amphion TTA recipe's, plus two bookkeeping files):
- `wav/<Uid>.wav`: mono 16-bit PCM at `preprocess.mel.sample_rate`;
- `mel/<Uid>.npy`: float32 log-mel (n_mels, frames) of exactly that wav;
- `train.json`, `valid.json`, `test.json`: lists of {"Dataset", "Uid", "Caption", "Captions", ...extra fields
  kept from the source}; "Caption" is the first of "Captions";
- `manifest.json`: per clip duration, samples and mel frames, with totals per split;
- `report.json`: counts, and every clip that was skipped with its reason;
- `preprocess_settings.json`: the settings the outputs were made with, so a re-run with different ones stops
  instead of mixing old and new clips (set `preprocess.overwrite` to redo everything).

Source readers (audiocaps.py, amphion_layout.py, folder.py, builtin_source.py) only list clips; all audio work,
resumption and reporting happen here and in clip.py. A bad source clip is skipped and reported; an error writing
the outputs (a full disk) stops the run, and the next run resumes where it stopped.
"""

import hashlib
import json
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from preprocessors.clip import (
    PARTIAL_SUFFIX,
    ClipJob,
    ClipResult,
    ClipSettings,
    finished_sizes,
    init_worker,
    process_clip,
    process_clip_in_worker,
)
from preprocessors.config import PreprocessConfig
from utils.audio import build_log_mel
from utils.config import ConfigError, config_to_dict

SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "val": "valid",
    "validation": "valid",
    "dev": "valid",
    "test": "test",
    "eval": "test",
    "evaluation": "test",
}
# Searched in this order when one clip exists in several formats.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a")
RESERVED_FIELDS = ("Dataset", "Uid", "Caption", "Captions")
SETTINGS_FILE = "preprocess_settings.json"


@dataclass
class SourceClip:
    """One clip as a source lists it; `audio_path` is None when no audio was found (`missing_reason` says why)."""

    uid: str
    split: str
    captions: list[str]
    audio_path: Path | None
    extra: dict = field(default_factory=dict)
    missing_reason: str = ""


@dataclass
class SkippedClip:
    """A clip left out of the processed dataset, as listed in report.json."""

    uid: str
    split: str
    category: str
    reason: str
    source: str = ""


@dataclass
class SourceListing:
    """Everything a source reader found: usable clips (in a stable order) and entries it already rejected."""

    clips: list[SourceClip]
    skipped: list[SkippedClip] = field(default_factory=list)


@dataclass
class PreprocessSummary:
    """What one run did; the details are in the dataset folder's report.json and manifest.json."""

    dataset_dir: Path
    processed: int
    resumed: int
    skipped: int


def split_name(value: str) -> str | None:
    """Canonical split ("train", "valid", "test") for a name such as "val" or "Validation"; None if unknown."""
    return _SPLIT_ALIASES.get(value.strip().lower())


def record_captions(record: dict) -> list[str]:
    """A metadata record's captions: its non-empty "Captions" list, else its "Caption"; [] when it has none."""
    captions = record.get("Captions")
    if isinstance(captions, list):
        captions = [c.strip() for c in captions if isinstance(c, str) and c.strip()]
        if captions:
            return captions
    caption = record.get("Caption")
    return [caption.strip()] if isinstance(caption, str) and caption.strip() else []


def read_json_records(path: Path, key: str) -> list:
    """A JSON file holding a list of records; ConfigError naming the config key if it is not one."""
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ConfigError(f"{key}: {path} is not valid JSON ({error})") from error
    if not isinstance(records, list):
        raise ConfigError(f"{key}: {path} must hold a JSON list of records, got {type(records).__name__}")
    return records


def hashed_split(uid: str, valid_fraction: float, test_fraction: float) -> str:
    """A split for a source that names none, from a hash of the Uid: stable when clips are added or removed."""
    position = int.from_bytes(hashlib.sha1(uid.encode("utf-8")).digest()[:8], "big") / 2**64
    if position < test_fraction:
        return "test"
    if position < test_fraction + valid_fraction:
        return "valid"
    return "train"


def required_path(value: str, key: str, *, kind: str, is_dir: bool) -> Path:
    """The path a config key names, checked to exist; ConfigError naming the key otherwise."""
    noun = "folder" if is_dir else "file"
    if not value:
        raise ConfigError(f"{key}: not set; source kind {kind!r} needs this {noun}")
    path = Path(value)
    if not (path.is_dir() if is_dir else path.is_file()):
        raise ConfigError(f"{key}: {noun} not found: {path.resolve()}")
    return path


def find_audio_files(folder: Path) -> list[Path]:
    """Audio files (AUDIO_EXTENSIONS) under `folder`, recursively, sorted; hidden files are ignored."""
    found = []
    for root, directories, files in os.walk(folder):
        directories[:] = sorted(d for d in directories if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_EXTENSIONS:
                found.append(Path(root, name))
    return found


def preferred_by_stem(paths: list[Path], key) -> dict[str, Path]:
    """Map key(path) -> path, preferring the earlier extension of AUDIO_EXTENSIONS when several files share it."""
    ranked = sorted(paths, key=lambda path: AUDIO_EXTENSIONS.index(path.suffix.lower()))
    mapping: dict[str, Path] = {}
    for path in ranked:
        mapping.setdefault(key(path), path)
    return mapping


def merge_clips(clips: list[SourceClip], skipped: list[SkippedClip]) -> SourceListing:
    """Join entries of one Uid within a split (their captions are concatenated, the first entry's other fields
    win) and reject a Uid that appears again in another split, which would leak test clips into training, or
    one that cannot be a file name."""
    merged: dict[str, SourceClip] = {}
    skipped = list(skipped)
    for clip in clips:
        first = merged.get(clip.uid)
        if clip.uid in ("", ".", "..") or "/" in clip.uid or "\\" in clip.uid:
            skipped.append(SkippedClip(clip.uid, clip.split, "bad_uid", "a Uid must be usable as a file name"))
        elif first is None:
            merged[clip.uid] = SourceClip(
                clip.uid, clip.split, list(clip.captions), clip.audio_path, dict(clip.extra), clip.missing_reason
            )
        elif first.split == clip.split:
            first.captions.extend(clip.captions)
        else:
            skipped.append(
                SkippedClip(clip.uid, clip.split, "duplicate", f"Uid already listed in split {first.split!r}")
            )
    return SourceListing(list(merged.values()), skipped)


def _write_json(path: Path, data) -> None:
    temp_path = path.with_name(f".{path.name}{PARTIAL_SUFFIX}")
    temp_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temp_path, path)


def _settings_record(config: PreprocessConfig) -> dict:
    """The settings that decide what a finished clip contains (and, for the built-in set, how it is generated)."""
    record = {
        "mel": config_to_dict(config.mel),
        "min_seconds": config.min_seconds,
        "max_seconds": config.max_seconds,
        "silence_peak_threshold": config.silence_peak_threshold,
        "peak_normalize": config.peak_normalize,
        "source_kind": config.source.kind,
    }
    if config.source.kind == "builtin":
        # What a built-in clip sounds like; num_clips and the split fractions only add clips or move them.
        builtin = config.builtin
        record["builtin"] = {"seed": builtin.seed, "clip_seconds": builtin.clip_seconds, "families": builtin.families}
    return record


def _check_settings(dataset_dir: Path, config: PreprocessConfig) -> None:
    """Refuse to resume outputs made with other settings, unless `overwrite` asks to redo them all."""
    current = _settings_record(config)
    path = dataset_dir / SETTINGS_FILE
    if path.is_file() and not config.overwrite:
        previous = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(key for key in current.keys() | previous.keys() if current.get(key) != previous.get(key))
        if changed:
            raise ConfigError(
                f"preprocess: {dataset_dir} was made with different settings ({', '.join(changed)}); choose "
                "another preprocess.processed_dir or set preprocess.overwrite=true to redo every clip"
            )
    _write_json(path, current)


def _refuse_sources_in_output(listing: SourceListing, output_dirs: tuple[Path, ...]) -> None:
    resolved_outputs = {directory.resolve() for directory in output_dirs}
    for parent in {clip.audio_path.parent for clip in listing.clips if clip.audio_path is not None}:
        if parent.resolve() in resolved_outputs:
            raise ConfigError(
                f"preprocess.source: the source audio in {parent.resolve()} is also the output folder; "
                "preprocessing never writes over its sources, so point preprocess.processed_dir elsewhere"
            )


def _remove_partials(*directories: Path) -> None:
    """Temporary files left by an interrupted run; they are never complete outputs."""
    for directory in directories:
        for path in directory.glob(f".*{PARTIAL_SUFFIX}"):
            path.unlink(missing_ok=True)


def _clip_settings(config: PreprocessConfig) -> ClipSettings:
    sample_rate = config.mel.sample_rate
    return ClipSettings(
        sample_rate=sample_rate,
        min_samples=int(round(config.min_seconds * sample_rate)),
        max_samples=None if config.max_seconds is None else int(round(config.max_seconds * sample_rate)),
        silence_peak_threshold=config.silence_peak_threshold,
        peak_normalize=config.peak_normalize,
    )


def _run_jobs(jobs: list[ClipJob], config: PreprocessConfig, show_progress: bool) -> list[ClipResult]:
    """Resume finished clips, process the others with `num_workers` processes (one: in this process)."""
    results: list[ClipResult] = []
    pending: list[ClipJob] = []
    for job in jobs:
        # Reading two file headers is quick, so a finished dataset is checked here without starting workers.
        sizes = None if config.overwrite else finished_sizes(Path(job.wav_path), Path(job.mel_path))
        if sizes is None:
            pending.append(job)
        else:
            results.append(ClipResult(job.uid, "resumed", num_samples=sizes[0], mel_frames=sizes[1]))
    if not pending:
        return results
    settings = _clip_settings(config)
    skipped = 0
    description = f"preprocess {config.dataset}" + (f" ({len(results)} already done)" if results else "")
    with tqdm(total=len(pending), desc=description, unit="clip", disable=not show_progress) as bar:

        def collect(result: ClipResult) -> None:
            nonlocal skipped
            results.append(result)
            skipped += result.status == "skipped"
            bar.set_postfix(skipped=skipped, refresh=False)
            bar.update()

        num_workers = min(config.num_workers, len(pending))
        if num_workers <= 1:
            # One worker is one core, as in the pool: per-clip STFTs are too small to gain from more threads.
            front_end = build_log_mel(config.mel)
            torch_threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                for job in pending:
                    collect(process_clip(job, settings, front_end))
            finally:
                torch.set_num_threads(torch_threads)
            return results
        # forkserver: workers fork from a clean server, not from this process, whose torch thread pools may
        # already be running (forking those can deadlock). The server imports the heavy libraries once, so
        # workers start in milliseconds; librosa loads its mel and resampling modules lazily (seconds of scipy
        # imports). Only installed packages are named: the server does not see this process's sys.path.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["torch", "soundfile", "librosa.filters", "librosa.core.audio"])
        chunksize = max(1, min(16, len(pending) // (num_workers * 8)))
        with context.Pool(num_workers, initializer=init_worker, initargs=(settings, config.mel)) as pool:
            for result in pool.imap_unordered(process_clip_in_worker, pending, chunksize=chunksize):
                collect(result)
    return results


def _record(dataset: str, clip: SourceClip) -> dict:
    record = {"Dataset": dataset, "Uid": clip.uid, "Caption": clip.captions[0], "Captions": list(clip.captions)}
    record.update({key: value for key, value in clip.extra.items() if key not in RESERVED_FIELDS})
    return record


def write_processed_dataset(
    config: PreprocessConfig, listing: SourceListing, *, show_progress: bool = False
) -> PreprocessSummary:
    """Process every listed clip into the common layout (see module docstring), resuming finished clips.

    Bad clips are skipped and reported, never fatal. Raises ConfigError when the output folder holds the source
    audio or was made with other settings.
    """
    started = time.monotonic()
    dataset_dir = Path(config.processed_dir) / config.dataset
    wav_dir, mel_dir = dataset_dir / "wav", dataset_dir / "mel"
    _refuse_sources_in_output(listing, (wav_dir, mel_dir))
    wav_dir.mkdir(parents=True, exist_ok=True)
    mel_dir.mkdir(parents=True, exist_ok=True)
    _check_settings(dataset_dir, config)
    _remove_partials(wav_dir, mel_dir, dataset_dir)

    skipped = list(listing.skipped)
    jobs = []
    for clip in listing.clips:
        if clip.audio_path is None:
            skipped.append(SkippedClip(clip.uid, clip.split, "missing", clip.missing_reason))
        else:
            wav_path, mel_path = wav_dir / f"{clip.uid}.wav", mel_dir / f"{clip.uid}.npy"
            jobs.append(ClipJob(clip.uid, str(clip.audio_path), str(wav_path), str(mel_path)))
    results = {result.uid: result for result in _run_jobs(jobs, config, show_progress)}

    split_records: dict[str, list[dict]] = {split: [] for split in SPLITS}
    manifest_clips = []
    for clip in listing.clips:
        result = results.get(clip.uid)
        if result is None:
            continue
        if result.status == "skipped":
            skipped.append(SkippedClip(clip.uid, clip.split, result.category, result.reason, str(clip.audio_path)))
            continue
        split_records[clip.split].append(_record(config.dataset, clip))
        manifest_clips.append(
            {
                "Uid": clip.uid,
                "Split": clip.split,
                "duration": result.num_samples / config.mel.sample_rate,
                "num_samples": result.num_samples,
                "mel_frames": result.mel_frames,
            }
        )
    for split, records in split_records.items():
        _write_json(dataset_dir / f"{split}.json", records)
    _write_json(dataset_dir / "manifest.json", _manifest(config, manifest_clips))

    counts = {status: sum(r.status == status for r in results.values()) for status in ("processed", "resumed")}
    by_category: dict[str, int] = {}
    for entry in skipped:
        by_category[entry.category] = by_category.get(entry.category, 0) + 1
    report = {
        "dataset": config.dataset,
        "source_kind": config.source.kind,
        "counts": {
            "listed": len(listing.clips) + len(listing.skipped),
            "kept": len(manifest_clips),
            **counts,
            "skipped": len(skipped),
            "skipped_by_category": dict(sorted(by_category.items())),
        },
        "elapsed_seconds": round(time.monotonic() - started, 3),
        "config": config_to_dict(config),
        "skipped": [
            {"Uid": s.uid, "Split": s.split, "category": s.category, "reason": s.reason, "source": s.source}
            for s in skipped
        ],
    }
    _write_json(dataset_dir / "report.json", report)
    return PreprocessSummary(dataset_dir, counts["processed"], counts["resumed"], len(skipped))


def _manifest(config: PreprocessConfig, clips: list[dict]) -> dict:
    splits = {
        split: {
            "clips": sum(c["Split"] == split for c in clips),
            "duration": round(sum(c["duration"] for c in clips if c["Split"] == split), 3),
        }
        for split in SPLITS
    }
    total_seconds = sum(c["duration"] for c in clips)
    return {
        "dataset": config.dataset,
        "sample_rate": config.mel.sample_rate,
        "hop_length": config.mel.hop_length,
        "n_mels": config.mel.n_mels,
        "totals": {
            "clips": len(clips),
            "duration": round(total_seconds, 3),
            "hours": round(total_seconds / 3600, 4),
            "mel_frames": sum(c["mel_frames"] for c in clips),
            "splits": splits,
        },
        "clips": clips,
    }
