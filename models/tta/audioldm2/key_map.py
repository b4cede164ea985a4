"""Load diffusers ``AudioLDM2ProjectionModel`` weights (the ``projection_model/`` folder) into our projection.

Only the text-to-audio layout (CLAP + Flan-T5) is supported; the TTS checkpoints' VITS variant, which adds a
learned position embedding to the second stream, is rejected with a clear error.
"""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from models.tta.audioldm2.projection import AudioLDM2Projection

# diffusers key -> our key; the two layouts differ only in names.
_DIFFUSERS_TO_OURS: dict[str, str] = {
    "projection.weight": "clap_projection.weight",
    "projection.bias": "clap_projection.bias",
    "projection_1.weight": "t5_projection.weight",
    "projection_1.bias": "t5_projection.bias",
    "sos_embed": "clap_start",
    "eos_embed": "clap_end",
    "sos_embed_1": "t5_start",
    "eos_embed_1": "t5_end",
}


def convert_diffusers_projection_state_dict(
    diffusers_state: dict[str, torch.Tensor], model: AudioLDM2Projection
) -> dict[str, torch.Tensor]:
    """Rename a diffusers projection-model state dict to ``model``'s keys and check it covers them exactly.

    Raises KeyError naming every missing and unexpected key (in diffusers' names for unexpected ones, so a VITS
    ``learnable_positional_embedding`` is reported as such), and ValueError naming every shape mismatch.
    """
    expected = model.state_dict()
    unexpected = sorted(key for key in diffusers_state if key not in _DIFFUSERS_TO_OURS)
    converted = {
        _DIFFUSERS_TO_OURS[key]: tensor for key, tensor in diffusers_state.items() if key in _DIFFUSERS_TO_OURS
    }
    missing = sorted(set(expected) - set(converted))
    if missing or unexpected:
        raise KeyError(
            f"diffusers projection_model state dict does not match AudioLDM2Projection: missing {missing}, "
            f"unexpected {unexpected}"
        )
    mismatched = [
        f"{name}: checkpoint {tuple(tensor.shape)} vs model {tuple(expected[name].shape)}"
        for name, tensor in converted.items()
        if tensor.shape != expected[name].shape
    ]
    if mismatched:
        raise ValueError("diffusers projection_model shapes do not match AudioLDM2Projection: " + "; ".join(mismatched))
    return converted


def projection_kwargs_from_diffusers_config(config: dict) -> dict:
    """Constructor keyword arguments of AudioLDM2Projection for a diffusers ``projection_model/config.json`` dict."""
    if config.get("use_learned_position_embedding"):
        raise ValueError(
            "projection_model uses a learned position embedding (a VITS text-to-speech checkpoint); only the "
            "CLAP + Flan-T5 text-to-audio projection is supported"
        )
    return {
        "clap_dim": config["text_encoder_dim"],
        "t5_dim": config["text_encoder_1_dim"],
        # Sic: diffusers spells this config key "langauge".
        "language_model_dim": config["langauge_model_dim"],
    }


def load_diffusers_projection(folder: str | Path) -> AudioLDM2Projection:
    """Build our AudioLDM2Projection from a local diffusers ``projection_model/`` folder (nothing is downloaded)."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"no config.json in {folder}: expected a diffusers AudioLDM2ProjectionModel folder")
    model = AudioLDM2Projection(**projection_kwargs_from_diffusers_config(json.loads(config_path.read_text())))
    safetensors_path = folder / "diffusion_pytorch_model.safetensors"
    bin_path = folder / "diffusion_pytorch_model.bin"
    if safetensors_path.is_file():
        state = load_file(str(safetensors_path))
    elif bin_path.is_file():
        state = torch.load(bin_path, map_location="cpu", weights_only=True)
    else:
        raise FileNotFoundError(f"no diffusion_pytorch_model.safetensors or .bin in {folder}")
    model.load_state_dict(convert_diffusers_projection_state_dict(state, model))
    return model
