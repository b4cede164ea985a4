"""Per-clip features for the set metrics, computed in batches with a progress bar and cached per clip.

`extract_features` loads audio files at one sample rate and runs, for every clip: each backbone (clip and frame
embeddings, class logits, attribute-head logits), optionally the joint text–audio embedding, and optionally the
signal measurements of `evaluation.metrics.attributes.measure_clip`. Clips are batched by equal length (a batch
never pads audio). A file that cannot be used (missing, unreadable, empty, NaN) is reported with its reason and
skipped, never fatal. `FeatureCache` keeps reference clips' features so several evaluated folders share them.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from evaluation.backbones import AudioBackbone
from evaluation.metrics.attributes import measure_clip
from evaluation.ranking import JointEmbedding
from utils.audio import AudioLoadError, load_audio


@dataclass
class ClipFeatures:
    """What the evaluation knows about one clip; None where nothing computed it."""

    clip_embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # backbone -> (D,)
    frame_embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # backbone -> (T', D)
    class_logits: dict[str, np.ndarray] = field(default_factory=dict)  # backbone -> (K,)
    attribute_logits: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # backbone -> head -> (C,)
    joint_embedding: np.ndarray | None = None  # (P,)
    measurement: dict[str, Any] | None = None


@dataclass
class ClipRequest:
    """One clip to analyse: `key` names it in the results; with `measure` its signal is measured too, `sound`
    being the sound type its prompt asked for (it sets the length threshold, see `measure_clip`)."""

    key: str
    path: Path
    measure: bool = False
    sound: str | None = None


def _group_by_length(loaded: list[tuple[int, np.ndarray]], batch_size: int) -> list[list[tuple[int, np.ndarray]]]:
    groups: dict[int, list[tuple[int, np.ndarray]]] = defaultdict(list)
    for item in loaded:
        groups[len(item[1])].append(item)
    return [group[start : start + batch_size] for group in groups.values() for start in range(0, len(group), batch_size)]


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().double().numpy()


def extract_features(
    requests: Sequence[ClipRequest],
    *,
    sample_rate: int,
    backbones: Mapping[str, AudioBackbone],
    joint: JointEmbedding | None = None,
    batch_size: int = 16,
    show_progress: bool = True,
    description: str = "clips",
) -> tuple[dict[str, ClipFeatures], dict[str, str]]:
    """({key: features} of the usable clips, {key: reason} of the unusable ones), reading `batch_size` files at
    a time at `sample_rate`."""
    features: dict[str, ClipFeatures] = {}
    failures: dict[str, str] = {}
    with tqdm(total=len(requests), desc=description, unit="clip", disable=not show_progress) as progress:
        for start in range(0, len(requests), batch_size):
            chunk = requests[start : start + batch_size]
            loaded = []
            for index, request in enumerate(chunk):
                try:
                    loaded.append((index, load_audio(request.path, sample_rate)))
                except AudioLoadError as error:
                    failures[request.key] = error.reason
            for group in _group_by_length(loaded, batch_size):
                waveforms = torch.from_numpy(np.stack([waveform for _, waveform in group]))
                group_features = _batch_features(waveforms, sample_rate, backbones, joint)
                for (index, waveform), clip in zip(group, group_features):
                    request = chunk[index]
                    if request.measure:
                        clip.measurement = measure_clip(waveform, sample_rate, sound=request.sound)
                    features[request.key] = clip
            progress.update(len(chunk))
    return features, failures


def _batch_features(
    waveforms: torch.Tensor, sample_rate: int, backbones: Mapping[str, AudioBackbone], joint: JointEmbedding | None
) -> list[ClipFeatures]:
    """Features of B equal-length clips (B, S)."""
    clips = [ClipFeatures() for _ in range(waveforms.shape[0])]
    for name, backbone in backbones.items():
        output = backbone.audio_features(waveforms, sample_rate)
        for row, clip in enumerate(clips):
            clip.clip_embeddings[name] = _to_numpy(output.clip_embeddings[row])
            if output.frame_embeddings is not None:
                clip.frame_embeddings[name] = _to_numpy(output.frame_embeddings[row])
            if output.class_logits is not None:
                clip.class_logits[name] = _to_numpy(output.class_logits[row])
            if output.attribute_logits is not None:
                clip.attribute_logits[name] = {
                    head: _to_numpy(logits[row]) for head, logits in output.attribute_logits.items()
                }
    if joint is not None:
        embeddings = joint.embed_audio(waveforms, sample_rate)
        for row, clip in enumerate(clips):
            clip.joint_embedding = _to_numpy(embeddings[row])
    return clips


class FeatureCache:
    """Backbone features of reference clips by Uid, computed once for a fixed set of backbones."""

    def __init__(self, *, processed_dir: Path | str, backbones: Mapping[str, AudioBackbone], sample_rate: int,
                 batch_size: int = 16, show_progress: bool = True):
        self.processed_dir = Path(processed_dir)
        self.backbones = backbones
        self.sample_rate = sample_rate
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.features: dict[str, ClipFeatures] = {}
        self.failures: dict[str, str] = {}

    def get(self, records: Sequence[Mapping[str, Any]], description: str) -> dict[str, ClipFeatures]:
        """{Uid: features} of the records' wavs (`<processed_dir>/<Dataset>/wav/<Uid>.wav`) that could be read;
        unreadable ones are left out and listed in `failures`."""
        pending = {
            record["Uid"]: ClipRequest(record["Uid"], self.processed_dir / record["Dataset"] / "wav" / f"{record['Uid']}.wav")
            for record in records
            if record["Uid"] not in self.features and record["Uid"] not in self.failures
        }
        if pending:
            computed, failed = extract_features(
                list(pending.values()), sample_rate=self.sample_rate, backbones=self.backbones,
                batch_size=self.batch_size, show_progress=self.show_progress, description=description,
            )
            self.features.update(computed)
            self.failures.update(failed)
        return {record["Uid"]: self.features[record["Uid"]] for record in records if record["Uid"] in self.features}
