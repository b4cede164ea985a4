"""The stage-2 posterior cache: the same posteriors as encoding every time, the encoder run only on crops not
seen before, the memory budget honoured; and a short training run with the cache gives the losses of one
without it."""

import pytest
import torch

from models.tta.audioldm.posterior_cache import PosteriorCache
from models.tta.autoencoderkl.config import AutoencoderKLModelConfig, build_autoencoder
from tests.models.tta.audioldm.test_trainer import build_trainer, fixtures  # noqa: F401  (pytest fixture)
from tests.models.tta.audioldm.tiny_stage2 import TINY_VAE


class CountingEncoder:
    """Wraps a VAE, counting the rows its encoder sees."""

    def __init__(self, vae):
        self.vae = vae
        self.rows = 0

    def encode(self, mel):
        self.rows += mel.shape[0]
        return self.vae.encode(mel)


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return build_autoencoder(AutoencoderKLModelConfig(**TINY_VAE)).eval()


def test_cached_posteriors_equal_fresh_ones_and_skip_the_encoder(vae):
    mel = torch.randn(3, 1, 32, 64)
    keys = [("a", 0), ("b", 0), ("b", 16)]
    counting = CountingEncoder(vae)
    cache = PosteriorCache(max_megabytes=16)
    first = cache.encode(counting, mel, keys)
    with torch.no_grad():
        fresh = vae.encode(mel)
    torch.testing.assert_close(first.mean, fresh.mean)
    torch.testing.assert_close(first.logvar, fresh.logvar)
    assert counting.rows == 3 and len(cache) == 3

    again = cache.encode(counting, mel[[2, 0]], [keys[2], keys[0]])
    assert counting.rows == 3
    torch.testing.assert_close(again.mean, fresh.mean[[2, 0]])

    new_mel = torch.randn(1, 1, 32, 64)
    mixed = cache.encode(counting, torch.cat([mel[1:2], new_mel]), [keys[1], ("c", 0)])
    assert counting.rows == 4
    with torch.no_grad():
        torch.testing.assert_close(mixed.mean[1], vae.encode(new_mel).mean[0])
    assert (cache.hits, cache.misses) == (3, 4)


def test_a_full_cache_stops_storing_but_still_encodes_correctly(vae):
    mel = torch.randn(3, 1, 32, 64)
    with torch.no_grad():
        one_posterior_bytes = 2 * vae.encode(mel[:1]).mean.numel() * 4
    cache = PosteriorCache(max_megabytes=1.5 * one_posterior_bytes / 2**20)
    counting = CountingEncoder(vae)
    posterior = cache.encode(counting, mel, [("a", 0), ("b", 0), ("c", 0)])
    assert len(cache) == 1 and cache.stored_bytes == one_posterior_bytes
    cache.encode(counting, mel, [("a", 0), ("b", 0), ("c", 0)])
    assert counting.rows == 3 + 2
    with torch.no_grad():
        torch.testing.assert_close(posterior.mean, vae.encode(mel).mean)


def test_bad_arguments_are_clear_errors(vae):
    with pytest.raises(ValueError, match="max_megabytes must be positive"):
        PosteriorCache(0)
    with pytest.raises(ValueError, match="2 crop keys for a batch of 3"):
        PosteriorCache(1).encode(vae, torch.randn(3, 1, 32, 64), [("a", 0), ("b", 0)])


def test_training_with_the_cache_gives_the_losses_of_training_without_it(fixtures, tmp_path, monkeypatch):  # noqa: F811
    def losses_of(exp_dir, cache_mb):
        # 256 frames hold a whole 2 s clip: every crop starts at frame 0, as in the built-in recipes.
        trainer = build_trainer(fixtures, exp_dir, f"data.latent_cache_mb={cache_mb}", "data.segment_frames=256",
                                "trainer.max_steps=12",
                                "trainer.valid_every=0", "trainer.sample_every=0", "trainer.save_every=12")
        recorded = []
        train_step = trainer.train_step

        def recording(batch, step):
            metrics = train_step(batch, step)
            recorded.append(metrics["loss"])
            return metrics

        monkeypatch.setattr(trainer, "train_step", recording)
        trainer.train()
        return recorded, trainer._posterior_cache

    plain, no_cache = losses_of(tmp_path / "plain", 0)
    cached, cache = losses_of(tmp_path / "cached", 64)
    assert no_cache is None
    # 12 steps of batch 2 cover the tiny training split more than once, so later epochs take cached posteriors.
    assert cache.hits > 0 and len(cache) == cache.misses
    assert cached == pytest.approx(plain, rel=1e-4, abs=1e-6)
