"""Load diffusers ``AutoencoderKL`` weights (e.g. the ``vae/`` folder of cvssp/audioldm2) into our model.

The layouts differ only in a few names, listed in ``_RENAMES``; every other key is shared verbatim. Checkpoints
saved before diffusers renamed its VAE attention (``query`` / ``key`` / ``value`` / ``proj_attn``, possibly
stored as 1x1 conv kernels) are accepted too.
"""

import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from models.tta.autoencoderkl.model import AutoencoderKL

# (diffusers key pattern, our replacement), applied in order to each key.
_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.", r"encoder.down_blocks.\1.downsample.conv."),
    (r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.", r"decoder.up_blocks.\1.upsample.conv."),
    (r"\.mid_block\.attentions\.0\.group_norm\.", ".mid_block.self_attention.norm."),
    (r"\.mid_block\.attentions\.0\.(?:to_q|query)\.", ".mid_block.self_attention.attention.to_q."),
    (r"\.mid_block\.attentions\.0\.(?:to_k|key)\.", ".mid_block.self_attention.attention.to_k."),
    (r"\.mid_block\.attentions\.0\.(?:to_v|value)\.", ".mid_block.self_attention.attention.to_v."),
    (r"\.mid_block\.attentions\.0\.(?:to_out\.0|proj_attn)\.", ".mid_block.self_attention.attention.to_out."),
)

# diffusers config values our model reproduces; anything else is an architecture we do not implement.
_SUPPORTED_CONFIG = {
    "act_fn": "silu",
    "use_quant_conv": True,
    "use_post_quant_conv": True,
    "shift_factor": None,
    "latents_mean": None,
    "latents_std": None,
}


def rename_diffusers_key(key: str) -> str:
    """Our parameter name for one diffusers AutoencoderKL state-dict key."""
    for pattern, replacement in _RENAMES:
        key = re.sub(pattern, replacement, key)
    return key


def convert_diffusers_state_dict(
    diffusers_state: dict[str, torch.Tensor], model: AutoencoderKL
) -> dict[str, torch.Tensor]:
    """Rename a diffusers AutoencoderKL state dict to ``model``'s keys and check it covers them exactly.

    Raises KeyError naming every missing and unexpected key, and ValueError naming every shape mismatch.
    """
    expected = model.state_dict()
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in diffusers_state.items():
        name = rename_diffusers_key(key)
        is_attention_projection = ".self_attention.attention." in name and name.endswith(".weight")
        if is_attention_projection and tensor.ndim == 4 and tensor.shape[2:] == (1, 1):
            tensor = tensor[:, :, 0, 0]
        converted[name] = tensor
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    if missing or unexpected:
        raise KeyError(
            f"diffusers VAE state dict does not match AutoencoderKL: missing {missing}, unexpected {unexpected}"
        )
    mismatched = [
        f"{name}: checkpoint {tuple(tensor.shape)} vs model {tuple(expected[name].shape)}"
        for name, tensor in converted.items()
        if tensor.shape != expected[name].shape
    ]
    if mismatched:
        raise ValueError("diffusers VAE shapes do not match AutoencoderKL: " + "; ".join(mismatched))
    return converted


def autoencoder_kwargs_from_diffusers_config(config: dict) -> dict:
    """Constructor keyword arguments of our AutoencoderKL for a diffusers ``vae/config.json`` dict."""
    unsupported = [
        f"{name}={config[name]!r}"
        for name, value in _SUPPORTED_CONFIG.items()
        if name in config and config[name] != value
    ]
    for field, block_type in (("down_block_types", "DownEncoderBlock2D"), ("up_block_types", "UpDecoderBlock2D")):
        if any(kind != block_type for kind in config.get(field, ())):
            unsupported.append(f"{field}={config[field]!r}")
    if unsupported:
        raise ValueError(f"unsupported diffusers AutoencoderKL config values: {', '.join(unsupported)}")
    return {
        "in_channels": config["in_channels"],
        "out_channels": config["out_channels"],
        "block_out_channels": tuple(config["block_out_channels"]),
        "layers_per_block": config["layers_per_block"],
        "latent_channels": config["latent_channels"],
        "norm_groups": config["norm_num_groups"],
        "mid_block_attention": config.get("mid_block_add_attention", True),
    }


def _read_diffusers_weights(folder: Path) -> dict[str, torch.Tensor]:
    safetensors_path = folder / "diffusion_pytorch_model.safetensors"
    bin_path = folder / "diffusion_pytorch_model.bin"
    if safetensors_path.is_file():
        return load_file(str(safetensors_path))
    if bin_path.is_file():
        return torch.load(bin_path, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"no diffusion_pytorch_model.safetensors or .bin in {folder}")


def load_diffusers_vae(folder: str | Path) -> tuple[AutoencoderKL, float]:
    """Build our AutoencoderKL from a local diffusers ``vae/`` folder; return it and its latent scaling factor.

    The folder holds ``config.json`` and ``diffusion_pytorch_model.safetensors`` (or ``.bin``). Nothing is
    downloaded.
    """
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"no config.json in {folder}: expected a diffusers AutoencoderKL folder")
    config = json.loads(config_path.read_text())
    if "scaling_factor" not in config:
        raise ValueError(f"{config_path} has no scaling_factor: the latent scale cannot be guessed for an audio VAE")
    model = AutoencoderKL(**autoencoder_kwargs_from_diffusers_config(config))
    model.load_state_dict(convert_diffusers_state_dict(_read_diffusers_weights(folder), model))
    return model, float(config["scaling_factor"])
