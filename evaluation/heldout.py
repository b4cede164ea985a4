"""How good the evaluation models themselves are, on a held-out split of stored mels: the classifier's accuracy
per head and the text–audio model's retrieval recall. Numbers to read before trusting adherence or the
text–audio score of generated audio."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from evaluation.metrics.attributes import attribute_accuracy
from models.base.data import MelSegmentDataset, collate_skipping_missing
from models.tta.audio_classifier.dataset import clip_record
from models.tta.audio_classifier.inference import load_classifier
from models.tta.audio_classifier.labels import (
    CATEGORY_LABELS,
    category_distribution,
    decode_attributes,
    expected_label_counts,
)
from models.tta.text_audio.inference import load_text_audio_embedder
from utils.checkpoint import read_checkpoint_meta, resolve_checkpoint

RECALL_AT = (1, 5, 10)


def _mel_batches(records: Sequence[Mapping[str, Any]], processed_dir: Path | str, *, segment_frames: int,
                 n_mels: int, batch_size: int, description: str, show_progress: bool):
    """Batches {"mel" (B, 1, segment_frames, n_mels), "uid"} of the records' stored mels, cut or padded from the
    start as in training; unreadable mels are skipped (warned)."""
    dataset = MelSegmentDataset(
        processed_dir=processed_dir, records=[clip_record(dict(record)) for record in records],
        segment_frames=segment_frames, n_mels=n_mels, random_crop=False,
    )
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_skipping_missing)
    for batch in tqdm(loader, desc=description, unit="batch", disable=not show_progress):
        if "mel" in batch:
            yield batch


@torch.no_grad()
def classifier_accuracy(
    checkpoint: Path | str, records: Sequence[Mapping[str, Any]], processed_dir: Path | str, *,
    batch_size: int = 32, show_progress: bool = True,
) -> dict[str, Any]:
    """{"category": top-1 category is one of the clip's sources, "<family>/<attribute>": head accuracy (as
    adherence scores it: a multi-label head's top k for a record naming k labels), "num_clips"} of an
    AudioClassifier checkpoint or experiment folder on split records."""
    model, config = load_classifier(checkpoint)
    predictions: dict[str, dict[str, Any]] = {}
    category_hits = []
    by_uid = {record["Uid"]: record for record in records}
    for batch in _mel_batches(records, processed_dir, segment_frames=config["data"]["segment_frames"],
                              n_mels=config["preprocess"]["mel"]["n_mels"], batch_size=batch_size,
                              description="classifier", show_progress=show_progress):
        output = model(batch["mel"])
        label_counts = [expected_label_counts(by_uid[uid]["Family"], by_uid[uid].get("Attributes") or {})
                        for uid in batch["uid"]]
        for uid, labels, top in zip(batch["uid"], decode_attributes(output.attribute_logits, label_counts),
                                    output.category_logits.argmax(dim=1).tolist()):
            predictions[uid] = labels
            record = by_uid[uid]
            target = category_distribution(record["Family"], record.get("Attributes") or {}, uid=uid)
            category_hits.append(bool(target[top] > 0))
    scored = [record for record in records if record["Uid"] in predictions]
    return {
        "checkpoint": str(resolve_checkpoint(checkpoint)),
        "num_clips": len(scored),
        "category": float(np.mean(category_hits)) if category_hits else None,
        "num_categories": len(CATEGORY_LABELS),
        **attribute_accuracy(scored, predictions),
    }


def _caption_key(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".")


def retrieval_recall(similarity: torch.Tensor, caption_clip: Sequence[int], k_values: Sequence[int]) -> dict[str, float]:
    """Recall@k both ways from similarities (num_captions, num_clips); `caption_clip[i]` is caption i's clip.

    text->audio: a caption's own clip is among its k most similar clips. audio->text: one of a clip's own
    captions is among its k most similar captions (every clip needs at least one caption)."""
    caption_clip = torch.as_tensor(caption_clip)
    clip_rank = similarity.argsort(dim=1, descending=True)
    own_clip_position = (clip_rank == caption_clip[:, None]).float().argmax(dim=1)
    caption_rank = similarity.T.argsort(dim=1, descending=True)
    own_caption = caption_clip[caption_rank] == torch.arange(similarity.shape[1])[:, None]
    first_own_position = own_caption.float().argmax(dim=1)
    recalls = {}
    for k in k_values:
        recalls[f"text_to_audio_r{k}"] = float((own_clip_position < k).float().mean())
        recalls[f"audio_to_text_r{k}"] = float((first_own_position < k).float().mean())
    return recalls


@torch.no_grad()
def text_audio_retrieval(
    checkpoint: Path | str, records: Sequence[Mapping[str, Any]], processed_dir: Path | str, *,
    batch_size: int = 32, show_progress: bool = True,
) -> dict[str, Any]:
    """Retrieval recall of a TextAudio checkpoint or experiment folder among the split's clips and all their
    captions (`retrieval_recall`), plus "text_to_audio_same_caption_r1": the top clip of a caption has that
    caption too (built-in captions repeat across clips with the same attributes, which caps the strict R@1)."""
    embedder = load_text_audio_embedder(checkpoint)
    config = read_checkpoint_meta(resolve_checkpoint(checkpoint))["config"]
    audio, uids = [], []
    for batch in _mel_batches(records, processed_dir, segment_frames=config["data"]["segment_frames"],
                              n_mels=config["preprocess"]["mel"]["n_mels"], batch_size=batch_size,
                              description="text–audio", show_progress=show_progress):
        audio.append(embedder.model.embed_audio(batch["mel"]))
        uids += batch["uid"]
    by_uid = {record["Uid"]: record for record in records}
    captions, caption_clip = [], []
    for index, uid in enumerate(uids):
        for caption in by_uid[uid].get("Captions") or [by_uid[uid]["Caption"]]:
            captions.append(caption)
            caption_clip.append(index)
    similarity = embedder.embed_texts(captions) @ torch.cat(audio).T
    clip_captions = [{_caption_key(c) for c in by_uid[uid].get("Captions") or [by_uid[uid]["Caption"]]} for uid in uids]
    top_clip = similarity.argmax(dim=1).tolist()
    same_caption = [_caption_key(caption) in clip_captions[top] for caption, top in zip(captions, top_clip)]
    return {
        "checkpoint": str(resolve_checkpoint(checkpoint)),
        "num_clips": len(uids),
        "num_captions": len(captions),
        **retrieval_recall(similarity, caption_clip, RECALL_AT),
        "text_to_audio_same_caption_r1": float(np.mean(same_caption)),
    }
