"""Parity with transformers `SpeechT5HifiGan` on identical tiny random weights, and checkpoint loading."""

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

from models.tta.hifigan.key_map import (
    VocoderKeyError,
    convert_speecht5_state_dict,
    generator_kwargs_from_speecht5_config,
    load_diffusers_vocoder,
    load_speecht5_state_dict,
    speecht5_key_map,
)
from models.tta.hifigan.model import HifiGanGenerator
from tests.fixtures.tiny_audioldm2 import tiny_audioldm2_folder  # noqa: F401  (pytest fixture)

MEL_BINS = 64
PARITY_TOLERANCE = 1e-5


def _reference(*, normalize_before: bool = False, **overrides) -> SpeechT5HifiGan:
    """A tiny SpeechT5HifiGan with the AudioLDM 2 upsampling, weights large enough for a non-trivial waveform."""
    torch.manual_seed(0)
    layout = dict(
        model_in_dim=MEL_BINS,
        upsample_initial_channel=32,
        upsample_rates=[5, 4, 2, 2, 2],
        upsample_kernel_sizes=[16, 16, 8, 4, 4],
        resblock_kernel_sizes=[3, 7, 11],
        resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    )
    config = SpeechT5HifiGanConfig(**{**layout, **overrides}, normalize_before=normalize_before)
    model = SpeechT5HifiGan(config).eval()
    with torch.no_grad():
        # transformers' initialisation gives outputs near 1e-10; fan-in scaling keeps tanh in its linear range.
        for name, parameter in model.named_parameters():
            fan_in = parameter[0].numel() if name.endswith("weight") else 1
            parameter.normal_(0.0, fan_in**-0.5)
        model.mean.normal_()
        model.scale.uniform_(0.5, 2.0)
    return model


def _ours_for(reference: SpeechT5HifiGan, *, use_weight_norm: bool = False) -> HifiGanGenerator:
    kwargs = generator_kwargs_from_speecht5_config(reference.config.to_dict())
    return HifiGanGenerator(**kwargs, use_weight_norm=use_weight_norm).eval()


def _max_abs_diff(reference: SpeechT5HifiGan, ours: HifiGanGenerator, frames: int = 13) -> float:
    mel = torch.randn(2, frames, reference.config.model_in_dim)
    with torch.no_grad():
        expected, actual = reference(mel), ours(mel)
    assert expected.shape == actual.shape
    assert expected.std() > 0.05, "reference waveform too small for a meaningful comparison"
    return (expected - actual).abs().max().item()


@pytest.mark.parametrize("normalize_before", [False, True])
def test_parity_with_speecht5_hifigan(normalize_before):
    reference = _reference(normalize_before=normalize_before)
    ours = _ours_for(reference)
    load_speecht5_state_dict(ours, reference.state_dict())
    assert ours.normalize_before is normalize_before
    assert _max_abs_diff(reference, ours) <= PARITY_TOLERANCE


def test_parity_with_other_layout():
    reference = _reference(
        upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8], resblock_kernel_sizes=[3, 5],
        resblock_dilation_sizes=[[1, 2], [1, 3, 9]], leaky_relu_slope=0.2,
    )
    ours = _ours_for(reference)
    load_speecht5_state_dict(ours, reference.state_dict())
    assert _max_abs_diff(reference, ours) <= PARITY_TOLERANCE


def test_plain_checkpoint_into_weight_normed_generator():
    reference = _reference()
    ours = _ours_for(reference, use_weight_norm=True)
    load_speecht5_state_dict(ours, reference.state_dict())
    assert ours.has_weight_norm
    assert _max_abs_diff(reference, ours) <= PARITY_TOLERANCE


@pytest.mark.parametrize("use_weight_norm", [False, True])
def test_weight_normed_checkpoint(use_weight_norm):
    reference = _reference()
    reference.apply_weight_norm()
    assert "conv_pre.parametrizations.weight.original0" in reference.state_dict()
    ours = _ours_for(reference, use_weight_norm=use_weight_norm)
    load_speecht5_state_dict(ours, reference.state_dict())
    assert _max_abs_diff(reference, ours) <= PARITY_TOLERANCE


def test_legacy_weight_g_v_checkpoint():
    reference = _reference()
    legacy = {}
    for key, tensor in reference.state_dict().items():
        if key.endswith(".weight"):
            norm = torch.norm_except_dim(tensor, 2, 0)
            legacy[key.removesuffix(".weight") + ".weight_g"] = norm
            legacy[key.removesuffix(".weight") + ".weight_v"] = tensor * 3.0
        else:
            legacy[key] = tensor
    ours = _ours_for(reference)
    load_speecht5_state_dict(ours, legacy)
    assert _max_abs_diff(reference, ours) <= PARITY_TOLERANCE


def test_key_map_covers_every_reference_tensor():
    reference = _reference()
    key_map = speecht5_key_map(num_upsamples=5, resblock_dilation_sizes=[[1, 3, 5]] * 3)
    assert sorted(key_map) == sorted(reference.state_dict())
    assert sorted(key_map.values()) == sorted(_ours_for(reference).state_dict())
    assert key_map["resblocks.7.convs2.2.bias"] == "stages.2.resblocks.1.convs.2.bias"


def test_bad_keys_are_all_named():
    reference = _reference()
    state_dict = reference.state_dict()
    state_dict["upsampler.9.weight"] = torch.zeros(1)
    state_dict["extra"] = torch.zeros(1)
    del state_dict["resblocks.4.convs1.0.bias"]
    del state_dict["mean"]
    with pytest.raises(VocoderKeyError) as error:
        convert_speecht5_state_dict(state_dict, _ours_for(reference))
    message = str(error.value)
    for key in ("upsampler.9.weight", "extra", "resblocks.4.convs1.0.bias", "mean"):
        assert key in message
    assert error.value.missing == ["mean", "resblocks.4.convs1.0.bias"]
    assert error.value.unexpected == ["extra", "upsampler.9.weight"]


def test_wrong_architecture_raises():
    reference = _reference()
    kwargs = generator_kwargs_from_speecht5_config(reference.config.to_dict())
    ours = HifiGanGenerator(**{**kwargs, "upsample_initial_channel": 64})
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_speecht5_state_dict(ours, reference.state_dict())


def test_config_defaults_follow_transformers():
    assert generator_kwargs_from_speecht5_config({"model_in_dim": 64}) == generator_kwargs_from_speecht5_config(
        {**SpeechT5HifiGanConfig(model_in_dim=64).to_dict()}
    )
    with pytest.raises(ValueError, match="model_type 'bert'"):
        generator_kwargs_from_speecht5_config({"model_type": "bert"})


@pytest.mark.parametrize("weights_file", ["model.safetensors", "pytorch_model.bin"])
def test_load_vocoder_folder(tmp_path, weights_file):
    reference = _reference(normalize_before=True)
    folder = tmp_path / "vocoder"
    reference.save_pretrained(folder)
    assert (folder / "model.safetensors").is_file()
    if weights_file == "pytorch_model.bin":
        (folder / "model.safetensors").unlink()
        torch.save(reference.state_dict(), folder / weights_file)
    ours = load_diffusers_vocoder(folder)
    assert not ours.training and not ours.has_weight_norm and ours.normalize_before
    assert _max_abs_diff(reference, ours) <= PARITY_TOLERANCE


def test_load_vocoder_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_diffusers_vocoder(tmp_path)
    reference = _reference()
    reference.config.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="model.safetensors or pytorch_model.bin"):
        load_diffusers_vocoder(tmp_path)
    state_dict = {key: tensor.contiguous() for key, tensor in reference.state_dict().items()}
    state_dict["conv_pre.weight_typo"] = state_dict.pop("conv_pre.weight")
    save_file(state_dict, tmp_path / "model.safetensors")
    with pytest.raises(VocoderKeyError, match=r"conv_pre\.weight_typo") as error:
        load_diffusers_vocoder(tmp_path)
    assert error.value.missing == ["conv_pre.weight"]
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "speecht5_hifigan"


def test_load_vocoder_of_pipeline_folder(tiny_audioldm2_folder):  # noqa: F811
    folder = tiny_audioldm2_folder / "vocoder"
    reference = SpeechT5HifiGan.from_pretrained(folder).eval()
    ours = load_diffusers_vocoder(folder)
    mel = torch.randn(1, 8, reference.config.model_in_dim)
    with torch.no_grad():
        expected, actual = reference(mel), ours(mel)
    # The pipeline's vocoder keeps transformers' tiny initialisation: compare relative to its scale.
    assert expected.abs().max() > 0
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
