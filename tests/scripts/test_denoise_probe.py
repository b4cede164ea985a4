"""scripts/denoise_probe.py: its noising and clean-latent estimates against an oracle UNet that knows the noise
(every estimate must then be the clean latent, for both prediction types), the DDIM trajectory's rows, and its
refusal of bad arguments and bad mel files."""

import argparse
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from models.tta.audioldm.diffusion import Denoiser, NoiseScheduleConfig

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "denoise_probe.py"
spec = importlib.util.spec_from_file_location("denoise_probe", SCRIPT)
denoise_probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(denoise_probe)
SHAPE = (1, 4, 8, 4)


class NoiseOracle(nn.Module):
    """Predicts ε or v from the true clean latent and the true noise (not from its input): the estimate is the
    clean latent only if the caller noised it with that noise at the timestep's ᾱ. One output row per context."""

    context_dims = ()  # nothing for sample_latents to precompute

    def __init__(self, clean, noise, prediction_type, alphas_cumprod):
        super().__init__()
        self.clean, self.noise, self.prediction_type, self.alphas_cumprod = clean, noise, prediction_type, alphas_cumprod
        self.device_marker = nn.Parameter(torch.zeros(()))  # sample_latents reads the device off a parameter

    def forward(self, noisy, timestep, contexts, masks):
        alpha_bar = self.alphas_cumprod[timestep.long()].view(-1, 1, 1, 1)
        output = self.noise if self.prediction_type == "epsilon" else (
            alpha_bar.sqrt() * self.noise - (1 - alpha_bar).sqrt() * self.clean
        )
        return output.repeat(contexts[0].shape[0] // noisy.shape[0], 1, 1, 1)


class CleanOracle(NoiseOracle):
    """Predicts the ε or v that turns whatever noisy latent it gets into the clean latent (a perfect denoiser)."""

    def forward(self, noisy, timestep, contexts, masks):
        alpha_bar = self.alphas_cumprod[timestep.long()].view(-1, 1, 1, 1)
        self.noise = (noisy - alpha_bar.sqrt() * self.clean) / (1 - alpha_bar).sqrt()
        return super().forward(noisy, timestep, contexts, masks)


def oracle_pipeline(oracle_class, clean, noise, prediction_type):
    schedule = NoiseScheduleConfig(prediction_type=prediction_type)
    denoiser = Denoiser(unet=nn.Identity(), schedule=schedule)
    denoiser.unet = oracle_class(clean, noise, prediction_type, denoiser.alphas_cumprod)
    return SimpleNamespace(denoiser=denoiser, schedule=schedule)


def contexts_for(guidance_scale):
    rows = 2 if guidance_scale > 1 else 1
    return torch.zeros(rows, 3, 5), torch.ones(rows, 3, dtype=torch.bool)


@pytest.mark.parametrize("guidance_scale", [1.0, 3.0])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_one_step_estimates_recover_the_clean_latent_at_every_t(prediction_type, guidance_scale):
    clean = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))  # the script's first draw with seed 0
    pipeline = oracle_pipeline(NoiseOracle, clean, noise, prediction_type)
    contexts, masks = contexts_for(guidance_scale)
    rows = denoise_probe.one_step_estimates(
        pipeline, clean, contexts, masks, [10, 300, 900], guidance_scale, torch.Generator().manual_seed(0)
    )
    assert [label for label, _, _ in rows] == [
        "VAE reconstruction (no noise)", "one step from t = 10", "one step from t = 300", "one step from t = 900"
    ]
    for _, estimate, mse in rows[1:]:
        torch.testing.assert_close(estimate, clean, atol=1e-4, rtol=1e-4)
        assert mse < 1e-8


def test_the_oracle_only_recovers_the_latent_from_the_right_noise():
    # another noise than the script draws: the estimates miss the clean latent (the test above can fail)
    clean = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    pipeline = oracle_pipeline(NoiseOracle, clean, torch.zeros(SHAPE), "v_prediction")
    contexts, masks = contexts_for(3.0)
    rows = denoise_probe.one_step_estimates(pipeline, clean, contexts, masks, [100, 500], 3.0, torch.Generator())
    assert all(mse > 1e-3 for _, _, mse in rows[1:])


@pytest.mark.parametrize("scheduler", ["dpmsolver++", "ddim"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_trajectory_keeps_six_steps_of_a_perfect_denoiser(prediction_type, scheduler):
    clean = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2))
    pipeline = oracle_pipeline(CleanOracle, clean, None, prediction_type)
    contexts, masks = contexts_for(3.0)
    rows = denoise_probe.trajectory_estimates(
        pipeline, SHAPE, contexts, masks, 3.0, 25, torch.Generator().manual_seed(0), scheduler
    )
    assert [label.split(" (")[0] for label, _ in rows] == [
        f"generation, step {step} of 25" for step in (1, 6, 11, 15, 20, 25)
    ]
    for _, estimate in rows:
        torch.testing.assert_close(estimate, clean, atol=1e-3, rtol=1e-3)


def test_timesteps_argument_is_checked():
    assert denoise_probe.parse_timesteps("50, 300,700") == [50, 300, 700]
    for bad in ("", "0,100", "-5", "a,b"):
        with pytest.raises(argparse.ArgumentTypeError, match="--timesteps"):
            denoise_probe.parse_timesteps(bad)


@pytest.mark.parametrize(
    ("array", "name"), [(np.zeros((32, 10)), "wrong.npy"), ({"a": np.zeros((64, 10))}, "archive.npz")]
)
def test_a_bad_mel_file_is_a_named_error_with_exit_1(tmp_path, monkeypatch, capsys, array, name):
    path = tmp_path / name
    if isinstance(array, dict):
        np.savez(path, **array)
    else:
        np.save(path, array)
    fake = SimpleNamespace(mel=SimpleNamespace(n_mels=64))
    monkeypatch.setattr(denoise_probe.AudioLDMPipeline, "from_checkpoint", lambda *args, **kwargs: fake)
    status = denoise_probe.main(["--checkpoint", "x", "--caption", "a cat", "--mel", str(path), "--output", "o.png"])
    assert status == 1
    assert f"--mel {path}" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()
