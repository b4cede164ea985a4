"""Load diffusers ``AudioLDM2UNet2DConditionModel`` weights (the public AudioLDM 2 checkpoints) into our UNet.

The diffusers folder layout is ``<folder>/unet/config.json`` plus ``diffusion_pytorch_model.safetensors`` (or
``.bin``). Nothing is downloaded: the user points at a local copy.
"""

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from models.tta.audioldm.unet import AudioLDMUNet

# Our key -> diffusers key, applied in order after the attention-group renumbering (see ``_diffusers_key``).
_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^norm_out\.", "conv_norm_out."),
    (r"\.downsample\.conv\.", ".downsamplers.0.conv."),
    (r"\.upsample\.conv\.", ".upsamplers.0.conv."),
    (r"\.layers\.(\d+)\.", r".transformer_blocks.\1."),
    (r"\.to_out\.", ".to_out.0."),
    (r"\.ff\.proj\.", ".ff.net.0.proj."),
    (r"\.ff\.out\.", ".ff.net.2."),
)
_BLOCK_ATTENTION = re.compile(r"^(down_blocks|up_blocks)\.(\d+)\.attentions\.(\d+)\.transformers\.(\d+)\.")
_MID_ATTENTION = re.compile(r"^mid_block\.attention\.transformers\.(\d+)\.")

_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def _diffusers_key(key: str, transformers_per_layer: int) -> str:
    """Name of our parameter ``key`` in the diffusers state dict.

    diffusers keeps each block's transformers in one flat list (``attentions.{layer * per_layer + entry}``); we
    nest them (``attentions.{layer}.transformers.{entry}``).
    """
    match = _BLOCK_ATTENTION.match(key)
    if match:
        kind, block, layer, entry = match.group(1), int(match.group(2)), int(match.group(3)), int(match.group(4))
        key = f"{kind}.{block}.attentions.{layer * transformers_per_layer + entry}." + key[match.end() :]
    match = _MID_ATTENTION.match(key)
    if match:
        key = f"mid_block.attentions.{match.group(1)}." + key[match.end() :]
    for pattern, replacement in _RENAMES:
        key = re.sub(pattern, replacement, key)
    return key


def convert_diffusers_unet_state_dict(
    diffusers_state: Mapping[str, torch.Tensor], unet: AudioLDMUNet
) -> dict[str, torch.Tensor]:
    """Rename a diffusers AudioLDM 2 UNet state dict into ``unet``'s keys.

    Raises ``ValueError`` naming every missing key, every unexpected key and every shape mismatch.
    """
    per_layer = len(unet.cross_attention_dims)
    ours = unet.state_dict()
    converted: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    mismatched: list[str] = []
    for key, tensor in ours.items():
        source = _diffusers_key(key, per_layer)
        if source not in diffusers_state:
            missing.append(f"{source} (for {key})")
            continue
        value = diffusers_state[source]
        if tuple(value.shape) != tuple(tensor.shape):
            mismatched.append(f"{source}: checkpoint {tuple(value.shape)} vs model {tuple(tensor.shape)}")
        converted[key] = value
    used = {_diffusers_key(key, per_layer) for key in ours}
    unexpected = sorted(key for key in diffusers_state if key not in used)
    problems = []
    if missing:
        problems.append("missing keys: " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected keys: " + ", ".join(unexpected))
    if mismatched:
        problems.append("shape mismatches: " + ", ".join(mismatched))
    if problems:
        raise ValueError("diffusers UNet state dict does not fit the model; " + "; ".join(problems))
    return converted


def _uniform(config: Mapping[str, Any], name: str, default: Any) -> Any:
    """A config value that diffusers allows per block but that our UNet takes once for all blocks."""
    value = config.get(name, default)
    if isinstance(value, list):
        if len(set(map(json.dumps, value))) != 1:
            raise ValueError(f"unet config {name}={value}: per-block values must all be equal for this UNet")
        value = value[0]
    return value


def unet_kwargs_from_diffusers_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Our ``AudioLDMUNet`` constructor arguments from a diffusers ``AudioLDM2UNet2DConditionModel`` config.

    Supports the public checkpoints' layout (base ``[None, 768, 1024]``; large ``[None, 768, 1024, None]`` with two
    transformer layers). Options the public checkpoints do not use raise ``ValueError``.
    """
    # Options the public checkpoints leave at these values; anything else would need code this UNet lacks.
    required_values = {
        "use_linear_projection": False,
        "only_cross_attention": False,
        "upcast_attention": False,
        "class_embed_type": None,
        "num_class_embeds": None,
        "resnet_time_scale_shift": "default",
        "time_embedding_type": "positional",
        "time_embedding_act_fn": None,
        "timestep_post_act": None,
        "time_cond_proj_dim": None,
        "conv_in_kernel": 3,
        "conv_out_kernel": 3,
        "mid_block_scale_factor": 1,
        "act_fn": "silu",
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "num_attention_heads": None,
        "class_embeddings_concat": False,
    }
    for name, supported in required_values.items():
        value = config.get(name, supported)
        if isinstance(value, list) and name == "only_cross_attention":
            value = any(value)
        if value != supported:
            raise ValueError(f"unet config {name}={value!r} is not supported (only {supported!r})")

    down_types = list(config["down_block_types"])
    up_types = list(config["up_block_types"])
    known_down = {"DownBlock2D": False, "CrossAttnDownBlock2D": True}
    known_up = {"UpBlock2D": False, "CrossAttnUpBlock2D": True}
    if any(kind not in known_down for kind in down_types) or any(kind not in known_up for kind in up_types):
        raise ValueError(f"unsupported block types: down {down_types}, up {up_types}")
    attention_blocks = [known_down[kind] for kind in down_types]
    if [known_up[kind] for kind in reversed(up_types)] != attention_blocks:
        raise ValueError(f"up_block_types {up_types} must mirror down_block_types {down_types}")

    cross_attention_dims = _cross_attention_dims(config.get("cross_attention_dim", 1280), attention_blocks)
    return dict(
        in_channels=config.get("in_channels", 4),
        out_channels=config.get("out_channels", 4),
        block_out_channels=list(config["block_out_channels"]),
        attention_blocks=attention_blocks,
        cross_attention_dims=cross_attention_dims,
        layers_per_block=_uniform(config, "layers_per_block", 2),
        transformer_layers_per_block=_uniform(config, "transformer_layers_per_block", 1),
        # diffusers' historical misnomer: ``attention_head_dim`` holds the number of heads.
        num_attention_heads=_uniform(config, "attention_head_dim", 8),
        norm_groups=config.get("norm_num_groups", 32),
        norm_eps=config.get("norm_eps", 1e-5),
        time_embed_dim=config.get("time_embedding_dim"),
        flip_sin_to_cos=config.get("flip_sin_to_cos", True),
        freq_shift=config.get("freq_shift", 0),
        downsample_padding=config.get("downsample_padding", 1),
    )


def _cross_attention_dims(raw: Any, attention_blocks: list[bool]) -> list[int | None]:
    """One ``cross_attention_dims`` list from diffusers' per-block ``cross_attention_dim``.

    diffusers feeds entries 0 and 1 of a transformer list from ``encoder_hidden_states`` and entries from 2 on from
    ``encoder_hidden_states_1``; our UNet gives each non-None entry its own stream, in order. The two agree when
    at most the first non-None entry sits at index <= 1 and at most one non-None entry comes later.
    """
    if isinstance(raw, int):
        per_block = [[raw]] * len(attention_blocks)
    else:
        per_block = [[entry] if isinstance(entry, int) or entry is None else list(entry) for entry in raw]
    if len(per_block) != len(attention_blocks):
        raise ValueError(f"cross_attention_dim {raw}: expected one entry per block ({len(attention_blocks)})")
    # The mid block uses the last entry; attention-free blocks ignore theirs.
    used = [dims for dims, has_attention in zip(per_block, attention_blocks, strict=True) if has_attention]
    used.append(per_block[-1])
    if any(dims != used[0] for dims in used):
        raise ValueError(f"cross_attention_dim {raw}: every attention block must use the same list")
    dims = used[0]
    streams = [index for index, dim in enumerate(dims) if dim is not None]
    diffusers_streams = [0 if index <= 1 else 1 for index in streams]
    if diffusers_streams != list(range(len(streams))):
        raise ValueError(
            f"cross_attention_dim {dims}: diffusers routes its non-None entries to streams {diffusers_streams}, "
            "which this UNet cannot reproduce (it needs one stream per non-None entry)"
        )
    return dims


def load_diffusers_audioldm2_unet(folder: str | Path) -> AudioLDMUNet:
    """Build our UNet from a local diffusers AudioLDM 2 pipeline folder (or its ``unet`` subfolder).

    Reads ``unet/config.json`` and ``unet/diffusion_pytorch_model.safetensors`` (or ``.bin``). Returns the model in
    eval mode with float32 weights.
    """
    folder = Path(folder)
    unet_folder = folder / "unet" if (folder / "unet" / "config.json").is_file() else folder
    config_path = unet_folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"no unet/config.json under {folder}")
    config = json.loads(config_path.read_text())
    weights = next((unet_folder / name for name in _WEIGHT_FILES if (unet_folder / name).is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"no {' or '.join(_WEIGHT_FILES)} in {unet_folder}")
    if weights.suffix == ".safetensors":
        state = load_file(weights)
    else:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    unet = AudioLDMUNet(**unet_kwargs_from_diffusers_config(config))
    unet.load_state_dict(convert_diffusers_unet_state_dict(state, unet))
    return unet.eval()
