"""Evaluate a folder of clips against reference clips: FD, FAD, KL, IS, text–audio score, attribute adherence.

The folder may hold generated clips (`<stem>.wav` + `<stem>.json` sidecars with the "prompt", as the generation
commands write them), real clips or reconstructions named `<Uid>.wav` after dataset records, or any mix. Each
clip is paired with dataset records ("prompt records", by default every split):

1. a sidecar "reference_uid" names the record;
2. else a file named after a record's Uid is that record (its first caption is the prompt);
3. else the records whose captions contain the sidecar's prompt (case and spacing ignored; at most
   `MAX_CAPTION_MATCHES`, in Uid order) — the prompt is then a reference caption, e.g. a test caption.

Metrics (per backbone, see `evaluation.backbones`): FD of clip embeddings and FAD of frame embeddings against
the reference set; IS of the clips' class posteriors; KL(reference || clip) of class posteriors for paired clips,
the reference posterior being the mean over the paired records' clips (AudioLDM's paired KL when there is one).
The text–audio score is the mean cosine of prompt and clip in a joint space (ours or CLAP). Attribute adherence
compares the paired record's attributes with the clip: signal measurements for the physical sound-effect
attributes, the classifier's attribute heads for the rest ("adherence"); both sources are also reported alone.
A missing or unreadable file is listed under "problems", never fatal.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evaluation.backbones import AudioBackbone
from evaluation.features import ClipFeatures, ClipRequest, FeatureCache, extract_features
from evaluation.metrics.attributes import attribute_accuracy
from evaluation.metrics.distribution import (
    frechet_audio_distance,
    frechet_distance,
    inception_score,
    paired_kl_divergence,
    text_audio_score,
)
from evaluation.ranking import JointEmbedding
from evaluation.report import markdown_report, write_text_atomic
from models.tta.audio_classifier.labels import chance_accuracy, decode_attributes, expected_label_counts
from preprocessors.builtin import is_held_out
from utils.audio import MelConfig
from utils.checkpoint import write_json_atomic

AUDIO_SUFFIXES = (".wav", ".flac")
# Sound-effect attributes read off the waveform (`evaluation.metrics.attributes.measure_clip`).
SIGNAL_ATTRIBUTES = ("pitch", "count", "sweep", "loudness", "length")
# Records sharing a prompt's caption that make up its reference posterior (bounded, so a common caption does not
# pull in hundreds of reference clips).
MAX_CAPTION_MATCHES = 8
# Backbones trained as multi-label taggers also get AudioLDM's sigmoid KL.
SIGMOID_KL_BACKBONES = frozenset({"panns_cnn14"})
# IS is computed on splits of at least this many clips (10 splits at most, as AudioLDM does on 1000+ clips).
CLIPS_PER_IS_SPLIT = 100


@dataclass
class PairedClip:
    """An audio file of the evaluated folder; `key` is its path relative to the folder."""

    key: str
    path: Path
    prompt: str | None
    references: list[Mapping[str, Any]]


def _caption_key(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".")


def _read_sidecar(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(settings, None) of a generation sidecar, (None, reason) when it is unreadable, (None, None) if absent."""
    if not path.is_file():
        return None, None
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return None, f"unreadable sidecar {path.name} ({error})"
    return (settings, None) if isinstance(settings, dict) else (None, f"sidecar {path.name} is not an object")


def pair_clips(
    folder: Path | str, prompt_records: Sequence[Mapping[str, Any]]
) -> tuple[list[PairedClip], list[dict[str, str]]]:
    """(audio files of `folder` (searched recursively) with their prompt and paired records, problems): see the
    module docstring for the pairing rules. Sidecars whose audio file is missing are problems."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of clips to evaluate")
    by_uid = {record["Uid"]: record for record in prompt_records}
    by_caption: dict[str, list[Mapping[str, Any]]] = {}
    for record in sorted(prompt_records, key=lambda record: record["Uid"]):
        for caption in record.get("Captions") or [record["Caption"]]:
            matches = by_caption.setdefault(_caption_key(caption), [])
            if not matches or matches[-1] is not record:  # two captions of one record may read the same
                matches.append(record)
    files = sorted(
        path for path in folder.rglob("*") if path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith(".")
    )
    clips, problems = [], []
    for path in files:
        key = str(path.relative_to(folder))
        settings, problem = _read_sidecar(path.with_suffix(".json"))
        if problem:
            problems.append({"file": key, "reason": problem})
        settings = settings or {}
        prompt = settings.get("prompt")
        uid = settings.get("reference_uid") or (path.stem if path.stem in by_uid else None)
        if uid is not None and uid in by_uid:
            references = [by_uid[uid]]
            prompt = prompt or (by_uid[uid].get("Captions") or [by_uid[uid]["Caption"]])[0]
        elif prompt:
            references = by_caption.get(_caption_key(prompt), [])[:MAX_CAPTION_MATCHES]
        else:
            references = []
        clips.append(PairedClip(key, path, prompt, list(references)))
    audio_stems = {path.with_suffix("") for path in files}
    for sidecar in sorted(folder.rglob("*.json")):
        settings, _ = _read_sidecar(sidecar)
        if settings and "prompt" in settings and sidecar.with_suffix("") not in audio_stems:
            problems.append({"file": str(sidecar.relative_to(folder)), "reason": "missing audio for this sidecar"})
    return clips, problems


def _softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits), dim=-1).numpy()


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return torch.sigmoid(torch.from_numpy(logits)).numpy()


def _distribution_metrics(
    name: str,
    clips: Sequence[PairedClip],
    features: Mapping[str, ClipFeatures],
    reference: Mapping[str, ClipFeatures],
    paired_references: Mapping[str, ClipFeatures],
) -> dict[str, Any]:
    """FD, FAD, IS and paired KL of one backbone (None where the backbone or the clip counts do not allow it)."""
    generated = [features[clip.key] for clip in clips]
    references = list(reference.values())
    metrics: dict[str, Any] = {"fd": None, "fad": None, "is": None, "is_std": None, "kl": None}
    if len(generated) >= 2 and len(references) >= 2:
        metrics["fd"] = frechet_distance(
            np.stack([clip.clip_embeddings[name] for clip in references]),
            np.stack([clip.clip_embeddings[name] for clip in generated]),
        )
        if name in generated[0].frame_embeddings:
            metrics["fad"] = frechet_audio_distance(
                [clip.frame_embeddings[name] for clip in references],
                [clip.frame_embeddings[name] for clip in generated],
            )
    if not generated or name not in generated[0].class_logits:
        return metrics
    logits = np.stack([clip.class_logits[name] for clip in generated])
    splits = min(10, max(1, len(generated) // CLIPS_PER_IS_SPLIT))
    metrics["is"], metrics["is_std"] = inception_score(_softmax(logits), splits=splits)
    posteriors = {"kl": _softmax}
    if name in SIGMOID_KL_BACKBONES:
        posteriors["kl_sigmoid"] = _sigmoid
    for key, posterior in posteriors.items():
        reference_rows, generated_rows = [], []
        for clip in clips:
            paired = [paired_references[r["Uid"]] for r in clip.references if r["Uid"] in paired_references]
            if paired:
                reference_rows.append(np.mean([posterior(ref.class_logits[name]) for ref in paired], axis=0))
                generated_rows.append(posterior(features[clip.key].class_logits[name]))
        metrics[key] = paired_kl_divergence(np.stack(reference_rows), np.stack(generated_rows)) if reference_rows else None
        metrics["num_kl_pairs"] = len(reference_rows)
    return metrics


def _adherence(
    clips: Sequence[PairedClip], features: Mapping[str, ClipFeatures], classifier: str | None
) -> tuple[dict[str, dict[str, float]], list[dict[str, Any]]]:
    """({"adherence", "adherence_classifier", "adherence_signal", "chance", "adherence_by_family",
    "adherence_by_combination"}, per-clip labels). Multi-label heads are decoded with the prompt's label count
    (the k most likely animals for a prompt naming k), and "chance" is a random guess's accuracy on these
    clips' prompts (`chance_accuracy`). For built-in data, "adherence_by_combination" repeats
    "adherence" and its family means for the clips whose prompt is a combination seen in training ("seen") and a
    held-out one ("held_out"); it is empty for other data."""
    records, by_classifier, by_signal, combined, per_clip = [], {}, {}, {}, []
    for clip in clips:
        if not clip.references:
            continue
        reference = clip.references[0]
        clip_features = features[clip.key]
        attributes = reference.get("Attributes") or {}
        records.append({"Uid": clip.key, "Family": reference["Family"], "Attributes": attributes})
        predicted = {}
        if classifier is not None and classifier in clip_features.attribute_logits:
            logits = {head: torch.from_numpy(values[None]) for head, values in
                      clip_features.attribute_logits[classifier].items()}
            predicted = decode_attributes(logits, [expected_label_counts(reference["Family"], attributes)])[0]
        measured, numbers = {}, None
        if clip_features.measurement is not None:
            measured = {key: clip_features.measurement[key] for key in SIGNAL_ATTRIBUTES}
            numbers = {key: value for key, value in clip_features.measurement.items()
                       if key not in SIGNAL_ATTRIBUTES and key != "detected_events"}
        by_classifier[clip.key], by_signal[clip.key] = predicted, measured
        combined[clip.key] = {**predicted, **measured}
        per_clip.append({"file": clip.key, "classifier": predicted, "signal": measured, "measured": numbers})
    results = {
        "adherence": attribute_accuracy(records, combined),
        "adherence_classifier": attribute_accuracy(records, by_classifier) if classifier else {},
        "adherence_signal": attribute_accuracy(records, by_signal),
        "chance": chance_accuracy(records),
    }
    results["adherence_by_family"] = _family_means(results["adherence"])
    results["adherence_by_combination"] = {}
    for subset, held_out in (("seen", False), ("held_out", True)):
        members = [record for record in records if is_held_out(record["Family"], record["Attributes"]) is held_out]
        if members:
            accuracy = attribute_accuracy(members, combined)
            results["adherence_by_combination"][subset] = {
                "num_clips": len(members), "adherence": accuracy, "adherence_by_family": _family_means(accuracy),
            }
    return results, per_clip


def _family_means(accuracy: Mapping[str, float]) -> dict[str, float]:
    """Mean accuracy per family of {"<family>/<attribute>": accuracy}."""
    by_family: dict[str, list[float]] = {}
    for key, value in accuracy.items():
        by_family.setdefault(key.split("/")[0], []).append(value)
    return {family: float(np.mean(values)) for family, values in by_family.items()}


def _text_audio(clips: Sequence[PairedClip], features: Mapping[str, ClipFeatures],
                joint: JointEmbedding) -> tuple[float | None, dict[str, float]]:
    """(mean cosine of prompts and clips, per-clip cosine) over the clips that have a prompt."""
    prompted = [clip for clip in clips if clip.prompt]
    if not prompted:
        return None, {}
    text = joint.embed_texts([clip.prompt for clip in prompted]).double()
    audio = torch.from_numpy(np.stack([features[clip.key].joint_embedding for clip in prompted]))
    per_clip = torch.nn.functional.cosine_similarity(text, audio, dim=1).tolist()
    return text_audio_score(text, audio), {clip.key: score for clip, score in zip(prompted, per_clip)}


def evaluate_generation(
    generated_dir: Path | str,
    *,
    reference_records: Sequence[Mapping[str, Any]],
    processed_dir: Path | str,
    backbones: Mapping[str, AudioBackbone],
    joint: JointEmbedding | None = None,
    prompt_records: Sequence[Mapping[str, Any]] | None = None,
    mel_config: MelConfig = MelConfig(),
    name: str | None = None,
    output_json: Path | str | None = None,
    output_markdown: Path | str | None = None,
    batch_size: int = 16,
    show_progress: bool = True,
    cache: FeatureCache | None = None,
) -> dict[str, Any]:
    """Evaluate the clips of `generated_dir` (see the module docstring) and return the results as a dict.

    `reference_records` (split records: Uid, Dataset, Family, Attributes, Captions) are the reference set of FD
    and FAD, their wavs read from `<processed_dir>/<Dataset>/wav/`; `prompt_records` (default: the reference
    records) are searched for the clips' pairs. `backbones` maps backbone names to loaded backbones; the first
    that has attribute heads ("ours") scores adherence. `joint` gives the text–audio score. Audio is read at
    `mel_config.sample_rate`. A `cache` shared between calls computes reference features once. The results are
    also written to `output_json` / `output_markdown` when given.
    """
    generated_dir = Path(generated_dir)
    clips, problems = pair_clips(generated_dir, prompt_records if prompt_records is not None else reference_records)
    requests = [
        ClipRequest(
            clip.key,
            clip.path,
            measure=bool(clip.references) and clip.references[0]["Family"] == "sfx",
            sound=(clip.references[0].get("Attributes") or {}).get("sound") if clip.references else None,
        )
        for clip in clips
    ]
    features, failures = extract_features(
        requests, sample_rate=mel_config.sample_rate, backbones=backbones, joint=joint, batch_size=batch_size,
        show_progress=show_progress, description=f"evaluating {generated_dir.name}",
    )
    problems += [{"file": key, "reason": reason} for key, reason in failures.items()]
    clips = [clip for clip in clips if clip.key in features]
    cache = cache or FeatureCache(processed_dir=processed_dir, backbones=backbones,
                                  sample_rate=mel_config.sample_rate, batch_size=batch_size,
                                  show_progress=show_progress)
    reference = cache.get(reference_records, "reference clips")
    paired_references = cache.get([record for clip in clips for record in clip.references], "paired references")
    problems += [{"file": f"reference {uid}", "reason": reason} for uid, reason in cache.failures.items()]

    classifier = next((name for name, backbone in backbones.items() if "attributes" in backbone.provides), None)
    adherence, per_clip = _adherence(clips, features, classifier)
    text_score, text_per_clip = _text_audio(clips, features, joint) if joint is not None else (None, {})
    labels = {entry["file"]: entry for entry in per_clip}
    results = {
        "name": name or generated_dir.name,
        "generated_dir": str(generated_dir),
        "num_clips": len(clips),
        "num_with_prompt": sum(1 for clip in clips if clip.prompt),
        "num_paired": sum(1 for clip in clips if clip.references),
        "num_reference_clips": len(reference),
        "problems": problems,
        "metrics": {
            backbone: _distribution_metrics(backbone, clips, features, reference, paired_references)
            for backbone in backbones
        },
        "text_audio": {"model": joint.name, "score": text_score} if joint is not None else None,
        **adherence,
        "clips": [
            {
                "file": clip.key,
                "prompt": clip.prompt,
                "references": [record["Uid"] for record in clip.references],
                "text_audio": text_per_clip.get(clip.key),
                "classifier": labels.get(clip.key, {}).get("classifier"),
                "signal": labels.get(clip.key, {}).get("signal"),
                "measured": labels.get(clip.key, {}).get("measured"),
            }
            for clip in clips
        ],
    }
    if output_json is not None:
        write_json_atomic(output_json, results)
    if output_markdown is not None:
        write_text_atomic(output_markdown, markdown_report([results]))
    return results
