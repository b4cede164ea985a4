"""Label sets of the evaluation classifier, derived from the built-in dataset's records ("Family", "Attributes").

Category (one softmax over `CATEGORY_LABELS`): what makes the sound, named "<family>/<source>": the sound-effect
types, the animal species and the instruments of `preprocessors.builtin`. A clip's target is a distribution,
uniform over the distinct sources it contains (a hum then beeps: 0.5 "sfx/hum" + 0.5 "sfx/beep"; a dog and a
rooster: 0.5 each), so the posteriors it predicts are what KL and IS need, as AudioSet tags are for PANNs.

Attribute heads (`ATTRIBUTE_HEADS`): one per attribute scored by attribute adherence
(`evaluation.metrics.attributes.SCORED_ATTRIBUTES`), each for one family, with the generator's vocabulary:
sfx sound / pitch / count / sweep / loudness / length (of the clip's last event, as the flat keys are), animal
sources (multi-label: one or two species), music instrument / tempo / register / texture. A head is trained and
scored only on clips of its family that have a value for it ("no sweep" is a value; the pitch of a sweep is not).
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from evaluation.metrics.attributes import (
    LENGTH_LABELS,
    LOUDNESS_LABELS,
    NONE_IS_A_LABEL,
    PITCH_LABELS,
    SWEEP_LABELS,
)
from preprocessors.builtin import animals, music, sfx

SFX_SOUNDS = (*sfx.REPEATED_SOUNDS, *sfx.SUSTAINED_SOUNDS)
ANIMAL_SOURCES = tuple(animals.ANIMALS)
INSTRUMENTS = tuple(music.INSTRUMENT_PROGRAMS)
CATEGORY_LABELS: tuple[str, ...] = (
    *(f"sfx/{sound}" for sound in SFX_SOUNDS),
    *(f"animals/{animal}" for animal in ANIMAL_SOURCES),
    *(f"music/{instrument}" for instrument in INSTRUMENTS),
)
# A multi-label head predicts every class whose sigmoid exceeds this (and at least its best class).
MULTI_LABEL_THRESHOLD = 0.5


@dataclass(frozen=True)
class AttributeHead:
    """One classifier head: the attribute `name` of clips of `family`, over `classes` (softmax, one label per
    clip) or, with `multi_label`, a set of them (sigmoid per class; the label is the sorted list)."""

    name: str
    family: str
    classes: tuple[Any, ...]
    multi_label: bool = False


ATTRIBUTE_HEADS: tuple[AttributeHead, ...] = (
    AttributeHead("sound", "sfx", SFX_SOUNDS),
    AttributeHead("pitch", "sfx", PITCH_LABELS),
    AttributeHead("count", "sfx", (1, 2, 3, 4)),
    AttributeHead("sweep", "sfx", (None, *SWEEP_LABELS)),
    AttributeHead("loudness", "sfx", LOUDNESS_LABELS),
    AttributeHead("length", "sfx", LENGTH_LABELS),
    AttributeHead("sources", "animals", ANIMAL_SOURCES, multi_label=True),
    AttributeHead("instrument", "music", INSTRUMENTS),
    AttributeHead("tempo", "music", tuple(music.TEMPO_BPM)),
    AttributeHead("register", "music", ("low", "high")),
    AttributeHead("texture", "music", ("melody", "chords")),
)
HEADS_BY_NAME = {head.name: head for head in ATTRIBUTE_HEADS}


class LabelError(ValueError):
    """A record whose family or attribute value is outside the classifier's label sets."""


def attribute_classes() -> dict[str, int]:
    """{head name: number of classes}, the `attribute_classes` argument of `AudioClassifier`."""
    return {head.name: len(head.classes) for head in ATTRIBUTE_HEADS}


def _sources(family: str, attributes: Mapping[str, Any]) -> list[str]:
    if family == "sfx":
        return [f"sfx/{event['sound']}" for event in attributes.get("events") or [attributes]]
    if family == "animals":
        return [f"animals/{animal}" for animal in attributes["sources"]]
    if family == "music":
        return [f"music/{attributes['instrument']}"]
    raise LabelError(f"unknown family {family!r}; the classifier knows sfx, animals and music")


def category_distribution(family: str, attributes: Mapping[str, Any], *, uid: str = "") -> np.ndarray:
    """Target over `CATEGORY_LABELS` (K,) float32: uniform over the clip's distinct sources."""
    target = np.zeros(len(CATEGORY_LABELS), dtype=np.float32)
    sources = sorted(set(_sources(family, attributes)))
    for source in sources:
        if source not in CATEGORY_LABELS:
            raise LabelError(f"{uid}: category {source!r} is not one of the classifier's categories")
        target[CATEGORY_LABELS.index(source)] = 1.0 / len(sources)
    return target


def head_target(head: AttributeHead, family: str, attributes: Mapping[str, Any], *, uid: str = "") -> torch.Tensor:
    """Target of one head for one clip: a class index () long, -1 when the head does not apply; for a multi-label
    head a multi-hot (C,) float, all -1 when it does not apply."""
    missing = torch.full((len(head.classes),), -1.0) if head.multi_label else torch.tensor(-1)
    if family != head.family or head.name not in attributes:
        return missing
    value = attributes[head.name]
    if value is None and head.name not in NONE_IS_A_LABEL:
        return missing
    if head.multi_label:
        unknown = [item for item in value if item not in head.classes]
        if unknown:
            raise LabelError(f"{uid}: {head.name} {unknown} not in {head.classes}")
        return torch.tensor([float(label in value) for label in head.classes])
    if value not in head.classes:
        raise LabelError(f"{uid}: {head.name} {value!r} not in {head.classes}")
    return torch.tensor(head.classes.index(value))


def record_targets(record: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """All targets of a dataset record ({"Uid", "Family", "Attributes"}): "category" (K,) and one per head."""
    family, attributes, uid = record["Family"], record.get("Attributes") or {}, record["Uid"]
    targets = {"category": torch.from_numpy(category_distribution(family, attributes, uid=uid))}
    for head in ATTRIBUTE_HEADS:
        targets[head.name] = head_target(head, family, attributes, uid=uid)
    return targets


def expected_label_counts(family: str, attributes: Mapping[str, Any]) -> dict[str, int]:
    """{multi-label head name: how many labels the record names} for the heads of its family (a dog and a rooster:
    {"sources": 2}); what `decode_attributes` takes to score a clip against its prompt."""
    return {
        head.name: len(attributes[head.name]) for head in ATTRIBUTE_HEADS
        if head.multi_label and head.family == family and attributes.get(head.name)
    }


def decode_attributes(
    attribute_logits: Mapping[str, torch.Tensor], label_counts: Sequence[Mapping[str, int]] | None = None
) -> list[dict[str, Any]]:
    """Head logits {name: (B, C)} -> per clip {name: label} (argmax; for multi-label heads the sorted classes).

    A multi-label head gives the classes over `MULTI_LABEL_THRESHOLD` (at least the most likely one), or, where
    `label_counts[b]` has the head, clip b's `k` most likely classes. Adherence passes the prompt's count
    (`expected_label_counts`) and so asks whether the prompt's k animals are the k the classifier hears most:
    the threshold alone rarely names a second animal (on the recipe's real test clips it named both animals of
    6 of 31 two-animal clips, the top-2 names them in 19), so it could not tell whether a pair was rendered.
    """
    batch = next(iter(attribute_logits.values())).shape[0]
    if label_counts is not None and len(label_counts) != batch:
        raise ValueError(f"label_counts has {len(label_counts)} entries for a batch of {batch}")
    decoded: list[dict[str, Any]] = [{} for _ in range(batch)]
    for name, logits in attribute_logits.items():
        head = HEADS_BY_NAME[name]
        if head.multi_label:
            probabilities = logits.float().sigmoid()
            chosen = (probabilities > MULTI_LABEL_THRESHOLD) | (
                probabilities == probabilities.max(dim=1, keepdim=True).values
            )
            for index in range(batch):
                count = label_counts[index].get(name) if label_counts is not None else None
                indices = (probabilities[index].topk(count).indices if count else chosen[index].nonzero().flatten())
                decoded[index][name] = sorted(head.classes[c] for c in indices.tolist())
        else:
            for index, class_index in enumerate(logits.argmax(dim=1).tolist()):
                decoded[index][name] = head.classes[class_index]
    return decoded


def decode_category(category_logits: torch.Tensor) -> list[str]:
    """(B, K) logits -> the most likely category name per clip."""
    return [CATEGORY_LABELS[index] for index in category_logits.argmax(dim=1).tolist()]


def chance_accuracy(records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Accuracy per "family/attribute" of a uniform random guess on `records` (the scored clips' references):
    1 / classes, and for a multi-label head decoded with the prompt's count k (`decode_attributes`), the mean
    over the records of 1 / C(classes, k) (one animal of ten: 10 %, a pair: 1 in 45). Multi-label heads no
    record applies to are left out."""
    chance = {}
    records = list(records)
    for head in ATTRIBUTE_HEADS:
        key = f"{head.family}/{head.name}"
        if not head.multi_label:
            chance[key] = 1.0 / len(head.classes)
            continue
        guesses = []
        for record in records:
            if record.get("Family") == head.family:
                count = expected_label_counts(head.family, record.get("Attributes") or {}).get(head.name)
                if count:
                    guesses.append(1.0 / math.comb(len(head.classes), count))
        if guesses:
            chance[key] = float(np.mean(guesses))
    return chance
