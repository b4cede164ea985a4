"""Use a trained contrastive text–audio model: embed prompts and clips into its joint space.

`SentenceEmbedder` is the frozen text side's front (sentence encoder + masked mean pooling + L2 norm, as
sentence-transformers runs all-MiniLM-L6-v2); `TextAudioEmbedder` adds the trained model and the mel front end;
`load_text_audio_embedder` rebuilds both from a checkpoint's resolved config.
"""

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from models.text_encoder import FrozenTextEncoder, load_text_encoder
from models.tta.text_audio.config import SentenceEncoderConfig, TextAudioModelConfig, build_text_audio_model
from models.tta.text_audio.model import TextAudioModel
from utils.audio import LogMelSpectrogram, MelConfig, build_log_mel
from utils.checkpoint import META_FILE, load_model_weights, read_checkpoint_meta, resolve_checkpoint
from utils.config import ConfigError, validate

# Name of the model in the TextAudio stage's checkpoints (`TextAudioTrainer.build_models`).
TEXT_AUDIO_NAME = "text_audio"


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of token states (B, L, D) over the real tokens of `mask` (B, L) -> (B, D)."""
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class SentenceEmbedder:
    """Prompts -> unit-norm sentence embeddings (N, hidden_size) of a frozen encoder, computed in batches."""

    def __init__(self, encoder: FrozenTextEncoder, *, batch_size: int = 64):
        self.encoder = encoder
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        return self.encoder.hidden_size

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        embeddings = []
        for start in range(0, len(texts), self.batch_size):
            states, mask = self.encoder(list(texts[start : start + self.batch_size]))
            embeddings.append(F.normalize(mean_pool(states, mask), dim=-1).cpu())
        return torch.cat(embeddings) if embeddings else torch.zeros(0, self.dim)


def load_sentence_embedder(config: SentenceEncoderConfig) -> SentenceEmbedder:
    """The frozen sentence encoder named in a `text_encoder` section."""
    return SentenceEmbedder(load_text_encoder(config.name, max_length=config.max_length))


class TextAudioEmbedder:
    """A trained `TextAudioModel` with its sentence encoder and mel front end, on the CPU, in eval mode."""

    def __init__(self, *, model: TextAudioModel, sentences: SentenceEmbedder, log_mel: LogMelSpectrogram,
                 sample_rate: int):
        self.model = model.eval().requires_grad_(False)
        self.sentences = sentences
        self.log_mel = log_mel
        self.sample_rate = sample_rate

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Prompts (N) -> unit-norm joint-space embeddings (N, projection_dim)."""
        return self.model.embed_text(self.sentences(texts))

    @torch.no_grad()
    def embed_waveforms(self, waveforms: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Equal-length clips (B, S) at the model's sample rate -> unit-norm embeddings (B, projection_dim)."""
        if sample_rate != self.sample_rate:
            raise ValueError(f"the text–audio model takes {self.sample_rate} Hz audio, got {sample_rate} Hz")
        mel = self.log_mel(waveforms.float()).transpose(1, 2).unsqueeze(1)
        return self.model.embed_audio(mel)


def load_text_audio_embedder(path: Path | str) -> TextAudioEmbedder:
    """A `TextAudioEmbedder` from a TextAudio checkpoint or experiment folder (its newest valid checkpoint)."""
    checkpoint = resolve_checkpoint(path)
    config = read_checkpoint_meta(checkpoint)["config"]
    source = str(checkpoint / META_FILE)
    if config.get("model_type") != "TextAudio":
        raise ConfigError(f"{source}: a {config.get('model_type')!r} checkpoint, not a TextAudio model")
    mel = validate(MelConfig, config["preprocess"]["mel"], root_source=f"{source} (preprocess.mel)")
    sentences = load_sentence_embedder(
        validate(SentenceEncoderConfig, config["text_encoder"], root_source=f"{source} (text_encoder)")
    )
    model_config = validate(TextAudioModelConfig, config["model"], root_source=f"{source} (model)")
    model = build_text_audio_model(model_config, n_mels=mel.n_mels, text_embedding_dim=sentences.dim)
    load_model_weights(checkpoint, TEXT_AUDIO_NAME, model)
    return TextAudioEmbedder(model=model, sentences=sentences, log_mel=build_log_mel(mel), sample_rate=mel.sample_rate)
