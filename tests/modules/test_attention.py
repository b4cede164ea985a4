"""Attention and SpatialSelfAttention: parity with diffusers, shapes, and key-mask semantics."""

import torch
from diffusers.models.attention_processor import Attention as ReferenceAttention

from modules.attention import Attention, SpatialSelfAttention


def _rename_to_out(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key.replace("to_out.0.", "to_out."): value for key, value in state.items()}


def test_cross_attention_matches_diffusers_with_mask():
    torch.manual_seed(0)
    reference = ReferenceAttention(query_dim=16, cross_attention_dim=12, heads=4, dim_head=8).eval()
    ours = Attention(query_dim=16, context_dim=12, heads=4, head_dim=8).eval()
    ours.load_state_dict(_rename_to_out(reference.state_dict()))
    hidden, context = torch.randn(2, 5, 16), torch.randn(2, 7, 12)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    # The AudioLDM 2 UNet hands diffusers the mask as an additive (B, 1, M) bias of -10000 on padded keys.
    bias = (1.0 - mask.float())[:, None, :] * -10000.0
    with torch.no_grad():
        expected = reference(hidden, encoder_hidden_states=context, attention_mask=bias)
        actual = ours(hidden, context, mask)
    assert actual.shape == (2, 5, 16)
    assert torch.allclose(actual, expected, atol=1e-6)


def test_self_attention_shapes_and_biases():
    attention = Attention(query_dim=32, heads=2, head_dim=8, qkv_bias=True, out_bias=False)
    assert attention.to_q.bias is not None and attention.to_out.bias is None
    assert attention.to_out.in_features == 16 and attention.to_out.out_features == 32
    assert attention(torch.randn(3, 9, 32)).shape == (3, 9, 32)


def test_appending_masked_padding_leaves_output_unchanged():
    torch.manual_seed(0)
    attention = Attention(query_dim=16, context_dim=8, heads=2, head_dim=8).eval()
    hidden, context = torch.randn(2, 5, 16), torch.randn(2, 4, 8)
    padded_context = torch.cat([context, 100.0 * torch.randn(2, 3, 8)], dim=1)
    padded_mask = torch.tensor([[True] * 4 + [False] * 3] * 2)
    with torch.no_grad():
        plain = attention(hidden, context)
        padded = attention(hidden, padded_context, padded_mask)
        unmasked = attention(hidden, padded_context)
    assert torch.allclose(plain, padded, atol=1e-6)
    assert not torch.allclose(plain, unmasked, atol=1e-3)


def test_fully_masked_row_stays_finite():
    attention = Attention(query_dim=8, heads=1, head_dim=8)
    out = attention(torch.randn(1, 3, 8), torch.randn(1, 4, 8), torch.zeros(1, 4, dtype=torch.bool))
    assert torch.isfinite(out).all()


def test_spatial_self_attention_matches_diffusers_vae_attention():
    torch.manual_seed(0)
    reference = ReferenceAttention(
        32, heads=1, dim_head=32, eps=1e-6, norm_num_groups=8, residual_connection=True, bias=True,
        upcast_softmax=True, _from_deprecated_attn_block=True,
    ).eval()
    ours = SpatialSelfAttention(channels=32, groups=8).eval()
    renamed = {
        key.replace("group_norm.", "norm.").replace("to_", "attention.to_").replace("to_out.0.", "to_out."): value
        for key, value in reference.state_dict().items()
    }
    ours.load_state_dict(renamed)
    hidden = torch.randn(2, 32, 6, 4)
    with torch.no_grad():
        expected = reference(hidden)
        actual = ours(hidden)
    assert actual.shape == hidden.shape
    assert torch.allclose(actual, expected, atol=1e-5)
