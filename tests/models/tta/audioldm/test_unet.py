"""Shape, masking, conditioning and checkpointing tests for the latent-diffusion UNet."""

import pytest
import torch

from models.tta.audioldm.unet import AudioLDMUNet


def _two_stream_unet(**overrides) -> AudioLDMUNet:
    """Tiny AudioLDM 2-style UNet: a self-attention transformer, then GPT-2 (16-d) and T5 (32-d) cross-attention."""
    kwargs = dict(
        in_channels=8,
        out_channels=8,
        block_out_channels=(16, 32),
        attention_blocks=(False, True),
        cross_attention_dims=(None, 16, 32),
        layers_per_block=1,
        num_attention_heads=4,
        norm_groups=8,
    )
    kwargs.update(overrides)
    torch.manual_seed(0)
    unet = AudioLDMUNet(**kwargs).eval()
    # Perturb every parameter (biases and norm affines included) so that no path starts as an identity.
    with torch.no_grad():
        for parameter in unet.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return unet


def _inputs(batch: int = 2, height: int = 16, width: int = 8):
    torch.manual_seed(1)
    sample = torch.randn(batch, 8, height, width)
    timestep = torch.tensor([5, 900])[:batch]
    gpt = torch.randn(batch, 8, 16)
    t5 = torch.randn(batch, 6, 32)
    t5_mask = torch.ones(batch, 6, dtype=torch.bool)
    t5_mask[0, 3:] = False
    return sample, timestep, gpt, t5, t5_mask


def test_single_context_audioldm_style_shape():
    torch.manual_seed(0)
    unet = AudioLDMUNet(
        in_channels=8,
        out_channels=8,
        block_out_channels=(16, 32, 32),
        attention_blocks=(False, True, True),
        cross_attention_dims=(24,),
        layers_per_block=2,
        num_attention_heads=4,
        norm_groups=8,
    ).eval()
    assert unet.context_dims == [24]
    group = unet.down_blocks[1].attentions[0]
    assert len(group.transformers) == 1
    assert group.transformers[0].layers[0].attn2.to_k.in_features == 24
    text = torch.randn(3, 7, 24)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 2:] = False
    with torch.no_grad():
        out = unet(torch.randn(3, 8, 16, 8), torch.tensor([1, 2, 3]), contexts=[text], context_masks=[mask])
    assert out.shape == (3, 8, 16, 8)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("height,width", [(25, 16), (16, 8), (13, 7), (1, 3)])
def test_any_latent_size_keeps_shape(height, width):
    unet = _two_stream_unet(block_out_channels=(16, 32, 32), attention_blocks=(False, True, True))
    sample, timestep, gpt, t5, t5_mask = _inputs(height=height, width=width)
    with torch.no_grad():
        out = unet(sample, timestep, contexts=[gpt, t5], context_masks=[None, t5_mask])
    assert out.shape == sample.shape


def test_padding_tokens_masked_out_do_not_change_output():
    unet = _two_stream_unet()
    sample, timestep, gpt, t5, t5_mask = _inputs()
    padded_t5 = torch.cat([t5, 100.0 * torch.randn(2, 5, 32)], dim=1)
    padded_mask = torch.cat([t5_mask, torch.zeros(2, 5, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        reference = unet(sample, timestep, contexts=[gpt, t5], context_masks=[None, t5_mask])
        padded = unet(sample, timestep, contexts=[gpt, padded_t5], context_masks=[None, padded_mask])
        # Changing a masked-out token changes nothing; changing a valid one does.
        edited = t5.clone()
        edited[0, 4] += 10.0
        masked_edit = unet(sample, timestep, contexts=[gpt, edited], context_masks=[None, t5_mask])
        edited[0, 1] += 10.0
        valid_edit = unet(sample, timestep, contexts=[gpt, edited], context_masks=[None, t5_mask])
    # Padding lengthens the attention's sums over keys, so float rounding may differ by a few ulps.
    torch.testing.assert_close(padded, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(masked_edit, reference, atol=1e-6, rtol=0)
    assert (valid_edit[0] - reference[0]).abs().max() > 1e-4
    torch.testing.assert_close(valid_edit[1], reference[1], atol=1e-6, rtol=0)


def test_each_context_stream_and_timestep_reach_the_output():
    unet = _two_stream_unet()
    sample, timestep, gpt, t5, t5_mask = _inputs()
    with torch.no_grad():
        reference = unet(sample, timestep, contexts=[gpt, t5], context_masks=[None, t5_mask])
        other_gpt = unet(sample, timestep, contexts=[gpt + 1.0, t5], context_masks=[None, t5_mask])
        other_t5 = unet(sample, timestep, contexts=[gpt, t5 + 1.0], context_masks=[None, t5_mask])
        other_t = unet(sample, timestep + 7, contexts=[gpt, t5], context_masks=[None, t5_mask])
    for changed in (other_gpt, other_t5, other_t):
        assert (changed - reference).abs().max() > 1e-4


def test_scalar_timestep_equals_broadcast_tensor():
    unet = _two_stream_unet()
    sample, _, gpt, t5, t5_mask = _inputs()
    outputs = []
    with torch.no_grad():
        for timestep in (321, 321.0, torch.tensor(321), torch.tensor([321, 321])):
            outputs.append(unet(sample, timestep, contexts=[gpt, t5], context_masks=[None, t5_mask]))
    for output in outputs[1:]:
        torch.testing.assert_close(output, outputs[0], atol=0, rtol=0)


def test_bad_contexts_raise():
    unet = _two_stream_unet()
    sample, timestep, gpt, t5, t5_mask = _inputs()
    with pytest.raises(ValueError, match="expected 2 context tensors"):
        unet(sample, timestep, contexts=[gpt])
    with pytest.raises(ValueError, match="context 1 must be"):
        unet(sample, timestep, contexts=[gpt, t5[..., :16]])
    with pytest.raises(ValueError, match="context mask 1"):
        unet(sample, timestep, contexts=[gpt, t5], context_masks=[None, t5_mask[:, :3]])
    with pytest.raises(ValueError, match="timestep"):
        unet(sample, torch.tensor([1, 2, 3]), contexts=[gpt, t5])


def test_gradient_checkpointing_gives_same_gradients():
    plain = _two_stream_unet(dropout=0.0).train()
    checkpointed = _two_stream_unet(dropout=0.0, use_gradient_checkpointing=True).train()
    sample, timestep, gpt, t5, t5_mask = _inputs()
    grads = []
    for unet in (plain, checkpointed):
        loss = unet(sample, timestep, contexts=[gpt, t5], context_masks=[None, t5_mask]).square().mean()
        loss.backward()
        grads.append({name: p.grad.clone() for name, p in unet.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5, msg=name)


def test_constructor_validates_arguments():
    with pytest.raises(ValueError, match="attention_blocks"):
        _two_stream_unet(attention_blocks=(False,))
    with pytest.raises(ValueError, match="divisible"):
        _two_stream_unet(num_attention_heads=5)


def test_full_size_parameter_counts_match_reference():
    """The public base (≈346.9 M) and large (≈718.0 M) AudioLDM 2 UNets, built without allocating memory."""
    common = dict(
        in_channels=8,
        out_channels=8,
        block_out_channels=(128, 256, 384, 640),
        attention_blocks=(False, True, True, True),
        layers_per_block=2,
        num_attention_heads=8,
        norm_groups=32,
    )
    with torch.device("meta"):
        base = AudioLDMUNet(cross_attention_dims=(None, 768, 1024), **common)
        large = AudioLDMUNet(cross_attention_dims=(None, 768, 1024, None), transformer_layers_per_block=2, **common)
    assert sum(p.numel() for p in base.parameters()) == 346_943_496
    assert sum(p.numel() for p in large.parameters()) == 718_012_296


def _pooled_unet() -> AudioLDMUNet:
    """Tiny one-stream UNet whose time embedding also gets the text's pooled embedding."""
    return _two_stream_unet(cross_attention_dims=(24,), pooled_context_embedding=True)


def _text(rows: int = 4, length: int = 5):
    torch.manual_seed(2)
    text = torch.randn(rows, length, 24)
    mask = torch.ones(rows, length, dtype=torch.bool)
    mask[0, 3:] = False
    return text, mask


def test_pooled_context_embedding_honours_the_mask_and_reaches_every_row():
    unet = _pooled_unet()
    sample, timestep, *_ = _inputs()
    text, mask = _text(rows=2)
    padded_text = torch.cat([text, 100.0 * torch.randn(2, 4, 24)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(2, 4, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        reference = unet(sample, timestep, contexts=[text], context_masks=[mask])
        padded = unet(sample, timestep, contexts=[padded_text], context_masks=[padded_mask])
        # The same weights with the pooled path switched off.
        mlp, unet.pooled_context_mlp = unet.pooled_context_mlp, None
        cross_attention_only = unet(sample, timestep, contexts=[text], context_masks=[mask])
        unet.pooled_context_mlp = mlp
    torch.testing.assert_close(padded, reference, atol=1e-5, rtol=0)
    assert (cross_attention_only - reference).abs().amax(dim=(1, 2, 3)).min() > 1e-3
    assert sum(parameter.numel() for parameter in mlp.parameters()) == 24 * 64 + 64 + 64 * 64 + 64


def test_pooled_context_embedding_with_shared_guidance_latent_and_precomputed_contexts():
    """Guidance passes 2B context rows for B latents: every row must equal the explicitly tiled call, also from
    precomputed contexts, although no layer can now be shared between the halves."""
    unet = _pooled_unet()
    sample, timestep, *_ = _inputs()
    text, mask = _text(rows=4)
    with torch.no_grad():
        shared = unet(sample, timestep, contexts=[text], context_masks=[mask])
        tiled = unet(torch.cat([sample, sample]), torch.cat([timestep, timestep]), contexts=[text], context_masks=[mask])
        precomputed = unet(sample, timestep, contexts=unet.precompute_context([text], [mask]))
    assert shared.shape == (4, 8, 16, 8)
    torch.testing.assert_close(shared, tiled, atol=1e-5, rtol=0)
    torch.testing.assert_close(precomputed, shared, atol=1e-6, rtol=0)
    plain = _two_stream_unet(cross_attention_dims=(24,))
    with pytest.raises(ValueError, match="another network"):
        unet(sample, timestep, contexts=plain.precompute_context([text], [mask]))
    with pytest.raises(ValueError, match="needs a context stream"):
        _two_stream_unet(cross_attention_dims=(None,), pooled_context_embedding=True)
