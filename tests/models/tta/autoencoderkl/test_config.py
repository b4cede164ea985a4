"""The stage-1 schema and recipe configs: they load, keep AudioLDM 2's sizes, and reject bad loss maps and crops."""

import pytest

from models.tta.autoencoderkl.config import AutoencoderKLExperiment
from tests.models.tta.autoencoderkl.tiny_recipe import DEBUG_CONFIG, REPO_ROOT
from utils.config import ConfigError, load_config

RECIPE_CONFIGS = ["config/autoencoderkl.json", "egs/tta/autoencoderkl/exp_config.json", str(DEBUG_CONFIG)]


@pytest.mark.parametrize("path", RECIPE_CONFIGS)
def test_recipe_configs_load(path):
    config = load_config(REPO_ROOT / path, AutoencoderKLExperiment)
    assert config.model_type == "AutoencoderKL"
    assert config.datasets == [config.preprocess.dataset]
    assert set(config.trainer.optimizers) == {"vae", "discriminator"}
    assert set(config.loss.weights) == {"rec", "kl", "gan_g"}


def test_base_config_has_the_audioldm2_vae_sizes():
    config = load_config(REPO_ROOT / "config/autoencoderkl.json", AutoencoderKLExperiment)
    assert config.model.block_out_channels == (128, 256, 512)
    assert (config.model.latent_channels, config.model.layers_per_block, config.model.norm_groups) == (8, 2, 32)
    assert config.data.segment_frames == 1024 and config.preprocess.mel.n_mels == 64
    assert (config.discriminator.num_layers, config.discriminator.base_channels) == (3, 64)
    assert config.loss.disc_start_step == 50001


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loss.weights.perceptual=1.0", r"loss: loss weights must name exactly .*unknown \['perceptual'\]"),
        ('loss.weights={"rec": 1.0, "kl": 0.001}', r"missing \['gan_g'\]"),
        ("loss.weights.kl=-1", "loss.weights must be >= 0"),
        ("data.segment_frames=16", r"data.segment_frames \(16\) is smaller than the discriminator's smallest input"),
        ("model.norm_groups=24", "must all be divisible by model.norm_groups"),
        ("model_type=HiFiGAN", "model_type: expected one of 'AutoencoderKL'"),
    ],
)
def test_bad_values_are_config_errors_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(DEBUG_CONFIG, AutoencoderKLExperiment, [override])
