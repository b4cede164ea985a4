"""scripts/denoise_probe.py with an oracle UNet that knows the clean latent: every clean-latent estimate must then
be that latent, for both prediction types, from one step at any t and at the end of a DDIM generation."""

import argparse
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from models.tta.audioldm.diffusion import Denoiser, NoiseScheduleConfig

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "denoise_probe.py"
spec = importlib.util.spec_from_file_location("denoise_probe", SCRIPT)
denoise_probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(denoise_probe)


class OracleUNet(nn.Module):
    """Predicts the ε or v that turns any noisy latent back into `clean`; one output row per context row."""

    def __init__(self, clean: torch.Tensor, prediction_type: str, alphas_cumprod: torch.Tensor):
        super().__init__()
        self.clean, self.prediction_type, self.alphas_cumprod = clean, prediction_type, alphas_cumprod

    def forward(self, noisy, timestep, contexts, masks):
        alpha_bar = self.alphas_cumprod[timestep.long()].view(-1, 1, 1, 1)
        noise = (noisy - alpha_bar.sqrt() * self.clean) / (1 - alpha_bar).sqrt()
        output = noise if self.prediction_type == "epsilon" else alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * self.clean
        return output.repeat(contexts[0].shape[0] // noisy.shape[0], 1, 1, 1)


def oracle_pipeline(clean: torch.Tensor, prediction_type: str) -> SimpleNamespace:
    schedule = NoiseScheduleConfig(prediction_type=prediction_type)
    denoiser = Denoiser(unet=nn.Identity(), schedule=schedule)
    denoiser.unet = OracleUNet(clean, prediction_type, denoiser.alphas_cumprod)
    return SimpleNamespace(denoiser=denoiser, schedule=schedule)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_one_step_estimates_recover_the_clean_latent_at_every_t(prediction_type):
    clean = torch.randn(1, 4, 8, 4, generator=torch.Generator().manual_seed(1))
    pipeline = oracle_pipeline(clean, prediction_type)
    contexts, masks = torch.zeros(2, 3, 5), torch.ones(2, 3, dtype=torch.bool)
    rows = denoise_probe.one_step_estimates(
        pipeline, clean, contexts, masks, [10, 300, 900], guidance_scale=3.0, generator=torch.Generator().manual_seed(0)
    )
    assert [label for label, _, _ in rows] == [
        "VAE reconstruction (no noise)", "one step from t = 10", "one step from t = 300", "one step from t = 900"
    ]
    for _, estimate, mse in rows:
        torch.testing.assert_close(estimate, clean, atol=1e-4, rtol=1e-4)
        assert mse < 1e-8


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_trajectory_keeps_six_steps_and_ends_at_the_predicted_latent(prediction_type):
    clean = torch.randn(1, 4, 8, 4, generator=torch.Generator().manual_seed(2))
    pipeline = oracle_pipeline(clean, prediction_type)
    contexts, masks = torch.zeros(2, 3, 5), torch.ones(2, 3, dtype=torch.bool)
    rows = denoise_probe.trajectory_estimates(
        pipeline, tuple(clean.shape), contexts, masks, 3.0, 25, torch.Generator().manual_seed(0)
    )
    assert len(rows) == denoise_probe.TRAJECTORY_ROWS
    assert rows[0][0].startswith("generation, step 1 of 25") and rows[-1][0].startswith("generation, step 25 of 25")
    torch.testing.assert_close(rows[-1][1], clean, atol=1e-4, rtol=1e-4)


def test_timesteps_argument_is_checked():
    assert denoise_probe.parse_timesteps("50, 300,700") == [50, 300, 700]
    for bad in ("", "0,100", "1000", "a,b"):
        with pytest.raises(argparse.ArgumentTypeError, match="--timesteps"):
            denoise_probe.parse_timesteps(bad)
