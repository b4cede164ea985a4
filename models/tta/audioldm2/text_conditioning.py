"""AudioLDM 2 text conditioning: prompt -> (language-of-audio vectors, Flan-T5 states, Flan-T5 mask).

The prompt goes through the CLAP text branch (one pooled, L2-normalised embedding) and the Flan-T5 encoder; the
projection model brackets and concatenates the two, and GPT-2 continues that sequence by N vectors (the "language
of audio"). The UNet cross-attends to the N vectors (no mask) and to the T5 states (with the tokenizer mask).
Liu et al. 2024, "AudioLDM 2", Sec. 3; the numbers match diffusers' ``AudioLDM2Pipeline.encode_prompt``.
"""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoTokenizer, ClapModel, GPT2Model, PreTrainedTokenizerBase, T5EncoderModel

from models.tta.audioldm.text_states import UNCONDITIONAL_CAPTION, TextContexts
from models.tta.audioldm2.key_map import load_diffusers_projection
from models.tta.audioldm2.language_model import generate_language_of_audio
from models.tta.audioldm2.projection import AudioLDM2Projection


class AudioLDM2Conditioning(NamedTuple):
    """Cross-attention inputs of the AudioLDM 2 UNet for a batch of B' = (2 if CFG else 1) x prompts x waveforms."""

    language_of_audio: torch.Tensor  # (B', N, language_model_dim): GPT-2 vectors, all attended
    t5_states: torch.Tensor  # (B', L, t5_dim): Flan-T5 last hidden state
    t5_mask: torch.Tensor  # (B', L): 1 for tokens, 0 for padding (tokenizer dtype, int64)


class AudioLDM2TextConditioner(nn.Module):
    """CLAP text branch + Flan-T5 encoder + projection + GPT-2, with their tokenizers.

    ``clap_model`` is the full ``ClapModel`` (its audio branch is used elsewhere to rank generated waveforms);
    ``num_language_of_audio_vectors`` is 8 for the public text-to-audio checkpoints. ``encode`` serves generation;
    ``contexts`` / ``context_dims`` make it the stage-2 trainer's ``TextConditioning`` for UNet fine-tuning, where
    this whole text side stays frozen (as in the paper's stage-2 training).
    """

    def __init__(
        self,
        *,
        clap_model: ClapModel,
        clap_tokenizer: PreTrainedTokenizerBase,
        t5_encoder: T5EncoderModel,
        t5_tokenizer: PreTrainedTokenizerBase,
        projection: AudioLDM2Projection,
        language_model: GPT2Model,
        num_language_of_audio_vectors: int = 8,
    ) -> None:
        super().__init__()
        self.clap_model = clap_model
        self.clap_tokenizer = clap_tokenizer
        self.t5_encoder = t5_encoder
        self.t5_tokenizer = t5_tokenizer
        self.projection = projection
        self.language_model = language_model
        self.num_language_of_audio_vectors = num_language_of_audio_vectors

    def _clap_text_embeddings(self, texts: list[str], *, pad_to_max_length: bool) -> torch.Tensor:
        """(B,) texts -> (B, clap_dim): pooled RoBERTa output through CLAP's text projection, L2-normalised."""
        tokens = self.clap_tokenizer(
            texts,
            padding="max_length" if pad_to_max_length else "longest",
            max_length=self.clap_tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).to(self.projection.clap_start.device)
        text_output = self.clap_model.text_model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask)
        return F.normalize(self.clap_model.text_projection(text_output.pooler_output), dim=-1)

    def clap_text_features(self, prompts: str | Sequence[str]) -> torch.Tensor:
        """(B, clap_dim) L2-normalised CLAP text embeddings, to score generated waveforms against their prompt.

        Tokenised as the reference ranking does (padded to the longest prompt, not to the tokenizer maximum).
        """
        return self._clap_text_embeddings(_as_list(prompts), pad_to_max_length=False)

    def _t5(self, texts: list[str], *, pad_to_length: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) texts -> states (B, L, t5_dim) and mask (B, L); L is the longest prompt or ``pad_to_length``."""
        tokens = self.t5_tokenizer(
            texts,
            padding="longest" if pad_to_length is None else "max_length",
            max_length=self.t5_tokenizer.model_max_length if pad_to_length is None else pad_to_length,
            truncation=True,
            return_tensors="pt",
        ).to(self.projection.clap_start.device)
        states = self.t5_encoder(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
        return states, tokens.attention_mask

    def _condition(self, texts: list[str], *, t5_pad_to_length: int | None) -> AudioLDM2Conditioning:
        """One stream (positive or negative prompts), B = len(texts), without CFG or per-prompt duplication."""
        projection_dtype = self.projection.clap_start.dtype
        clap_embeddings = self._clap_text_embeddings(texts, pad_to_max_length=True)[:, None, :]
        t5_states, t5_mask = self._t5(texts, pad_to_length=t5_pad_to_length)
        # The single pooled CLAP vector is always attended.
        clap_mask = t5_mask.new_ones(len(texts), 1)
        prompt, prompt_mask = self.projection(
            clap_embeddings.to(projection_dtype), clap_mask, t5_states.to(projection_dtype), t5_mask
        )
        language_of_audio = generate_language_of_audio(
            self.language_model,
            prompt.to(self.language_model.dtype),
            prompt_mask,
            num_vectors=self.num_language_of_audio_vectors,
        )
        return AudioLDM2Conditioning(language_of_audio, t5_states, t5_mask)

    def encode(
        self,
        prompts: str | Sequence[str],
        negative_prompts: str | Sequence[str] | None = None,
        do_cfg: bool = True,
        num_waveforms_per_prompt: int = 1,
    ) -> AudioLDM2Conditioning:
        """Condition for B prompts; with CFG the batch is [negatives, positives], each prompt repeated per waveform.

        Output batch: (2 if do_cfg else 1) * B * num_waveforms_per_prompt, prompt-major (p0, p0, p1, p1, ... for two
        waveforms). The T5 sequence is padded to the longest positive prompt (at most the tokenizer maximum, 128
        for Flan-T5), and the negative one is padded or cut to that same length. Without a negative prompt the
        unconditional stream encodes "". ``negative_prompts`` is one string for every prompt or one per prompt,
        and is ignored without CFG. Positions in GPT-2 count padding, so a prompt's vectors depend on the longest
        prompt of its batch, exactly as in the reference pipeline.
        """
        prompt_list = _as_list(prompts)
        if num_waveforms_per_prompt < 1:
            raise ValueError(f"num_waveforms_per_prompt must be at least 1, got {num_waveforms_per_prompt}")
        positive = self._condition(prompt_list, t5_pad_to_length=None)
        streams = [positive]
        if do_cfg:
            negative_list = _negative_prompt_list(negative_prompts, len(prompt_list))
            negative = self._condition(negative_list, t5_pad_to_length=positive.t5_states.shape[1])
            streams = [negative, positive]
        return AudioLDM2Conditioning(
            *(
                torch.cat([field.repeat_interleave(num_waveforms_per_prompt, dim=0) for field in fields])
                for fields in zip(*streams)
            )
        )

    @property
    def context_dims(self) -> list[int]:
        """Widths of the UNet's two context streams: the language-of-audio vectors, then the T5 states."""
        return [self.language_model.config.hidden_size, self.t5_encoder.config.d_model]

    @torch.no_grad()
    def contexts(self, captions: Sequence[str], *, unconditional: Sequence[bool] | None = None) -> TextContexts:
        """Training contexts for B captions: [LOA (B, N, D_lm), T5 (B, L, D_t5)] with masks [None, (B, L)].

        Rows flagged ``unconditional`` encode the empty prompt with its T5 sequence padded to the batch's longest
        caption, so a dropped row is exactly the unconditional branch ``encode(captions)`` builds at generation
        (both streams dropped together, GPT-2 run on the same padded layout); the other rows are ``encode``'s
        positive branch.
        """
        caption_list = _as_list(captions)
        flags = [False] * len(caption_list) if unconditional is None else list(unconditional)
        if len(flags) != len(caption_list):
            raise ValueError(f"got {len(flags)} unconditional flags for {len(caption_list)} captions")
        texts = [UNCONDITIONAL_CAPTION if flag else caption for caption, flag in zip(caption_list, flags)]
        tokens = self.t5_tokenizer(
            caption_list, padding="longest", max_length=self.t5_tokenizer.model_max_length, truncation=True
        )
        condition = self._condition(texts, t5_pad_to_length=len(tokens.input_ids[0]))
        return TextContexts([condition.language_of_audio, condition.t5_states], [None, condition.t5_mask])


def _as_list(prompts: str | Sequence[str]) -> list[str]:
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompt_list or not all(isinstance(prompt, str) for prompt in prompt_list):
        raise ValueError(f"prompts must be a string or a non-empty list of strings, got {prompts!r}")
    return prompt_list


def _negative_prompt_list(negative_prompts: str | Sequence[str] | None, batch_size: int) -> list[str]:
    if negative_prompts is None:
        return [""] * batch_size
    if isinstance(negative_prompts, str):
        return [negative_prompts] * batch_size
    negative_list = _as_list(negative_prompts)
    if len(negative_list) != batch_size:
        raise ValueError(f"got {len(negative_list)} negative prompts for {batch_size} prompts")
    return negative_list


_EXPECTED_CLASSES = {
    "text_encoder": ("ClapModel",),
    "text_encoder_2": ("T5EncoderModel",),
    "projection_model": ("AudioLDM2ProjectionModel",),
    "language_model": ("GPT2Model", "GPT2LMHeadModel"),
}


def load_audioldm2_conditioner(
    folder: str | Path,
    *,
    projection: AudioLDM2Projection | None = None,
    dtype: torch.dtype = torch.float32,
) -> AudioLDM2TextConditioner:
    """Build the conditioner from a local AudioLDM 2 diffusers folder (e.g. a downloaded cvssp/audioldm2).

    Reads ``text_encoder`` (CLAP), ``text_encoder_2`` (Flan-T5 encoder), ``projection_model`` (unless
    ``projection`` is given, e.g. from a converted checkpoint), ``language_model`` (GPT-2), ``tokenizer`` and
    ``tokenizer_2``; nothing is downloaded. The number of generated vectors is the language model config's
    ``max_new_tokens`` (8 when absent). Returned frozen (eval mode, no gradients), in ``dtype``.
    """
    folder = Path(folder)
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"no model_index.json in {folder}: expected an AudioLDM 2 diffusers folder")
    model_index = json.loads(index_path.read_text())
    for component, class_names in _EXPECTED_CLASSES.items():
        class_name = model_index.get(component, [None, None])[1]
        if class_name not in class_names:
            raise ValueError(
                f"{index_path}: {component} is {class_name!r}, expected one of {class_names} "
                "(text-to-audio AudioLDM 2; the VITS text-to-speech checkpoints are not supported)"
            )
    for component in (*_EXPECTED_CLASSES, "tokenizer", "tokenizer_2"):
        if not (folder / component).is_dir():
            raise FileNotFoundError(f"AudioLDM 2 folder {folder} has no {component}/ sub-folder")
    language_model_config = json.loads((folder / "language_model" / "config.json").read_text())
    conditioner = AudioLDM2TextConditioner(
        clap_model=ClapModel.from_pretrained(folder / "text_encoder", local_files_only=True),
        clap_tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True),
        t5_encoder=T5EncoderModel.from_pretrained(folder / "text_encoder_2", local_files_only=True),
        t5_tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer_2", local_files_only=True),
        projection=projection if projection is not None else load_diffusers_projection(folder / "projection_model"),
        language_model=GPT2Model.from_pretrained(folder / "language_model", local_files_only=True),
        num_language_of_audio_vectors=int(language_model_config.get("max_new_tokens") or 8),
    )
    return conditioner.to(dtype).eval().requires_grad_(False)
