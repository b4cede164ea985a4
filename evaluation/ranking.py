"""Text–audio similarity in a joint embedding space: the text–audio score of the evaluation, and the scorer that
ranks `num_waveforms_per_prompt` candidates of a generation command.

A `JointEmbedding` is either our contrastive model (`models.tta.text_audio`, trained by `egs/tta/evaluation`)
or a local transformers CLAP; both give unit-norm text and audio embeddings whose cosine is the score.

A ranker spec (the `--ranker` flag, `inference.ranker` in config) names one: "ours:<TextAudio checkpoint or
experiment folder>", "clap:<local CLAP folder>", "none", or "auto": the committed built-in model
(`pretrained/evaluation/text_audio_builtin`, relative to the working directory) when there is more than one
candidate per prompt and that folder is there, else no ranking. It knows only the built-in dataset's sounds; for
other data name a CLAP. Nothing is downloaded.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evaluation.backbones import load_transformers_clap_backbone, resample_waveforms
from evaluation.config import DEFAULT_TEXT_AUDIO
from models.tta.text_audio.inference import load_text_audio_embedder
from utils.checkpoint import CheckpointError, read_checkpoint_meta, resolve_checkpoint

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


def joint_embedding_scorer(joint: JointEmbedding, *, sample_rate: int = 16000) -> Scorer:
    """scorer(prompts, waveforms) -> (N,) cosine similarity of each prompt with its waveform ((S,) arrays or a
    (N, S) tensor at `sample_rate`) in `joint`'s space; higher is a better match. This is the `scorer` the
    generation pipelines take to order `num_waveforms_per_prompt` candidates best first."""

    def scorer(prompts: list[str], waveforms: Sequence[np.ndarray] | torch.Tensor) -> np.ndarray:
        return pair_similarities(joint, prompts, waveforms, sample_rate)

    return scorer


def load_text_audio_scorer(checkpoint: Path | str, *, sample_rate: int = 16000) -> Scorer:
    """`joint_embedding_scorer` of our TextAudio model from a checkpoint or experiment folder."""
    return joint_embedding_scorer(ours_joint_embedding(checkpoint), sample_rate=sample_rate)


RANKER_KINDS = ("ours", "clap")
RANKER_FORMS = '"none", "auto", "ours:<TextAudio checkpoint or experiment folder>" or "clap:<local CLAP folder>"'


@dataclass(frozen=True)
class RankerSpec:
    """A checked ranker: `kind` "ours" (then `path` is the resolved TextAudio checkpoint folder, so a record names
    the exact weights) or "clap" (`path` the CLAP folder), absolute."""

    kind: str
    path: Path

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}"


def parse_ranker(spec: str) -> RankerSpec | None:
    """None for "none", else the checked `RankerSpec` of "ours:<path>" / "clap:<path>" ("auto" must go through
    `resolve_ranker` first). Raises ValueError naming the problem: an unknown form or kind, an empty or missing
    path, a folder holding no TextAudio checkpoint. Reads only metadata; `load_ranker` loads the weights."""
    if spec == "none":
        return None
    kind, separator, path_text = spec.partition(":")
    if not separator or kind not in RANKER_KINDS or not path_text:
        raise ValueError(f"{spec!r} is not a ranker; use {RANKER_FORMS}")
    path = Path(path_text)
    if not path.exists():
        raise ValueError(f"{kind} ranker: {path} does not exist")
    if kind == "clap":
        if not path.is_dir():
            raise ValueError(f"clap ranker: {path} is not a folder (a local transformers CLAP or AudioLDM 2 folder)")
        return RankerSpec(kind="clap", path=path.resolve())
    try:
        checkpoint = resolve_checkpoint(path)
        model_type = read_checkpoint_meta(checkpoint)["config"].get("model_type")
    except (CheckpointError, OSError, ValueError, KeyError) as error:
        raise ValueError(f"ours ranker: {error}") from error
    if model_type != "TextAudio":
        raise ValueError(f"ours ranker: {checkpoint} is a {model_type!r} checkpoint, not a TextAudio model")
    return RankerSpec(kind="ours", path=checkpoint.resolve())


def resolve_ranker(
    spec: str, *, num_waveforms_per_prompt: int, builtin: Path | str = DEFAULT_TEXT_AUDIO
) -> tuple[RankerSpec | None, str]:
    """(`parse_ranker` of `spec`, a note for the user or ""). "auto" becomes our model at `builtin` when there
    is more than one candidate per prompt and it holds a valid TextAudio checkpoint (the note names it), else no
    ranking (the note says why, unless there is a single candidate). Explicit specs are checked as
    `parse_ranker` does, whatever the number of candidates, and need no note."""
    if spec != "auto":
        return parse_ranker(spec), ""
    if num_waveforms_per_prompt == 1:
        return None, ""
    if not Path(builtin).exists():
        return None, (
            f"candidates stay in generation order: the built-in text–audio model {builtin} is missing (run from "
            "the repository root, or train one: sh egs/tta/evaluation/run_train.sh); pass --ranker ours:<path> or "
            "clap:<path> to rank them"
        )
    try:
        ranker = parse_ranker(f"ours:{builtin}")
    except ValueError as error:
        return None, f"candidates stay in generation order: {error}"
    return ranker, f"ranking each prompt's candidates with {ranker} (--ranker none keeps generation order)"


def load_ranker(spec: RankerSpec, *, sample_rate: int) -> Scorer:
    """The scorer of a checked spec, for waveforms at `sample_rate`. Loading errors propagate (CheckpointError,
    ConfigError, OSError from transformers)."""
    joint = ours_joint_embedding(spec.path) if spec.kind == "ours" else clap_joint_embedding(spec.path)
    return joint_embedding_scorer(joint, sample_rate=sample_rate)
