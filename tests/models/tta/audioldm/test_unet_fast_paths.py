"""The UNet's inference fast paths give the plain forward's (and diffusers') outputs.

Precomputed context keys/values (``precompute_context``), a latent shared by the guidance halves, the layers
before the first context read run once for calls with different contexts (``trunk``), the channels-last layout
inside, and linear and convolution layers on oneDNN-packed weights (``layers_packed``); plus their argument
checks.
"""

from contextlib import ExitStack, nullcontext

import pytest
import torch
from diffusers import AudioLDM2UNet2DConditionModel

from models.tta.audioldm.sampling import weights_held_in
from models.tta.audioldm.unet import AudioLDMUNet
from models.tta.audioldm.unet_key_map import convert_diffusers_unet_state_dict, unet_kwargs_from_diffusers_config
from modules.attention import Attention
from modules.packed_layers import layers_packed, packing_supported

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
# Two transformer layers per transformer (each with its own cross-attention keys/values), as in the large UNet.
LARGE_LIKE = dict(
    BASE_LIKE,
    block_out_channels=(16, 32, 32),
    layers_per_block=1,
    transformer_layers_per_block=2,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=[[None, 16, 32, None]] * 3,
)


def _models(config: dict) -> tuple[AudioLDM2UNet2DConditionModel, AudioLDMUNet]:
    torch.manual_seed(0)
    reference = AudioLDM2UNet2DConditionModel(**config).eval()
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    ours = AudioLDMUNet(**unet_kwargs_from_diffusers_config(dict(reference.config))).eval()
    ours.load_state_dict(convert_diffusers_unet_state_dict(reference.state_dict(), ours))
    return reference, ours


def _guided_inputs(prompts: int = 1, height: int = 16, width: int = 8):
    """``prompts`` latents and [negative, positive] contexts for them (2 * prompts rows)."""
    torch.manual_seed(1)
    latents = torch.randn(prompts, 8, height, width)
    gpt = torch.randn(2 * prompts, 8, 16)
    t5 = torch.randn(2 * prompts, 7, 32)
    t5_mask = torch.ones(2 * prompts, 7, dtype=torch.bool)
    t5_mask[:prompts, 3:] = False
    return latents, gpt, t5, t5_mask


def _reference_step(reference, latents, timestep, gpt, t5, t5_mask) -> torch.Tensor:
    """diffusers' guided call: the latents doubled."""
    return reference(
        torch.cat([latents, latents]),
        timestep,
        encoder_hidden_states=gpt,
        encoder_hidden_states_1=t5,
        encoder_attention_mask_1=t5_mask,
    ).sample


PACKED = pytest.param(
    True, marks=pytest.mark.skipif(not packing_supported(torch.float32), reason="this PyTorch build has no oneDNN")
)


@pytest.mark.parametrize("packed", [False, PACKED], ids=["unpacked", "packed"])
@pytest.mark.parametrize("config", [BASE_LIKE, LARGE_LIKE], ids=["base_like", "large_like"])
# Width 10 gives odd widths below (10, 5, 3); width 4 gives maps 2 and 1 wide, which packed 3x3 convolutions
# run as matrix products (NARROW_MAP_WIDTH).
@pytest.mark.parametrize("width", [10, 4])
def test_precomputed_contexts_and_shared_latent_match_diffusers(config, packed, width):
    reference, ours = _models(config)
    latents, gpt, t5, t5_mask = _guided_inputs(prompts=2, height=25, width=width)
    timestep = torch.tensor([17, 843])
    with torch.no_grad(), layers_packed(ours) if packed else nullcontext(0) as packed_layers:
        if packed:
            layer_types = (torch.nn.Linear, torch.nn.Conv2d)
            assert packed_layers == sum(isinstance(m, layer_types) for m in reference.modules())
        expected = _reference_step(reference, latents, torch.cat([timestep, timestep]), gpt, t5, t5_mask)
        cache = ours.precompute_context([gpt, t5], [None, t5_mask])
        doubled = torch.cat([latents, latents])
        trunk = ours.trunk(latents, timestep)
        half_caches = [
            ours.precompute_context([gpt[rows], t5[rows]], [None, t5_mask[rows]]) for rows in (slice(0, 2), slice(2, 4))
        ]
        outputs = {
            "plain": ours(doubled, torch.cat([timestep, timestep]), [gpt, t5], [None, t5_mask]),
            "cache": ours(doubled, torch.cat([timestep, timestep]), cache),
            "shared": ours(latents, timestep, [gpt, t5], [None, t5_mask]),
            "cache+shared": ours(latents, timestep, cache),
            "trunk": ours(latents, timestep, cache, trunk=trunk),
            "trunk+halves": torch.cat([ours(latents, timestep, half, trunk=trunk) for half in half_caches]),
        }
    for name, actual in outputs.items():
        assert actual.shape == expected.shape, name
        assert actual.is_contiguous(), name
        assert (actual - expected).abs().max().item() <= TOLERANCE, name


@pytest.mark.parametrize(
    "layout",
    [
        dict(attention_blocks=(False, True), cross_attention_dims=(None, 16, 32)),
        dict(attention_blocks=(True, True), cross_attention_dims=(None, 16, 32)),
        dict(attention_blocks=(False, True), cross_attention_dims=(16,)),
        dict(attention_blocks=(False, True, True), cross_attention_dims=(None, None, 16, 32), layers_per_block=1),
        dict(attention_blocks=(False, True), cross_attention_dims=(None, 16, 32), transformer_layers_per_block=2),
    ],
    ids=["audioldm2", "attention_from_block_0", "context_first", "two_self_attention_transformers", "two_layers"],
)
@pytest.mark.parametrize("precision", [None, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("packed", [False, PACKED], ids=["unpacked", "packed"])
# Width 4: the attention level's 8 x 2 map has 16 positions, as many as the block's input channels and fewer than
# its output channels, so its input runs channels-last and its convolutions' outputs NCHW.
@pytest.mark.parametrize("width", [8, 4])
def test_trunk_then_forward_equals_forward(layout, precision, packed, width):
    torch.manual_seed(0)
    kwargs = dict(in_channels=8, out_channels=8, block_out_channels=(16, 32), norm_groups=8, num_attention_heads=4)
    kwargs.update(layout)
    kwargs["block_out_channels"] = (16, 32, 32)[: len(kwargs["attention_blocks"])]
    unet = AudioLDMUNet(**kwargs).eval()
    with torch.no_grad():
        for parameter in unet.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    latents = torch.randn(1, 8, 16, width)
    contexts = [torch.randn(2, 5, dim) for dim in unet.context_dims]
    with torch.no_grad(), torch.autocast("cpu", dtype=precision, enabled=precision is not None), ExitStack() as stack:
        if packed:  # as the sampling loop runs it: weights held in the autocast dtype, then packed
            if precision is not None:
                if not packing_supported(precision):
                    pytest.skip("this PyTorch build has no oneDNN bf16 layers")
                stack.enter_context(weights_held_in(unet, precision))
            assert stack.enter_context(layers_packed(unet, precision or torch.float32)) > 0
        expected = unet(latents, 700, contexts)
        trunk = unet.trunk(latents, 700)
        resumed = unet(latents, 700, contexts, trunk=trunk)
        halves = torch.cat([unet(latents, 700, [context[half : half + 1] for context in contexts], trunk=trunk)
                            for half in range(2)])
    torch.testing.assert_close(resumed, expected, atol=0, rtol=0)
    torch.testing.assert_close(halves, expected, atol=TOLERANCE if precision is None else 1e-2, rtol=0)


def test_trunk_arguments_are_checked():
    _, ours = _models(BASE_LIKE)
    latents, gpt, t5, t5_mask = _guided_inputs(prompts=2)
    trunk = ours.trunk(latents[:1], 5)
    with pytest.raises(ValueError, match=r"made for a sample of 1 rows and size \(16, 8\), not this one \(2 rows"):
        ours(latents, 5, [gpt, t5], [None, t5_mask], trunk=trunk)
    with pytest.raises(ValueError, match=r"size \(16, 8\), not this one \(1 rows, \(16, 4\)\)"):
        ours(latents[:1, :, :, :4], 5, [gpt[:1], t5[:1]], [None, t5_mask[:1]], trunk=trunk)
    common = dict(in_channels=8, out_channels=8, block_out_channels=(16, 32), norm_groups=8, num_attention_heads=4)
    attention_in_mid_block_only = AudioLDMUNet(attention_blocks=(False, False), cross_attention_dims=(16,), **common)
    pooled = AudioLDMUNet(
        attention_blocks=(False, True), cross_attention_dims=(16,), pooled_context_embedding=True, **common
    )
    for unet in (attention_in_mid_block_only, pooled):
        assert unet.trunk_block is None
        with pytest.raises(ValueError, match="no context-free trunk"):
            unet.trunk(latents, 5)
        with pytest.raises(ValueError, match="takes no trunk"):
            unet(latents, 5, [gpt[:2]], trunk=trunk)


def test_precomputed_contexts_equal_raw_contexts_under_bf16_autocast():
    _, ours = _models(BASE_LIKE)
    latents, gpt, t5, t5_mask = _guided_inputs()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        cache = ours.precompute_context([gpt, t5], [None, t5_mask])
        plain = ours(torch.cat([latents, latents]), 500, [gpt, t5], [None, t5_mask])
        cached = ours(torch.cat([latents, latents]), 500, cache)
    torch.testing.assert_close(cached, plain, atol=0, rtol=0)


def test_channels_last_input_gives_the_same_output():
    _, ours = _models(BASE_LIKE)
    latents, gpt, t5, t5_mask = _guided_inputs()
    with torch.no_grad():
        plain = ours(latents, 5, [gpt[:1], t5[:1]], [None, t5_mask[:1]])
        channels_last = ours(
            latents.contiguous(memory_format=torch.channels_last), 5, [gpt[:1], t5[:1]], [None, t5_mask[:1]]
        )
    torch.testing.assert_close(channels_last, plain, atol=1e-6, rtol=0)


def test_fast_path_arguments_are_checked():
    _, ours = _models(BASE_LIKE)
    _, other = _models(BASE_LIKE)
    latents, gpt, t5, t5_mask = _guided_inputs()
    cache = ours.precompute_context([gpt, t5], [None, t5_mask])
    with pytest.raises(ValueError, match="carry their masks"):
        ours(latents, 5, cache, [None, t5_mask])
    with pytest.raises(ValueError, match="another network"):
        other(latents, 5, cache)
    with pytest.raises(ValueError, match="not a multiple"):
        ours(torch.cat([latents] * 3), 5, cache)
    with pytest.raises(ValueError, match="timestep"):
        ours(latents, torch.tensor([5, 6]), cache)
    with pytest.raises(ValueError, match="expected 2 context tensors"):
        ours.precompute_context([gpt])
    self_attention_only = AudioLDMUNet(
        in_channels=8,
        out_channels=8,
        block_out_channels=(16,),
        attention_blocks=(True,),
        cross_attention_dims=(None,),
        norm_groups=8,
        num_attention_heads=4,
    )
    with pytest.raises(ValueError, match="no context streams"):
        self_attention_only.precompute_context([])


def test_attention_projected_context_matches_raw_context():
    torch.manual_seed(0)
    attention = Attention(query_dim=16, context_dim=12, heads=4, head_dim=8).eval()
    hidden, context = torch.randn(2, 5, 16), torch.randn(2, 7, 12)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    with torch.no_grad():
        projected = attention.project_context(context, mask)
        torch.testing.assert_close(attention(hidden, projected), attention(hidden, context, mask), atol=0, rtol=0)
    assert projected.key.shape == projected.value.shape == (2, 4, 7, 8)
    with pytest.raises(ValueError, match="carries its mask"):
        attention(hidden, projected, mask)
    with pytest.raises(ValueError, match="batch"):
        attention(hidden[:1], projected)
