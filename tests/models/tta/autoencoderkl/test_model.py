"""AutoencoderKL shapes: the reference 10.24 s mel, odd lengths, and the deterministic round trip."""

import pytest
import torch

from models.tta.autoencoderkl.model import AutoencoderKL


def _narrow_vae(**overrides) -> AutoencoderKL:
    torch.manual_seed(0)
    arguments = {"block_out_channels": (16, 32, 32), "norm_groups": 8} | overrides
    return AutoencoderKL(**arguments).eval()


def test_reference_mel_maps_to_reference_latent():
    vae = _narrow_vae()
    mel = torch.randn(1, 1, 1024, 64)
    with torch.no_grad():
        posterior = vae.encode(mel)
        decoded = vae.decode(posterior.sample(torch.Generator().manual_seed(0)))
    assert vae.downsample_factor == 4
    assert posterior.mean.shape == (1, 8, 256, 16)
    assert posterior.logvar.shape == (1, 8, 256, 16)
    assert decoded.shape == (1, 1, 1024, 64)


@pytest.mark.parametrize("frames, bins", [(1001, 64), (37, 30), (4, 4)])
def test_any_length_reconstructs_to_input_shape(frames, bins):
    vae = _narrow_vae()
    mel = torch.randn(1, 1, frames, bins)
    with torch.no_grad():
        reconstruction, posterior = vae(mel, generator=torch.Generator().manual_seed(0))
    assert posterior.mean.shape == (1, 8, -(-frames // 4), -(-bins // 4))
    assert reconstruction.shape == mel.shape
    assert torch.isfinite(reconstruction).all()


def test_padding_replicates_the_last_frame_and_bin_only_when_needed():
    vae = _narrow_vae()
    mel = torch.randn(1, 1, 32, 16)
    assert vae.pad_to_multiple(mel) is mel
    padded = vae.pad_to_multiple(mel[..., :30, :15])
    assert padded.shape == (1, 1, 32, 16)
    assert torch.equal(padded[..., 30:, :15], mel[..., 29:30, :15].expand(1, 1, 2, 15))
    assert torch.equal(padded[..., 15], padded[..., 14])


def test_reconstruct_is_deterministic_and_forward_samples():
    vae = _narrow_vae(block_out_channels=(32, 64))
    mel = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        reconstruction = vae.reconstruct(mel[..., :15, :])
        assert reconstruction.shape == (1, 1, 15, 16)
        assert torch.equal(reconstruction, vae.reconstruct(mel[..., :15, :]))
        assert torch.equal(vae.reconstruct(mel), vae.decode(vae.encode(mel).mean))
        first, _ = vae(mel, generator=torch.Generator().manual_seed(0))
        second, _ = vae(mel, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(first, second)


def test_downsample_factor_follows_depth_and_last_layer_is_decoder_output():
    vae = _narrow_vae(block_out_channels=(32, 32, 64, 64))
    assert vae.downsample_factor == 8
    assert vae.last_layer_weight is vae.decoder.conv_out.weight
    assert vae.encode(torch.randn(1, 1, 20, 12)).mean.shape == (1, 8, 3, 2)


def test_mid_block_attention_can_be_disabled_and_widths_are_checked():
    assert _narrow_vae(mid_block_attention=False).encoder.mid_block.self_attention is None
    with pytest.raises(ValueError, match="norm_groups"):
        AutoencoderKL(block_out_channels=(32, 60), norm_groups=8)


def test_reference_width_parameter_count():
    """The AudioLDM 2 VAE (128, 256, 512) layout has diffusers' parameter counts: checks wiring, not just shapes."""
    vae = AutoencoderKL()
    encoder_params = sum(parameter.numel() for parameter in vae.encoder.parameters())
    decoder_params = sum(parameter.numel() for parameter in vae.decoder.parameters())
    assert encoder_params == 22_395_024
    assert decoder_params == 32_981_505
