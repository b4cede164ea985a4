"""Build the built-in captioned dataset: raw clips (16-bit PCM wav) plus caption metadata.

Every clip is a pure function of (seed, index, clip_seconds, sample_rate, families): its family is
`families[index % len(families)]`, its attributes and captions come from one random stream and its rendering
from another, both derived from (seed, index). So a build is byte-identical whatever the worker count, a larger
`num_clips` reuses the clips of a smaller one, and an interrupted build resumes by skipping wavs that exist
(wavs are written under a temporary name and renamed, so an existing wav is complete).

Layout written into output_dir:
    wav/<Uid>.wav          mono 16-bit PCM at sample_rate
    captions.json          [{"Uid", "Caption", "Captions", "Split", "Family", "Attributes", "Duration"}, ...]
    builtin_info.json      settings, held-out attribute combinations, split counts, source provenance
"""

import hashlib
import json
import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from preprocessors.builtin import animals, music, sfx
from preprocessors.builtin.captions import animal_captions, music_captions, sfx_captions
from utils.audio import save_wav

FAMILIES = ("sfx", "animals", "music")
FORMAT_VERSION = 1
CAPTIONS_FILE = "captions.json"
INFO_FILE = "builtin_info.json"
SPLITS = ("train", "valid", "test")
CAPTIONS_PER_CLIP = 3
MIN_PEAK = 1e-3
HELD_OUT = {"sfx": sfx.HELD_OUT, "animals": animals.HELD_OUT, "music": music.HELD_OUT}
IS_HELD_OUT = {"sfx": sfx.is_held_out, "animals": animals.is_held_out, "music": music.is_held_out}
# Version of `assign_splits`' rule, recorded with a build so that data split by an older rule is split anew.
SPLIT_RULE = 2


def is_held_out(family: str, attributes: dict | None) -> bool | None:
    """Whether a built-in clip of `family` with `attributes` is a held-out combination; None for other data."""
    if family not in IS_HELD_OUT or not attributes:
        return None
    return IS_HELD_OUT[family](attributes)


@dataclass(frozen=True)
class ClipPlan:
    """Everything needed to render and describe one clip."""

    index: int
    uid: str
    family: str
    attributes: dict
    captions: list[str]


@dataclass(frozen=True)
class RenderContext:
    """What a (possibly separate) worker process needs to render any clip."""

    seed: int
    sample_rate: int
    num_samples: int
    wav_dir: Path
    animal_sources: dict[str, np.ndarray] | None
    soundfont: bytes | None


def clip_generators(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The (planning, rendering) random generators of clip `index`: independent streams keyed by (seed, index)."""
    planning, rendering = np.random.SeedSequence(seed, spawn_key=(0, index)).spawn(2)
    return np.random.default_rng(planning), np.random.default_rng(rendering)


def plan_clip(
    *, index: int, seed: int, families: tuple[str, ...], clip_seconds: float, sample_rate: int,
    animal_sources: dict[str, np.ndarray] | None,
) -> ClipPlan:
    """Attributes and captions of clip `index` (no audio is rendered)."""
    family = families[index % len(families)]
    rng, _ = clip_generators(seed, index)
    if family == "sfx":
        attributes = sfx.plan_sfx(rng, clip_seconds)
        captions = sfx_captions(attributes, rng, CAPTIONS_PER_CLIP)
    elif family == "animals":
        attributes = animals.plan_animals(rng, clip_seconds, animal_sources, sample_rate)
        captions = animal_captions(attributes, rng, CAPTIONS_PER_CLIP)
    else:
        attributes = music.plan_music(rng, clip_seconds)
        captions = music_captions(attributes, rng, CAPTIONS_PER_CLIP)
    return ClipPlan(index, f"builtin_{family}_{index:05d}", family, attributes, captions)


def render_clip(plan: ClipPlan, context: RenderContext) -> np.ndarray:
    """Samples (num_samples,) float32 of a planned clip; raises RuntimeError if they are silent or not finite."""
    _, rng = clip_generators(context.seed, plan.index)
    if plan.family == "sfx":
        waveform = sfx.render_sfx(plan.attributes, rng, context.num_samples, context.sample_rate)
    elif plan.family == "animals":
        waveform = animals.render_animals(
            plan.attributes, rng, context.num_samples, context.sample_rate, context.animal_sources
        )
    else:
        waveform = music.render_music(plan.attributes, rng, context.num_samples, context.sample_rate, context.soundfont)
    if waveform.shape != (context.num_samples,) or not np.isfinite(waveform).all():
        raise RuntimeError(f"{plan.uid}: rendered audio has shape {waveform.shape} or non-finite samples")
    if np.max(np.abs(waveform)) < MIN_PEAK:
        raise RuntimeError(f"{plan.uid}: rendered audio is silent")
    return waveform


_WORKER_CONTEXT: RenderContext | None = None


def _init_worker(context: RenderContext) -> None:
    global _WORKER_CONTEXT
    _WORKER_CONTEXT = context


def _render_and_save(plan: ClipPlan, context: RenderContext | None = None) -> str:
    context = context or _WORKER_CONTEXT
    save_wav(context.wav_dir / f"{plan.uid}.wav", render_clip(plan, context), context.sample_rate)
    return plan.uid


def _split_size(fraction: float, num_clips: int) -> int:
    return 0 if fraction == 0 else max(1, int(round(fraction * num_clips)))


def assign_splits(plans: list[ClipPlan], *, seed: int, valid_fraction: float, test_fraction: float) -> list[str]:
    """Split of every clip: held-out combinations go to test; `valid_fraction` and `test_fraction` of all clips
    are then drawn at random from the others into valid and test, balanced across families (shuffled within each
    family, then interleaved). The test split thus holds seen combinations (new clips) besides the held-out ones,
    so text following can be measured on both."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    splits = ["train"] * len(plans)
    held = [plan.index for plan in plans if IS_HELD_OUT[plan.family](plan.attributes)]
    for index in held:
        splits[index] = "test"
    by_family: dict[str, list[int]] = {}
    for plan in plans:
        if splits[plan.index] == "train":
            by_family.setdefault(plan.family, []).append(plan.index)
    shuffled = [[members[i] for i in rng.permutation(len(members))] for members in by_family.values()]
    interleaved = [members[rank] for rank in range(len(plans)) for members in shuffled if rank < len(members)]
    num_valid = _split_size(valid_fraction, len(plans))
    num_test = _split_size(test_fraction, len(plans))
    if num_valid + num_test >= len(interleaved):
        raise ValueError(
            f"num_clips={len(plans)} is too small for valid_fraction={valid_fraction} and "
            f"test_fraction={test_fraction}: no clip would be left for training"
        )
    for index in interleaved[:num_valid]:
        splits[index] = "valid"
    for index in interleaved[num_valid : num_valid + num_test]:
        splits[index] = "test"
    return splits


def _validate(*, num_clips, clip_seconds, sample_rate, families, valid_fraction, test_fraction, num_workers) -> None:
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    if clip_seconds < sfx.MIN_CLIP_SECONDS:
        raise ValueError(f"clip_seconds must be >= {sfx.MIN_CLIP_SECONDS}, got {clip_seconds}")
    if sample_rate < 16000:
        raise ValueError(f"sample_rate must be >= 16000 (the hiss band reaches 7 kHz), got {sample_rate}")
    unknown = [family for family in families if family not in FAMILIES]
    if not families or unknown or len(set(families)) != len(families):
        raise ValueError(f"families must be distinct names from {FAMILIES}, got {families}")
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ValueError(
            f"need 0 <= valid_fraction, test_fraction and their sum < 1, got {valid_fraction}, {test_fraction}"
        )
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")


def _write_json_atomic(path: Path, text: str) -> None:
    temp_path = path.with_name(f".{path.name}.partial")
    temp_path.write_text(text, encoding="utf-8")
    temp_path.replace(path)


def _check_resumable(info_path: Path, render_settings: dict) -> None:
    """Refuse to mix wavs of different settings in one folder."""
    if not info_path.is_file():
        return
    previous = json.loads(info_path.read_text(encoding="utf-8")).get("render_settings")
    if previous != render_settings:
        changed = sorted(key for key in set(previous or {}) | set(render_settings)
                         if (previous or {}).get(key) != render_settings.get(key))
        raise ValueError(
            f"{info_path.parent} holds clips built with other settings ({', '.join(changed)} differ): "
            "use a new output_dir or delete this one"
        )


def _info(plans, splits, *, render_settings, valid_fraction, test_fraction, families) -> dict:
    counts = {split: {family: 0 for family in families} for split in SPLITS}
    held_counts = {family: 0 for family in families}
    for plan, split in zip(plans, splits):
        counts[split][plan.family] += 1
        held_counts[plan.family] += int(IS_HELD_OUT[plan.family](plan.attributes))
    sources = {}
    if "animals" in families:
        sources["animals"] = {
            "package": f"{animals.SOURCE_PACKAGE}=={animals.SOURCE_VERSION}",
            "license": animals.SOURCE_LICENSE,
        }
    if "music" in families:
        sources["music"] = {"soundfont": "TimGM6mb.sf2 from the pretty_midi wheel", "renderer": "tinysoundfont"}
    return {
        "render_settings": render_settings,
        "num_clips": len(plans),
        "valid_fraction": valid_fraction,
        "test_fraction": test_fraction,
        "split_rule": SPLIT_RULE,
        "held_out": {family: list(HELD_OUT[family]) for family in families},
        "held_out_clips": held_counts,
        "split_counts": counts,
        "sources": sources,
        "attribute_notes": {
            "sfx.rms_db": "active RMS in dBFS, preprocessors.builtin.levels.active_rms_db",
            "sfx flat keys": "describe the last event; 'events' lists every event in time order",
            "music.notes": "[start_s, end_s, midi_pitch, velocity]",
        },
    }


def build_builtin_dataset(
    *,
    output_dir: Path,
    num_clips: int = 3000,
    clip_seconds: float = 5.0,
    sample_rate: int = 16000,
    seed: int = 0,
    families: tuple[str, ...] = FAMILIES,
    valid_fraction: float = 0.05,
    test_fraction: float = 0.1,
    num_workers: int = 1,
    show_progress: bool = True,
    source_cache_dir: Path | None = None,
) -> Path:
    """Write output_dir/wav/<uid>.wav (16-bit PCM mono), captions.json and builtin_info.json; return the
    captions.json path. Deterministic for the arguments (same bytes on a re-run, whatever num_workers);
    resumable (existing wavs are not re-rendered). The animal recordings are fetched with pip into
    source_cache_dir (default output_dir/../.sources) the first time they are needed."""
    families = tuple(families)
    _validate(
        num_clips=num_clips, clip_seconds=clip_seconds, sample_rate=sample_rate, families=families,
        valid_fraction=valid_fraction, test_fraction=test_fraction, num_workers=num_workers,
    )
    output_dir = Path(output_dir)
    wav_dir = output_dir / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    render_settings = {
        "format_version": FORMAT_VERSION, "seed": seed, "clip_seconds": clip_seconds,
        "sample_rate": sample_rate, "families": list(families),
    }
    animal_sources = soundfont = None
    if "animals" in families:
        cache_dir = Path(source_cache_dir) if source_cache_dir is not None else output_dir.parent / ".sources"
        animal_sources = animals.load_animal_sources(animals.fetch_animal_sources(cache_dir), sample_rate)
        render_settings["animal_sources"] = f"{animals.SOURCE_PACKAGE}=={animals.SOURCE_VERSION}"
    if "music" in families:
        soundfont = music.soundfont_path().read_bytes()
        render_settings["soundfont_sha256"] = hashlib.sha256(soundfont).hexdigest()
    info_path = output_dir / INFO_FILE
    _check_resumable(info_path, render_settings)

    plans = [
        plan_clip(index=index, seed=seed, families=families, clip_seconds=clip_seconds, sample_rate=sample_rate,
                  animal_sources=animal_sources)
        for index in range(num_clips)
    ]
    splits = assign_splits(plans, seed=seed, valid_fraction=valid_fraction, test_fraction=test_fraction)
    info = _info(plans, splits, render_settings=render_settings, valid_fraction=valid_fraction,
                 test_fraction=test_fraction, families=families)
    _write_json_atomic(info_path, json.dumps(info, indent=2) + "\n")

    for stale in wav_dir.glob(".*.partial"):
        stale.unlink()
    num_samples = int(round(clip_seconds * sample_rate))
    context = RenderContext(seed, sample_rate, num_samples, wav_dir, animal_sources, soundfont)
    pending = [plan for plan in plans if not (wav_dir / f"{plan.uid}.wav").is_file()]
    with tqdm(total=len(pending), desc="built-in clips", unit="clip", disable=not show_progress) as progress:
        if num_workers == 1 or len(pending) <= 1:
            for plan in pending:
                _render_and_save(plan, context)
                progress.update()
        else:
            # spawn, not fork: the caller may hold torch threads, which fork does not copy safely.
            pool_context = multiprocessing.get_context("spawn")
            with pool_context.Pool(min(num_workers, len(pending)), _init_worker, (context,)) as pool:
                for _ in pool.imap_unordered(_render_and_save, pending, chunksize=8):
                    progress.update()

    records = [
        {
            "Uid": plan.uid,
            "Caption": plan.captions[0],
            "Captions": plan.captions,
            "Split": split,
            "Family": plan.family,
            "Attributes": plan.attributes,
            "Duration": num_samples / sample_rate,
        }
        for plan, split in zip(plans, splits)
    ]
    captions_path = output_dir / CAPTIONS_FILE
    _write_json_atomic(captions_path, "[\n" + ",\n".join(json.dumps(record) for record in records) + "\n]\n")
    return captions_path
