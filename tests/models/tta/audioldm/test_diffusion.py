"""models.tta.audioldm.diffusion / sampling: targets, loss masking, min-SNR, guidance and seeded sampling."""

import pytest
import torch

from models.tta.audioldm.diffusion import SCHEDULERS, Denoiser, NoiseScheduleConfig, build_scheduler
from models.tta.audioldm.sampling import sample_latents
from models.tta.audioldm.unet import AudioLDMUNet


def tiny_unet():
    torch.manual_seed(0)
    return AudioLDMUNet(
        in_channels=4, out_channels=4, block_out_channels=(16, 32), attention_blocks=(False, True),
        cross_attention_dims=(12,), layers_per_block=1, num_attention_heads=2, norm_groups=8,
    )


def test_v_target_recovers_clean_latents():
    denoiser = Denoiser(unet=tiny_unet(), schedule=NoiseScheduleConfig(prediction_type="v_prediction"))
    latents, noise = torch.randn(3, 4, 8, 4), torch.randn(3, 4, 8, 4)
    timesteps = torch.tensor([0, 500, 999])
    noisy = denoiser.train_scheduler.add_noise(latents, noise, timesteps)
    v = denoiser.target(latents, noise, timesteps)
    alpha_bar = denoiser.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    assert torch.allclose(alpha_bar.sqrt() * noisy - (1 - alpha_bar).sqrt() * v, latents, atol=1e-5)
    assert torch.allclose(v, denoiser.train_scheduler.get_velocity(latents, noise, timesteps), atol=1e-6)


def test_min_snr_weights():
    schedule = NoiseScheduleConfig()
    plain = Denoiser(unet=tiny_unet(), schedule=schedule)
    weighted = Denoiser(unet=tiny_unet(), schedule=schedule, min_snr_gamma=5.0)
    timesteps = torch.tensor([1, 999])
    assert torch.equal(plain.loss_weights(timesteps), torch.ones(2))
    weights = weighted.loss_weights(timesteps)
    assert weights[0] < 0.1 and weights[1] == pytest.approx(1.0)


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
