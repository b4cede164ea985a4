"""HiFi-GAN losses on hand-computed values, weight validation, and one generator/discriminator step end to end."""

import math

import pytest
import torch

from models.tta.hifigan.loss import (
    LOSS_NAMES,
    HifiGanLoss,
    discriminator_adversarial_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    mel_l1_loss,
    multi_resolution_stft_loss,
)
from models.tta.hifigan.model import HifiGanGenerator
from modules.discriminators.hifigan import MultiPeriodDiscriminator, MultiScaleDiscriminator
from utils.audio import LogMelSpectrogram

PAPER_WEIGHTS = {"mel": 45.0, "stft": 0.0, "adv_g": 1.0, "fm": 2.0, "disc": 1.0}


def test_least_squares_losses_on_hand_computed_values():
    fake = [torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 1.0, -1.0, 1.0]])]
    real = [torch.tensor([[1.0, 3.0]]), torch.tensor([[0.5, 0.5, 0.5, 0.5]])]
    # Generator: mean((1 - f)²) = (1 + 1) / 2 = 1 and (0 + 0 + 4 + 0) / 4 = 1.
    assert generator_adversarial_loss(fake).item() == pytest.approx(2.0)
    # Discriminator: real (0 + 4) / 2 + fake (0 + 4) / 2 = 4; real 0.25 + fake (1 + 1 + 1 + 1) / 4 = 1.25.
    assert discriminator_adversarial_loss(real, fake).item() == pytest.approx(5.25)
    with pytest.raises(ValueError, match="2 real vs 1 fake"):
        discriminator_adversarial_loss(real, fake[:1])


def test_feature_matching():
    torch.manual_seed(0)
    features = [[torch.randn(2, 3, 5), torch.randn(2, 1, 4)], [torch.randn(2, 6)]]
    assert feature_matching_loss(features, [[f.clone() for f in maps] for maps in features]).item() == 0.0
    shifted = [[f + 0.5 for f in maps] for maps in features]
    # Three feature maps, each off by 0.5 everywhere.
    assert feature_matching_loss(features, shifted).item() == pytest.approx(1.5)
    with pytest.raises(ValueError, match="layouts"):
        feature_matching_loss(features, [shifted[0]])


def test_feature_matching_treats_real_features_as_targets():
    real = torch.zeros(3, requires_grad=True)
    fake = torch.ones(3, requires_grad=True)
    feature_matching_loss([[real]], [[fake]]).backward()
    assert real.grad is None
    torch.testing.assert_close(fake.grad, torch.full((3,), 1 / 3))


def test_mel_l1():
    assert mel_l1_loss(torch.zeros(2, 4, 3), torch.full((2, 4, 3), -2.0)).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="mel shapes differ"):
        mel_l1_loss(torch.zeros(2, 4, 3), torch.zeros(2, 4, 4))


@pytest.mark.parametrize(
    "weights, message",
    [
        ({**PAPER_WEIGHTS, "adv": 1.0}, r"unknown \['adv'\]"),
        ({name: 1.0 for name in ("mel", "stft", "adv_g", "disc")}, r"missing \['fm'\]"),
        ({name: 1.0 for name in ("mel", "adv_g", "fm", "disc")}, r"missing \['stft'\]"),
    ],
)
def test_weights_must_name_every_loss(weights, message):
    with pytest.raises(ValueError, match=message):
        HifiGanLoss(weights=weights)


def test_multi_resolution_stft_loss_on_a_scaled_copy():
    torch.manual_seed(0)
    real = torch.randn(2, 4096)
    assert multi_resolution_stft_loss(real, real).item() == pytest.approx(0.0, abs=1e-6)
    # Half the amplitude: spectral convergence 0.5 and |log 0.5| at every bin well above the power floor.
    resolutions = ((256, 64, 256), (512, 128, 256))
    loss = multi_resolution_stft_loss(0.5 * real, real, resolutions=resolutions)
    assert loss.item() == pytest.approx(0.5 + math.log(2.0), rel=1e-3)
    with pytest.raises(ValueError, match="waveform shapes differ"):
        multi_resolution_stft_loss(real[:, :-1], real)


def test_multi_resolution_stft_loss_has_finite_gradients_in_silence():
    fake = torch.zeros(1, 4096, requires_grad=True)
    multi_resolution_stft_loss(fake, torch.zeros(1, 4096)).backward()
    assert torch.isfinite(fake.grad).all()


def test_spectral_step_adds_the_stft_loss_only_when_weighted():
    torch.manual_seed(0)
    real = torch.randn(1, 4096)
    mels = {"fake_mel": torch.ones(1, 2, 2), "real_mel": torch.zeros(1, 2, 2)}
    total, parts = HifiGanLoss(weights=PAPER_WEIGHTS).spectral_step(**mels, fake_wave=0.5 * real, real_wave=real)
    assert set(parts) == {"mel"} and total.item() == pytest.approx(45.0)
    weights = {**PAPER_WEIGHTS, "stft": 10.0}
    total, parts = HifiGanLoss(weights=weights).spectral_step(**mels, fake_wave=0.5 * real, real_wave=real)
    assert set(parts) == {"mel", "stft"}
    assert total.item() == pytest.approx(45.0 + 10.0 * parts["stft"].item())


def test_weighted_totals_and_names():
    loss = HifiGanLoss(weights={**PAPER_WEIGHTS, "stft": 3.0})
    fake_logits = [torch.tensor([[0.0]])]
    wave = torch.randn(1, 4096)
    total, parts = loss.generator_step(
        fake_mel=torch.ones(1, 2, 2),
        real_mel=torch.zeros(1, 2, 2),
        fake_wave=wave,
        real_wave=wave,
        fake_logits=fake_logits,
        real_features=[[torch.zeros(3)]],
        fake_features=[[torch.full((3,), 2.0)]],
    )
    assert set(parts) == {"mel", "stft", "adv_g", "fm"}
    assert total.item() == pytest.approx(45.0 * 1.0 + 3.0 * 0.0 + 1.0 * 1.0 + 2.0 * 2.0, abs=1e-4)
    total, parts = loss.discriminator_step(real_logits=[torch.tensor([[1.0]])], fake_logits=fake_logits)
    assert set(parts) | {"mel", "stft", "adv_g", "fm"} == set(LOSS_NAMES)
    assert total.item() == 0.0


def test_one_adversarial_step_end_to_end():
    torch.manual_seed(0)
    front_end = LogMelSpectrogram(
        sample_rate=16000, n_fft=64, win_length=64, hop_length=16, n_mels=8, fmin=0.0, fmax=8000.0
    )
    generator = HifiGanGenerator(
        model_in_dim=8, upsample_initial_channel=16, upsample_rates=(4, 4), upsample_kernel_sizes=(8, 8),
        resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),), use_weight_norm=True,
    )
    mpd = MultiPeriodDiscriminator(channels=(4, 4, 8, 8, 8))
    msd = MultiScaleDiscriminator(channels=(4, 4, 8, 8, 8, 8, 8), groups=(1, 2, 4, 4, 4, 4, 1))
    loss = HifiGanLoss(weights={**PAPER_WEIGHTS, "stft": 1.0}, stft_resolutions=((128, 32, 128), (256, 64, 256)))

    real_audio = 0.5 * torch.sin(torch.linspace(0, 200, 1024)).repeat(2, 1)
    real_mel = front_end(real_audio)
    fake_audio = generator(real_mel.transpose(1, 2))
    assert fake_audio.shape == real_audio.shape

    def discriminate(audio):
        (mpd_logits, mpd_features), (msd_logits, msd_features) = mpd(audio), msd(audio)
        return mpd_logits + msd_logits, mpd_features + msd_features

    real_logits, _ = discriminate(real_audio)
    fake_logits, _ = discriminate(fake_audio.detach())
    disc_total, _ = loss.discriminator_step(real_logits=real_logits, fake_logits=fake_logits)
    disc_total.backward()
    assert all(p.grad is not None for p in mpd.parameters())
    assert not any(p.grad is not None for p in generator.parameters())

    _, real_features = discriminate(real_audio)
    fake_logits, fake_features = discriminate(fake_audio)
    gen_total, parts = loss.generator_step(
        fake_mel=front_end(fake_audio), real_mel=real_mel, fake_wave=fake_audio, real_wave=real_audio,
        fake_logits=fake_logits,
        real_features=real_features, fake_features=fake_features,
    )
    assert all(torch.isfinite(value) and value > 0 for value in parts.values())
    gen_total.backward()
    assert all(p.grad is not None for p in generator.parameters())
