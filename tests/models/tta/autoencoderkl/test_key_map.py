"""Parity with diffusers AutoencoderKL on identical tiny random weights, and the checkpoint loader's errors."""

import json

import pytest
import torch
from diffusers import AutoencoderKL as ReferenceAutoencoderKL

from models.tta.autoencoderkl.key_map import (
    autoencoder_kwargs_from_diffusers_config,
    convert_diffusers_state_dict,
    load_diffusers_vae,
)
from models.tta.autoencoderkl.model import AutoencoderKL

TOLERANCE = 1e-5


def _reference_vae(block_out_channels: tuple[int, ...]) -> ReferenceAutoencoderKL:
    torch.manual_seed(0)
    reference = ReferenceAutoencoderKL(
        in_channels=1,
        out_channels=1,
        latent_channels=8,
        block_out_channels=block_out_channels,
        down_block_types=("DownEncoderBlock2D",) * len(block_out_channels),
        up_block_types=("UpDecoderBlock2D",) * len(block_out_channels),
        layers_per_block=2,
        norm_num_groups=8,
        scaling_factor=0.4110932946205139,
    )
    # Random GroupNorm affines and biases too, so a swapped or dropped one cannot go unnoticed.
    with torch.no_grad():
        for name, parameter in reference.named_parameters():
            if "norm" in name or name.endswith("bias"):
                parameter.normal_(mean=1.0 if name.endswith("norm.weight") else 0.0, std=0.1)
    return reference.eval()


@pytest.mark.parametrize("block_out_channels", [(32, 64), (32, 64, 64)])
def test_parity_with_diffusers(block_out_channels):
    reference = _reference_vae(block_out_channels)
    ours = AutoencoderKL(block_out_channels=block_out_channels, norm_groups=8).eval()
    ours.load_state_dict(convert_diffusers_state_dict(reference.state_dict(), ours))
    mel = torch.randn(2, 1, 32, 16, generator=torch.Generator().manual_seed(1))
    latent = torch.randn(2, 8, 32 // ours.downsample_factor, 16 // ours.downsample_factor)
    with torch.no_grad():
        expected_posterior = reference.encode(mel).latent_dist
        posterior = ours.encode(mel)
        expected_mel = reference.decode(latent).sample
        decoded = ours.decode(latent)
        expected_round_trip = reference(mel).sample
        round_trip = ours.reconstruct(mel)
    assert (posterior.mean - expected_posterior.mean).abs().max() <= TOLERANCE
    assert (posterior.logvar - expected_posterior.logvar).abs().max() <= TOLERANCE
    assert (decoded - expected_mel).abs().max() <= TOLERANCE
    assert (round_trip - expected_round_trip).abs().max() <= TOLERANCE


def test_load_diffusers_vae_from_saved_folder(tmp_path):
    reference = _reference_vae((32, 64))
    reference.save_pretrained(tmp_path / "vae")
    model, scaling_factor = load_diffusers_vae(tmp_path / "vae")
    assert scaling_factor == pytest.approx(0.4110932946205139)
    assert model.block_out_channels == (32, 64) and model.latent_channels == 8
    mel = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert (model.eval().reconstruct(mel) - reference(mel).sample).abs().max() <= TOLERANCE


def test_load_diffusers_vae_reads_bin_weights(tmp_path):
    reference = _reference_vae((32, 64))
    reference.save_pretrained(tmp_path, safe_serialization=False)
    assert (tmp_path / "diffusion_pytorch_model.bin").is_file()
    model, _ = load_diffusers_vae(tmp_path)
    assert torch.equal(model.decoder.conv_out.weight, reference.decoder.conv_out.weight)


def test_legacy_attention_names_and_conv_shaped_projections_load():
    reference = _reference_vae((32, 64))
    state = {}
    for key, tensor in reference.state_dict().items():
        for new, old in (("to_q", "query"), ("to_k", "key"), ("to_v", "value"), ("to_out.0", "proj_attn")):
            if f"attentions.0.{new}." in key:
                key = key.replace(new, old)
                tensor = tensor[:, :, None, None] if key.endswith("weight") else tensor
        state[key] = tensor
    ours = AutoencoderKL(block_out_channels=(32, 64), norm_groups=8)
    ours.load_state_dict(convert_diffusers_state_dict(state, ours))
    expected = reference.encoder.mid_block.attentions[0].to_out[0].weight
    assert torch.equal(ours.encoder.mid_block.self_attention.attention.to_out.weight, expected)


def test_missing_and_unexpected_keys_are_all_named():
    reference = _reference_vae((32, 64))
    state = reference.state_dict()
    del state["decoder.conv_out.bias"]
    del state["encoder.mid_block.attentions.0.to_q.weight"]
    state["encoder.extra_layer.weight"] = torch.zeros(1)
    ours = AutoencoderKL(block_out_channels=(32, 64), norm_groups=8)
    with pytest.raises(KeyError) as error:
        convert_diffusers_state_dict(state, ours)
    message = str(error.value)
    assert "decoder.conv_out.bias" in message
    assert "encoder.mid_block.self_attention.attention.to_q.weight" in message
    assert "encoder.extra_layer.weight" in message


def test_shape_mismatch_is_named():
    reference = _reference_vae((32, 64))
    ours = AutoencoderKL(block_out_channels=(32, 64), latent_channels=4, norm_groups=8)
    with pytest.raises(ValueError, match="quant_conv.weight"):
        convert_diffusers_state_dict(reference.state_dict(), ours)


def test_unsupported_config_and_missing_files_raise(tmp_path):
    config = dict(_reference_vae((32, 64)).config)
    assert autoencoder_kwargs_from_diffusers_config(config)["norm_groups"] == 8
    with pytest.raises(ValueError, match="act_fn"):
        autoencoder_kwargs_from_diffusers_config(config | {"act_fn": "relu"})
    with pytest.raises(ValueError, match="down_block_types"):
        autoencoder_kwargs_from_diffusers_config(config | {"down_block_types": ["AttnDownEncoderBlock2D"]})
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_diffusers_vae(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({key: value for key, value in config.items()
                                                      if not key.startswith("_")}))
    with pytest.raises(FileNotFoundError, match="diffusion_pytorch_model"):
        load_diffusers_vae(tmp_path)
