"""Numeric parity with diffusers ``AudioLDM2UNet2DConditionModel`` on identical tiny random weights."""

import json

import pytest
import torch
from diffusers import AudioLDM2UNet2DConditionModel
from safetensors.torch import load_file, save_file

from models.tta.audioldm.unet import AudioLDMUNet
from models.tta.audioldm.unet_key_map import (
    convert_diffusers_unet_state_dict,
    load_diffusers_audioldm2_unet,
    unet_kwargs_from_diffusers_config,
)

TOLERANCE = 1e-5

BASE_LIKE = dict(
    sample_size=16,
    in_channels=8,
    out_channels=8,
    block_out_channels=(16, 32),
    layers_per_block=2,
    norm_num_groups=8,
    attention_head_dim=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=[[None, 16, 32], [None, 16, 32]],
)
LARGE_LIKE = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    block_out_channels=(32, 64, 64),
    layers_per_block=1,
    norm_num_groups=8,
    attention_head_dim=8,
    transformer_layers_per_block=2,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=[[None, 16, 32, None]] * 3,
)


def _reference(config: dict) -> AudioLDM2UNet2DConditionModel:
    torch.manual_seed(0)
    reference = AudioLDM2UNet2DConditionModel(**config).eval()
    # Perturb every parameter (norm affines and biases included) so that each one affects the output.
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return reference


def _ours_from(reference: AudioLDM2UNet2DConditionModel) -> AudioLDMUNet:
    ours = AudioLDMUNet(**unet_kwargs_from_diffusers_config(dict(reference.config))).eval()
    ours.load_state_dict(convert_diffusers_unet_state_dict(reference.state_dict(), ours))
    return ours


def _inputs(channels: int, height: int, width: int):
    torch.manual_seed(1)
    sample = torch.randn(2, channels, height, width)
    timestep = torch.tensor([17, 843])
    gpt = torch.randn(2, 8, 16)
    t5 = torch.randn(2, 7, 32)
    t5_mask = torch.ones(2, 7, dtype=torch.bool)
    t5_mask[0, 4:] = False
    t5_mask[1, 6:] = False
    return sample, timestep, gpt, t5, t5_mask


def _max_diff(reference, ours, channels: int, height: int, width: int) -> float:
    sample, timestep, gpt, t5, t5_mask = _inputs(channels, height, width)
    with torch.no_grad():
        expected = reference(
            sample, timestep, encoder_hidden_states=gpt, encoder_hidden_states_1=t5, encoder_attention_mask_1=t5_mask
        ).sample
        actual = ours(sample, timestep, contexts=[gpt, t5], context_masks=[None, t5_mask])
    assert actual.shape == expected.shape == sample.shape
    return (actual - expected).abs().max().item()


@pytest.mark.parametrize("config", [BASE_LIKE, LARGE_LIKE], ids=["base_like", "large_like"])
@pytest.mark.parametrize("height,width", [(16, 8), (25, 10)])
def test_matches_diffusers(config, height, width):
    reference = _reference(config)
    ours = _ours_from(reference)
    assert _max_diff(reference, ours, config["in_channels"], height, width) <= TOLERANCE


def test_t5_branch_and_mask_matter_in_the_reference_comparison():
    """Guards the parity test itself: the T5 stream and its padding mask change the reference output."""
    reference = _reference(BASE_LIKE)
    sample, timestep, gpt, t5, t5_mask = _inputs(8, 16, 8)
    with torch.no_grad():
        masked = reference(
            sample, timestep, encoder_hidden_states=gpt, encoder_hidden_states_1=t5, encoder_attention_mask_1=t5_mask
        ).sample
        unmasked = reference(sample, timestep, encoder_hidden_states=gpt, encoder_hidden_states_1=t5).sample
        other_t5 = reference(
            sample,
            timestep,
            encoder_hidden_states=gpt,
            encoder_hidden_states_1=t5 + 1.0,
            encoder_attention_mask_1=t5_mask,
        ).sample
    assert (masked - unmasked).abs().max() > 1e-4
    assert (masked - other_t5).abs().max() > 1e-4


@pytest.mark.parametrize("safe_serialization", [True, False], ids=["safetensors", "bin"])
def test_load_from_saved_pipeline_folder(tmp_path, safe_serialization):
    reference = _reference(BASE_LIKE)
    reference.save_pretrained(tmp_path / "unet", safe_serialization=safe_serialization)
    ours = load_diffusers_audioldm2_unet(tmp_path)
    assert not ours.training
    assert _max_diff(reference, ours, 8, 16, 8) <= TOLERANCE


def test_bad_keys_are_named(tmp_path):
    reference = _reference(BASE_LIKE)
    reference.save_pretrained(tmp_path / "unet")
    weights_path = tmp_path / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights_path)
    state["down_blocks.1.attentions.2.transformer_blocks.0.attn2.to_k.weigth"] = state.pop(
        "down_blocks.1.attentions.2.transformer_blocks.0.attn2.to_k.weight"
    )
    state["extra.bias"] = torch.zeros(3)
    save_file(state, weights_path)
    with pytest.raises(ValueError) as error:
        load_diffusers_audioldm2_unet(tmp_path)
    message = str(error.value)
    assert "missing keys: down_blocks.1.attentions.2.transformer_blocks.0.attn2.to_k.weight" in message
    assert "down_blocks.1.attentions.0.transformers.2.layers.0.attn2.to_k.weight" in message
    assert "down_blocks.1.attentions.2.transformer_blocks.0.attn2.to_k.weigth" in message
    assert "extra.bias" in message


def test_unsupported_configs_raise(tmp_path):
    config = dict(AudioLDM2UNet2DConditionModel(**BASE_LIKE).config)
    with pytest.raises(ValueError, match="use_linear_projection"):
        unet_kwargs_from_diffusers_config({**config, "use_linear_projection": True})
    three_blocks = {
        **config,
        "block_out_channels": [16, 32, 32],
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    }
    with pytest.raises(ValueError, match="same list"):
        unet_kwargs_from_diffusers_config({**three_blocks, "cross_attention_dim": [None, [None, 16], [None, 16, 32]]})
    # diffusers would feed entries 0 and 1 from the same stream: not one stream per entry.
    with pytest.raises(ValueError, match="streams"):
        unet_kwargs_from_diffusers_config({**config, "cross_attention_dim": [[16, 32], [16, 32]]})
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match="diffusion_pytorch_model"):
        load_diffusers_audioldm2_unet(tmp_path)
