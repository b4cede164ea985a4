"""Text–audio similarity in a joint embedding space: the text–audio score of the evaluation, and the scorer that
ranks `num_waveforms_per_prompt` candidates when no CLAP is configured.

A `JointEmbedding` is either our contrastive model (`models.tta.text_audio`, trained by `egs/tta/evaluation`)
or a local transformers CLAP; both give unit-norm text and audio embeddings whose cosine is the score.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evaluation.backbones import load_transformers_clap_backbone, resample_waveforms
from models.tta.text_audio.inference import load_text_audio_embedder

# (prompts (N), waveforms: N arrays (S_i,) or a tensor (N, S)) -> scores (N,), higher = better match.
Scorer = Callable[[list[str], Sequence[np.ndarray] | torch.Tensor], np.ndarray]


@dataclass
class JointEmbedding:
    """`embed_texts(prompts) -> (N, D)` and `embed_audio(waveforms (B, S), sample_rate) -> (B, D)`, unit norm."""

    name: str
    embed_texts: Callable[[Sequence[str]], torch.Tensor]
    embed_audio: Callable[[torch.Tensor, int], torch.Tensor]


def ours_joint_embedding(path: Path | str) -> JointEmbedding:
    """Our text–audio model from a TextAudio checkpoint or experiment folder (audio resampled as needed)."""
    embedder = load_text_audio_embedder(path)

    def embed_audio(waveforms: torch.Tensor, sample_rate: int) -> torch.Tensor:
        samples = torch.from_numpy(resample_waveforms(waveforms, sample_rate, embedder.sample_rate))
        return embedder.embed_waveforms(samples, embedder.sample_rate)

    return JointEmbedding(name=f"ours:{path}", embed_texts=embedder.embed_texts, embed_audio=embed_audio)


def clap_joint_embedding(path: Path | str) -> JointEmbedding:
    """A local transformers CLAP folder (see `evaluation.backbones.load_transformers_clap_backbone`)."""
    clap = load_transformers_clap_backbone(path)
    return JointEmbedding(
        name=f"transformers_clap:{path}",
        embed_texts=lambda texts: clap.text_embeddings(list(texts)),
        embed_audio=lambda waveforms, rate: clap.audio_features(waveforms, rate).clip_embeddings,
    )


def pair_similarities(
    joint: JointEmbedding, prompts: Sequence[str], waveforms: Sequence[np.ndarray] | torch.Tensor, sample_rate: int,
    *, batch_size: int = 16,
) -> np.ndarray:
    """Cosine similarity (N,) float64 of each prompt with its waveform ((S_i,) arrays, or a (N, S) tensor).
    Clips of equal length are embedded together in batches of `batch_size`; each distinct prompt once."""
    if isinstance(waveforms, torch.Tensor):
        waveforms = list(waveforms.detach().cpu().float().numpy())
    if len(prompts) != len(waveforms):
        raise ValueError(f"{len(prompts)} prompts but {len(waveforms)} waveforms: they are scored in pairs")
    if not prompts:
        return np.zeros(0)
    distinct = sorted(set(prompts))
    text = dict(zip(distinct, joint.embed_texts(distinct).double()))
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, waveform in enumerate(waveforms):
        by_length[len(waveform)].append(index)
    scores = np.zeros(len(prompts))
    for indices in by_length.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            batch = torch.from_numpy(np.stack([np.asarray(waveforms[index], dtype=np.float32) for index in chunk]))
            audio = torch.nn.functional.normalize(joint.embed_audio(batch, sample_rate).double(), dim=-1)
            for row, index in enumerate(chunk):
                scores[index] = float(torch.nn.functional.normalize(text[prompts[index]], dim=-1) @ audio[row])
    return scores


def load_text_audio_scorer(checkpoint: Path | str, *, sample_rate: int = 16000) -> Scorer:
    """scorer(prompts, waveforms) -> (N,) cosine similarity of each prompt with its waveform ((S,) arrays or a
    (N, S) tensor at `sample_rate`), from our TextAudio checkpoint or experiment folder; higher is a better match.
    This is the `scorer` the generation pipelines take to keep the best of `num_waveforms_per_prompt` candidates."""
    joint = ours_joint_embedding(checkpoint)

    def scorer(prompts: list[str], waveforms: Sequence[np.ndarray] | torch.Tensor) -> np.ndarray:
        return pair_similarities(joint, prompts, waveforms, sample_rate)

    return scorer
