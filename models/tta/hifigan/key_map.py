"""Load transformers `SpeechT5HifiGan` weights (AudioLDM 2's vocoder) into `HifiGanGenerator`.

The names are translated through an explicit table built from the architecture, so a checkpoint that does not
fit raises an error listing every missing and unexpected key instead of loading partially. Weight-normalised
tensors are accepted on either side: the source may store plain weights (the public checkpoint), the
`parametrizations.weight.original0/1` pair, or the legacy `weight_g`/`weight_v` pair; the target may be plain or
carry weight norm (training).
"""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file

from models.tta.hifigan.model import HifiGanGenerator

# SpeechT5HifiGanConfig's defaults: transformers may leave a field out of config.json when it equals its default.
_SPEECHT5_DEFAULTS = {
    "model_in_dim": 80,
    "upsample_initial_channel": 512,
    "upsample_rates": [4, 4, 4, 4],
    "upsample_kernel_sizes": [8, 8, 8, 8],
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "leaky_relu_slope": 0.1,
    "normalize_before": True,
}
_SPEECHT5_MODEL_TYPE = "speecht5_hifigan"
_WEIGHT_NORM_PAIRS = (
    (".parametrizations.weight.original0", ".parametrizations.weight.original1"),
    (".weight_g", ".weight_v"),
)
_G, _V = _WEIGHT_NORM_PAIRS[0]


class VocoderKeyError(KeyError):
    """A state dict whose keys do not match the generator; the message lists every offending key."""

    def __init__(self, missing: Sequence[str], unexpected: Sequence[str]):
        self.missing = sorted(missing)
        self.unexpected = sorted(unexpected)
        super().__init__(self.missing, self.unexpected)

    def __str__(self) -> str:
        return f"vocoder state dict does not match: missing keys {self.missing}, unexpected keys {self.unexpected}"


def speecht5_key_map(*, num_upsamples: int, resblock_dilation_sizes: Sequence[Sequence[int]]) -> dict[str, str]:
    """SpeechT5HifiGan name → HifiGanGenerator name, for plain (not weight-normalised) tensors.

    SpeechT5HifiGan keeps all residual blocks in one flat list, `resblocks[stage * num_kernels + kernel]`, with
    `convs1` (dilated) and `convs2`; ours nests them per stage.
    """
    key_map = {"mean": "mean", "scale": "scale"}
    num_kernels = len(resblock_dilation_sizes)
    for tensor in ("weight", "bias"):
        key_map[f"conv_pre.{tensor}"] = f"conv_in.{tensor}"
        key_map[f"conv_post.{tensor}"] = f"conv_out.{tensor}"
        for stage in range(num_upsamples):
            key_map[f"upsampler.{stage}.{tensor}"] = f"stages.{stage}.upsample.{tensor}"
            for kernel, dilations in enumerate(resblock_dilation_sizes):
                source = f"resblocks.{stage * num_kernels + kernel}"
                target = f"stages.{stage}.resblocks.{kernel}"
                for conv in range(len(dilations)):
                    key_map[f"{source}.convs1.{conv}.{tensor}"] = f"{target}.dilated_convs.{conv}.{tensor}"
                    key_map[f"{source}.convs2.{conv}.{tensor}"] = f"{target}.convs.{conv}.{tensor}"
    return key_map


def _fold_weight_norm(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace every complete (g, v) pair by the plain weight g · v / ‖v‖ (norm over the dims where g is 1)."""
    plain = dict(state_dict)
    for g_suffix, v_suffix in _WEIGHT_NORM_PAIRS:
        for g_key in [key for key in plain if key.endswith(g_suffix)]:
            prefix = g_key[: -len(g_suffix)]
            v_key = prefix + v_suffix
            if v_key not in plain:
                continue
            g, v = plain.pop(g_key), plain.pop(v_key)
            reduce_dims = tuple(d for d in range(v.dim()) if g.shape[d] == 1)
            plain[f"{prefix}.weight"] = v * (g / torch.linalg.vector_norm(v, dim=reduce_dims, keepdim=True))
    return plain


def _split_weight_norm(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain weight → (g, v) as `parametrizations.weight_norm(dim=0)` stores them."""
    return torch.norm_except_dim(weight, 2, 0), weight


def convert_speecht5_state_dict(
    state_dict: Mapping[str, torch.Tensor], generator: HifiGanGenerator
) -> dict[str, torch.Tensor]:
    """SpeechT5HifiGan state dict → a state dict `generator` loads with `strict=True` (plain or weight-normed).

    Raises `VocoderKeyError` naming (in SpeechT5HifiGan's names) every key of `state_dict` with no place in
    `generator` and every tensor that `generator` needs and `state_dict` does not provide.
    """
    key_map = speecht5_key_map(
        num_upsamples=len(generator.stages),
        resblock_dilation_sizes=[
            [conv.dilation[0] for conv in resblock.dilated_convs] for resblock in generator.stages[0].resblocks
        ],
    )
    plain = _fold_weight_norm(state_dict)
    unexpected = [key for key in plain if key not in key_map]
    missing = [key for key in key_map if key not in plain]
    if unexpected or missing:
        raise VocoderKeyError(missing, unexpected)

    target_keys = set(generator.state_dict())
    converted = {}
    for source_key, tensor in plain.items():
        target_key = key_map[source_key]
        prefix = target_key.removesuffix(".weight")
        if target_key not in target_keys and prefix + _G in target_keys:
            converted[prefix + _G], converted[prefix + _V] = _split_weight_norm(tensor)
        else:
            converted[target_key] = tensor
    return converted


def load_speecht5_state_dict(generator: HifiGanGenerator, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy SpeechT5HifiGan weights into `generator` in place (see `convert_speecht5_state_dict`)."""
    generator.load_state_dict(convert_speecht5_state_dict(state_dict, generator), strict=True)


def generator_kwargs_from_speecht5_config(config: Mapping[str, object]) -> dict[str, object]:
    """A SpeechT5HifiGan config.json (as a dict) → `HifiGanGenerator` keyword arguments.

    Fields left out fall back to SpeechT5HifiGanConfig's defaults; metadata fields (dtype, versions) are ignored.
    """
    model_type = config.get("model_type", _SPEECHT5_MODEL_TYPE)
    if model_type != _SPEECHT5_MODEL_TYPE:
        raise ValueError(f"expected a {_SPEECHT5_MODEL_TYPE!r} config, got model_type {model_type!r}")
    values = {name: config.get(name, default) for name, default in _SPEECHT5_DEFAULTS.items()}
    return {
        "model_in_dim": int(values["model_in_dim"]),
        "upsample_initial_channel": int(values["upsample_initial_channel"]),
        "upsample_rates": tuple(int(r) for r in values["upsample_rates"]),
        "upsample_kernel_sizes": tuple(int(k) for k in values["upsample_kernel_sizes"]),
        "resblock_kernel_sizes": tuple(int(k) for k in values["resblock_kernel_sizes"]),
        "resblock_dilation_sizes": tuple(tuple(int(d) for d in ds) for ds in values["resblock_dilation_sizes"]),
        "leaky_relu_slope": float(values["leaky_relu_slope"]),
        "normalize_before": bool(values["normalize_before"]),
    }


def load_diffusers_vocoder(folder: str | Path) -> HifiGanGenerator:
    """Build and load a generator from a diffusers pipeline's `vocoder/` folder, in eval mode, without weight norm.

    The folder holds `config.json` and `model.safetensors` (preferred) or `pytorch_model.bin`. Nothing is
    downloaded: `folder` must already be on disk.
    """
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"no vocoder config at {config_path}")
    with config_path.open(encoding="utf-8") as file:
        config = json.load(file)
    generator = HifiGanGenerator(**generator_kwargs_from_speecht5_config(config))

    safetensors_path, bin_path = folder / "model.safetensors", folder / "pytorch_model.bin"
    if safetensors_path.is_file():
        state_dict = load_file(safetensors_path)
    elif bin_path.is_file():
        state_dict = torch.load(bin_path, map_location="cpu", weights_only=True)
    else:
        raise FileNotFoundError(f"no vocoder weights in {folder}: expected {safetensors_path.name} or {bin_path.name}")
    load_speecht5_state_dict(generator, state_dict)
    return generator.eval()
