"""models.tta.audioldm.diffusion / sampling: targets, loss masking, min-SNR, guidance and seeded sampling."""

import pytest
import torch

from models.tta.audioldm.diffusion import SCHEDULERS, Denoiser, NoiseScheduleConfig, build_scheduler, draw_timesteps
from models.tta.audioldm.sampling import sample_latents
from models.tta.audioldm.unet import AudioLDMUNet
from modules.packed_layers import PackedConv2d, PackedLinear, packing_supported


def tiny_unet():
    torch.manual_seed(0)
    return AudioLDMUNet(
        in_channels=4, out_channels=4, block_out_channels=(16, 32), attention_blocks=(False, True),
        cross_attention_dims=(12,), layers_per_block=1, num_attention_heads=2, norm_groups=8,
    )


def test_v_target_is_diffusers_velocity():
    # that the target inverts back to the clean latents: test_clean_estimate_inverts_the_target
    denoiser = Denoiser(unet=tiny_unet(), schedule=NoiseScheduleConfig(prediction_type="v_prediction"))
    latents, noise = torch.randn(3, 4, 8, 4), torch.randn(3, 4, 8, 4)
    timesteps = torch.tensor([0, 500, 999])
    v = denoiser.target(latents, noise, timesteps)
    assert torch.allclose(v, denoiser.train_scheduler.get_velocity(latents, noise, timesteps), atol=1e-6)


def test_min_snr_weights():
    schedule = NoiseScheduleConfig()
    plain = Denoiser(unet=tiny_unet(), schedule=schedule)
    weighted = Denoiser(unet=tiny_unet(), schedule=schedule, min_snr_gamma=5.0)
    timesteps = torch.tensor([1, 999])
    assert torch.equal(plain.loss_weights(timesteps), torch.ones(2))
    weights = weighted.loss_weights(timesteps)
    assert weights[0] < 0.1 and weights[1] == pytest.approx(1.0)
    # Validation compares runs by the plain MSE, whatever weighting they trained with.
    contexts, masks = [torch.randn(2, 5, 12)], [torch.ones(2, 5, dtype=torch.bool)]
    latents, noise = torch.randn(2, 4, 8, 4), torch.randn(2, 4, 8, 4)
    weighted.unet.load_state_dict(plain.unet.state_dict())
    arguments = dict(timesteps=timesteps, noise=noise)
    unweighted = weighted.loss(latents, contexts, masks, weighted=False, **arguments)
    assert unweighted.item() == pytest.approx(plain.loss(latents, contexts, masks, **arguments).item(), rel=1e-6)
    assert weighted.loss(latents, contexts, masks, **arguments).item() != pytest.approx(unweighted.item(), rel=1e-3)


def test_logit_normal_timesteps_concentrate_in_the_middle():
    torch.manual_seed(0)
    uniform = draw_timesteps(20000, 1000)
    logit_normal = draw_timesteps(20000, 1000, sampling="logit_normal")
    shifted = draw_timesteps(20000, 1000, sampling="logit_normal", mean=-1.0)
    for timesteps in (uniform, logit_normal, shifted):
        assert timesteps.dtype == torch.long and 0 <= int(timesteps.min()) and int(timesteps.max()) <= 999
    middle = lambda t: ((t >= 250) & (t < 750)).float().mean().item()  # noqa: E731
    assert abs(middle(uniform) - 0.5) < 0.02
    # P(|n| < logit(0.75)) for n ~ N(0, 1): 0.729
    assert abs(middle(logit_normal) - 0.729) < 0.02
    assert abs(logit_normal.float().median().item() - 500) < 15
    # a negative mean moves the mass towards the clean end: median 1000 * sigmoid(-1) = 269
    assert abs(shifted.float().median().item() - 269) < 15
    with pytest.raises(ValueError, match="logit_normal"):
        draw_timesteps(4, 1000, sampling="beta")


def test_masked_time_steps_do_not_count():
    denoiser = Denoiser(unet=tiny_unet(), schedule=NoiseScheduleConfig())
    contexts, masks = [torch.randn(1, 5, 12)], [torch.ones(1, 5, dtype=torch.bool)]
    latents, noise = torch.randn(1, 4, 8, 4), torch.randn(1, 4, 8, 4)
    mask = torch.zeros(1, 1, 8, 1)
    mask[:, :, :6] = 1
    timesteps = torch.tensor([300])
    masked = denoiser.loss(latents, contexts, masks, timesteps=timesteps, noise=noise, latent_mask=mask)
    prediction = denoiser.unet(denoiser.train_scheduler.add_noise(latents, noise, timesteps), timesteps, contexts, masks)
    expected = ((prediction - noise)[:, :, :6] ** 2).mean()
    assert masked.item() == pytest.approx(expected.item(), rel=1e-5)
    full = ((prediction - noise) ** 2).mean()
    assert denoiser.loss(latents, contexts, masks, timesteps=timesteps, noise=noise).item() == pytest.approx(full.item(), rel=1e-5)


def test_guidance_is_one_batched_call_with_the_cfg_formula():
    denoiser = Denoiser(unet=tiny_unet(), schedule=NoiseScheduleConfig())
    latents = torch.randn(2, 4, 8, 4)
    negative, positive = torch.randn(2, 5, 12), torch.randn(2, 5, 12)
    timestep = torch.tensor(10)
    guided = denoiser.guided_prediction(latents, timestep, [torch.cat([negative, positive])], None, 3.0)
    uncond = denoiser.unet(latents, timestep, [negative])
    cond = denoiser.unet(latents, timestep, [positive])
    assert torch.allclose(guided, uncond + 3.0 * (cond - uncond), atol=1e-5)


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_scheduler_samples_reproducibly(name):
    denoiser = Denoiser(unet=tiny_unet(), schedule=NoiseScheduleConfig())
    contexts = [torch.randn(2, 5, 12)]

    def run(seed):
        return sample_latents(
            denoiser, build_scheduler(name, NoiseScheduleConfig()), shape=(1, 4, 8, 4), contexts=contexts,
            context_masks=None, guidance_scale=2.0, num_inference_steps=4,
            generator=torch.Generator().manual_seed(seed), show_progress=False,
        )

    first, again, other = run(0), run(0), run(1)
    assert first.isfinite().all()
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_unknown_scheduler_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown scheduler 'dpm'; choose one of"):
        build_scheduler("dpm", NoiseScheduleConfig())


def two_stream_denoiser():
    torch.manual_seed(0)
    unet = AudioLDMUNet(
        in_channels=4, out_channels=4, block_out_channels=(16, 32), attention_blocks=(False, True),
        cross_attention_dims=(None, 6, 12), layers_per_block=1, num_attention_heads=2, norm_groups=8,
    )
    return Denoiser(unet=unet.eval(), schedule=NoiseScheduleConfig()).requires_grad_(False)


def plain_sampling(denoiser, scheduler, latents, contexts, masks, guidance_scale, steps, autocast_dtype=None):
    """The loop without fast paths: raw contexts and masks at every step, the latent doubled for guidance."""
    scheduler.set_timesteps(steps)
    latents = latents * scheduler.init_noise_sigma
    for timestep in scheduler.timesteps:
        model_input = scheduler.scale_model_input(latents, timestep)
        with torch.no_grad(), torch.autocast("cpu", dtype=autocast_dtype, enabled=autocast_dtype is not None):
            output = denoiser.unet(torch.cat([model_input, model_input]), timestep, contexts, masks)
        negative, positive = output.float().chunk(2)
        prediction = negative + guidance_scale * (positive - negative)
        latents = scheduler.step(prediction, timestep, latents).prev_sample
    return latents


def guided_inputs():
    torch.manual_seed(1)
    latents = torch.randn(2, 4, 8, 4)
    contexts = [torch.randn(4, 3, 6), torch.randn(4, 5, 12)]
    t5_mask = torch.ones(4, 5, dtype=torch.bool)
    t5_mask[:2, 2:] = False
    return latents, contexts, [None, t5_mask]


def test_fast_sampling_equals_the_plain_loop_in_fp32():
    denoiser = two_stream_denoiser()
    latents, contexts, masks = guided_inputs()
    fast = sample_latents(
        denoiser, build_scheduler("ddim", NoiseScheduleConfig()), shape=tuple(latents.shape), contexts=contexts,
        context_masks=masks, guidance_scale=3.5, num_inference_steps=5, latents=latents, show_progress=False,
    )
    plain = plain_sampling(denoiser, build_scheduler("ddim", NoiseScheduleConfig()), latents, contexts, masks, 3.5, 5)
    # The random UNet's latents grow to ~30: compare relative to their size (fp32 rounding is ~4e-6 there).
    assert (fast - plain).abs().max() < 1e-5 * plain.abs().max()
    assert (fast - latents).abs().max() > 0.1


def test_guided_prediction_with_shared_latent_and_precomputed_contexts_equals_doubled_call():
    denoiser = two_stream_denoiser()
    latents, contexts, masks = guided_inputs()
    timestep = torch.tensor(500)
    with torch.no_grad():
        negative, positive = denoiser.unet(torch.cat([latents, latents]), timestep, contexts, masks).chunk(2)
        fast = denoiser.guided_prediction(
            latents, timestep, denoiser.unet.precompute_context(contexts, masks), None, 3.5
        )
    expected = negative + 3.5 * (positive - negative)
    assert (fast - expected).abs().max() < 1e-5
    assert expected.abs().max() > 0.1


def test_weights_cast_once_give_the_autocast_outputs_and_are_restored():
    denoiser = two_stream_denoiser()
    latents, contexts, masks = guided_inputs()
    parameters = list(denoiser.parameters())

    def run(cast_weights_once):
        return sample_latents(
            denoiser, build_scheduler("dpmsolver++", NoiseScheduleConfig()), shape=tuple(latents.shape),
            contexts=contexts, context_masks=masks, guidance_scale=3.5, num_inference_steps=4, latents=latents,
            autocast_dtype=torch.bfloat16, cast_weights_once=cast_weights_once, pack_weights=False,
            show_progress=False,
        )

    cast_once, cast_per_step = run(True), run(False)
    assert torch.equal(cast_once, cast_per_step)
    plain = plain_sampling(
        denoiser, build_scheduler("dpmsolver++", NoiseScheduleConfig()), latents, contexts, masks, 3.5, 4,
        autocast_dtype=torch.bfloat16,
    )
    assert (cast_once - plain).abs().max() < 0.02 * plain.abs().max()
    assert all(a is b for a, b in zip(parameters, denoiser.parameters(), strict=True))
    assert all(parameter.dtype == torch.float32 for parameter in denoiser.parameters())


@pytest.mark.skipif(not packing_supported(torch.float32), reason="this PyTorch build has no oneDNN")
@pytest.mark.parametrize("autocast_dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_packed_weights_give_the_unpacked_run_and_are_put_back(autocast_dtype):
    if autocast_dtype is not None and not packing_supported(autocast_dtype):
        pytest.skip("no oneDNN bfloat16 on this CPU")
    denoiser = two_stream_denoiser()
    latents, contexts, masks = guided_inputs()
    modules = dict(denoiser.named_modules())

    packed_layers_seen = []

    def run(pack_weights):
        return sample_latents(
            denoiser, build_scheduler("ddim", NoiseScheduleConfig()), shape=tuple(latents.shape), contexts=contexts,
            context_masks=masks, guidance_scale=3.5, num_inference_steps=5, latents=latents,
            autocast_dtype=autocast_dtype, pack_weights=pack_weights, show_progress=False,
            on_step=lambda *_: packed_layers_seen.append(
                sum(isinstance(module, (PackedLinear, PackedConv2d)) for module in denoiser.unet.modules())
            ),
        )

    packed, unpacked = run(True), run(False)
    layers = sum(isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) for module in denoiser.unet.modules())
    assert packed_layers_seen == [layers] * 5 + [0] * 5
    # fp32: summation order only (as test_fast_sampling_equals_the_plain_loop_in_fp32); bf16: the same bf16
    # products, summed in another order (a run in fp32 instead would differ by about 8e-3 here).
    tolerance = 1e-5 if autocast_dtype is None else 2e-3
    assert (packed - unpacked).abs().max() < tolerance * unpacked.abs().max()
    assert all(module is modules[name] for name, module in denoiser.named_modules())


def test_weights_are_restored_when_sampling_fails():
    denoiser = two_stream_denoiser()
    latents, contexts, masks = guided_inputs()
    parameters = list(denoiser.parameters())
    with pytest.raises(ValueError, match="context"):
        sample_latents(
            denoiser, build_scheduler("ddim", NoiseScheduleConfig()), shape=tuple(latents.shape),
            contexts=contexts[:1], context_masks=None, guidance_scale=3.5, num_inference_steps=2, latents=latents,
            autocast_dtype=torch.bfloat16, show_progress=False,
        )
    assert all(a is b for a, b in zip(parameters, denoiser.parameters(), strict=True))
    assert all(parameter.dtype == torch.float32 for parameter in denoiser.parameters())


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_clean_estimate_inverts_the_target(prediction_type):
    denoiser = Denoiser(unet=tiny_unet(), schedule=NoiseScheduleConfig(prediction_type=prediction_type))
    latents, noise = torch.randn(3, 4, 8, 4), torch.randn(3, 4, 8, 4)
    timesteps = torch.tensor([0, 500, 999])
    noisy = denoiser.train_scheduler.add_noise(latents, noise, timesteps)
    estimate = denoiser.clean_estimate(noisy, timesteps, denoiser.target(latents, noise, timesteps))
    torch.testing.assert_close(estimate, latents, atol=1e-4, rtol=1e-4)


# Euler's timesteps are fractional (interpolated sigmas): ᾱ at the floored step is close, not exact.
@pytest.mark.parametrize(("name", "tolerance"), [("ddim", 1e-4), ("euler", 5e-3)])
def test_on_step_sees_each_step_and_its_clean_estimate_matches_the_scheduler(name, tolerance):
    # The scheduler's own x0 (pred_original_sample) from its sample and the same prediction must equal
    # Denoiser.clean_estimate of what on_step sees: the UNet input is the variance-preserving x_t.
    schedule = NoiseScheduleConfig(prediction_type="v_prediction")
    denoiser = Denoiser(unet=tiny_unet(), schedule=schedule)
    scheduler = build_scheduler(name, schedule)
    scheduler_x0, seen = [], []
    original_step = scheduler.step

    def recording_step(*args, **kwargs):
        output = original_step(*args, **kwargs)
        scheduler_x0.append(output.pred_original_sample)
        return output

    scheduler.step = recording_step
    sample_latents(
        denoiser, scheduler, shape=(1, 4, 8, 4), contexts=[torch.randn(2, 5, 12)], context_masks=None,
        guidance_scale=2.0, num_inference_steps=5, generator=torch.Generator().manual_seed(0), show_progress=False,
        on_step=lambda index, t, x, prediction: seen.append((index, t, denoiser.clean_estimate(x, t, prediction))),
    )
    assert [index for index, _, _ in seen] == list(range(5))
    assert torch.equal(torch.stack([t for _, t, _ in seen]), scheduler.timesteps)
    for (_, _, estimate), expected in zip(seen, scheduler_x0):
        torch.testing.assert_close(estimate, expected, atol=tolerance, rtol=tolerance)
