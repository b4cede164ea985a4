"""AudioLDMPipeline on tiny random weights with the real MiniLM: seeds, guidance, negative prompt, length, text
padding, batching, per-prompt ranking and encoding each prompt once."""

import pytest
import torch
from torch import nn

from models.text_encoder import BUILTIN_MINILM, load_text_encoder
from models.tta.audioldm.diffusion import Denoiser, NoiseScheduleConfig
from models.tta.audioldm.pipeline import AudioLDMPipeline
from models.tta.audioldm.unet import AudioLDMUNet
from models.tta.autoencoderkl.model import AutoencoderKL
from utils.audio import MelConfig

STEPS = 3


class RepeatVocoder(nn.Module):
    """A weightless stand-in vocoder: each frame's mean log-mel, held for `hop_length` samples."""

    def __init__(self, hop_length: int):
        super().__init__()
        self.hop_length = hop_length

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return mel.mean(dim=2).repeat_interleave(self.hop_length, dim=1)


@pytest.fixture(scope="module")
def text_encoder():
    return load_text_encoder(BUILTIN_MINILM, max_length=24)


@pytest.fixture(scope="module")
def pipeline(text_encoder):
    torch.manual_seed(0)
    unet = AudioLDMUNet(
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        attention_blocks=(False, True),
        cross_attention_dims=(384,),
        layers_per_block=1,
        num_attention_heads=2,
        norm_groups=8,
    )
    with torch.no_grad():
        for parameter in unet.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    autoencoder = AutoencoderKL(block_out_channels=(8, 8, 16), layers_per_block=1, latent_channels=4, norm_groups=4)
    mel = MelConfig()
    return AudioLDMPipeline(
        text_encoder=text_encoder,
        denoiser=Denoiser(unet=unet.eval(), schedule=NoiseScheduleConfig()),
        autoencoder=autoencoder.eval(),
        vocoder=RepeatVocoder(mel.hop_length),
        scale_factor=0.5,
        schedule=NoiseScheduleConfig(),
        mel=mel,
    )


def generate(pipeline, prompts, **overrides):
    settings = dict(
        guidance_scale=3.0,
        num_inference_steps=STEPS,
        audio_length_in_s=0.32,
        seed=7,
        scheduler="ddim",
        show_progress=False,
    )
    settings.update(overrides)
    return pipeline.generate(prompts, **settings)


def test_seed_makes_generation_reproducible(pipeline):
    first = generate(pipeline, ["a dog barks"])
    again = generate(pipeline, ["a dog barks"])
    other = generate(pipeline, ["a dog barks"], seed=8)
    assert first.seed == 7
    assert torch.equal(first.waveforms, again.waveforms) and torch.equal(first.mels, again.mels)
    assert not torch.allclose(first.mels, other.mels, atol=1e-3)
    drawn = generate(pipeline, ["a dog barks"], seed=None)
    assert torch.equal(generate(pipeline, ["a dog barks"], seed=drawn.seed).mels, drawn.mels)


def test_guidance_and_negative_prompt_change_the_output(pipeline):
    guided = generate(pipeline, ["three short high beeps"])
    stronger = generate(pipeline, ["three short high beeps"], guidance_scale=6.0)
    unguided = generate(pipeline, ["three short high beeps"], guidance_scale=1.0)
    negative = generate(pipeline, ["three short high beeps"], negative_prompt="a low hum")
    assert not torch.allclose(guided.mels, stronger.mels, atol=1e-4)
    assert not torch.allclose(guided.mels, unguided.mels, atol=1e-4)
    assert not torch.allclose(guided.mels, negative.mels, atol=1e-4)
    # Without guidance the negative prompt is not used at all.
    unguided_negative = generate(pipeline, ["three short high beeps"], guidance_scale=1.0, negative_prompt="a low hum")
    assert torch.equal(unguided.mels, unguided_negative.mels)


@pytest.mark.parametrize("seconds, frames", [(0.57, 57), (0.01, 1)])
def test_any_length_is_generated_and_trimmed(pipeline, seconds, frames):
    output = generate(pipeline, ["a dog barks"], audio_length_in_s=seconds, num_inference_steps=2)
    assert output.waveforms.shape == (1, 1, int(seconds * 16000))
    assert output.mels.shape == (1, 1, frames, 64)
    vae_frames = -(-frames // 4)
    assert pipeline.latent_frames(seconds) == 2 * -(-vae_frames // 2)  # the tiny UNet down-samples by 2


@pytest.mark.parametrize("seconds", [0.57, 0.2])
def test_the_unet_only_sees_latents_of_whole_down_sampling_multiples(pipeline, seconds):
    """A 0.57 s clip needs 15 latent frames; the UNet samples 16, as a padded training crop has, and the clip is
    cropped after decoding."""
    seen = []
    hook = pipeline.denoiser.unet.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[2]))
    try:
        output = generate(pipeline, ["a dog barks"], audio_length_in_s=seconds, num_inference_steps=2)
    finally:
        hook.remove()
    assert pipeline.denoiser.unet.downsample_factor == 2
    assert seen and all(frames % 2 == 0 and frames * 4 >= seconds * 100 for frames in seen)
    assert output.waveforms.shape == (1, 1, int(seconds * 16000))


def test_length_changes_the_output_but_keeps_the_seed_meaningful(pipeline):
    short = generate(pipeline, ["a dog barks"])
    longer = generate(pipeline, ["a dog barks"], audio_length_in_s=0.64)
    assert longer.mels.shape[2] == 64 and short.mels.shape[2] == 32
    assert not torch.allclose(short.mels, longer.mels[:, :, :32], atol=1e-4)


def test_text_padding_is_masked(pipeline):
    alone = generate(pipeline, ["a dog barks"])
    long_prompt = "a very long prompt about a steady low hum followed by several quick high pitched beeps and a knock"
    padded = generate(pipeline, ["a dog barks", long_prompt])
    assert padded.mels.shape[0] == 2
    torch.testing.assert_close(padded.mels[0], alone.mels[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(padded.waveforms[0], alone.waveforms[0], atol=1e-4, rtol=1e-4)


def test_batch_size_does_not_change_the_audio(pipeline):
    together = generate(pipeline, ["a dog barks", "a cat meows"], num_waveforms_per_prompt=2)
    one_by_one = generate(pipeline, ["a dog barks", "a cat meows"], num_waveforms_per_prompt=2, batch_size=1)
    assert together.waveforms.shape[:2] == (2, 2)
    torch.testing.assert_close(together.mels, one_by_one.mels, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(together.mels[0, 0], together.mels[0, 1], atol=1e-3)


def test_candidates_are_ranked_within_each_prompt_only_with_a_scorer(pipeline):
    prompts = ["a dog barks", "a cat meows"]
    unranked = generate(pipeline, prompts, num_waveforms_per_prompt=3)
    assert unranked.scores is None
    calls = []

    def scorer(item_prompts, waveforms):
        calls.append(list(item_prompts))
        return waveforms.abs().mean(dim=1)

    ranked = generate(pipeline, prompts, num_waveforms_per_prompt=3, scorer=scorer)
    assert calls == [[prompts[0]] * 3 + [prompts[1]] * 3]
    assert torch.equal(unranked.generation_indices, torch.tensor([[0, 1, 2], [0, 1, 2]]))
    for prompt_index in range(2):
        expected = unranked.waveforms[prompt_index].abs().mean(dim=1)
        order = expected.argsort(descending=True)
        assert torch.equal(ranked.generation_indices[prompt_index], order)
        torch.testing.assert_close(ranked.scores[prompt_index], expected[order])
        torch.testing.assert_close(ranked.waveforms[prompt_index], unranked.waveforms[prompt_index][order])
        torch.testing.assert_close(ranked.mels[prompt_index], unranked.mels[prompt_index][order])
    assert ranked.generation_indices.tolist() != unranked.generation_indices.tolist(), "ranking must reorder here"


def test_ranking_keeps_generation_order_on_ties_and_puts_nan_last(pipeline):
    fixed = torch.tensor([0.5, float("nan"), 0.5, 0.75, 0.5])
    ranked = generate(pipeline, ["a dog barks"], num_waveforms_per_prompt=5, num_inference_steps=1,
                      scorer=lambda prompts, waveforms: fixed)
    assert ranked.generation_indices.tolist() == [[3, 0, 2, 4, 1]]
    assert ranked.scores[0, :4].tolist() == [0.75, 0.5, 0.5, 0.5] and ranked.scores[0, 4].isnan()


def test_a_scorer_of_the_wrong_size_is_an_error(pipeline):
    with pytest.raises(ValueError, match=r"scorer returned shape \(3,\) for 2 candidates"):
        generate(pipeline, ["a dog barks"], num_waveforms_per_prompt=2, num_inference_steps=1,
                 scorer=lambda prompts, waveforms: torch.zeros(3))


def test_each_prompt_is_encoded_once_per_call(pipeline, monkeypatch):
    encoded = []
    original = type(pipeline.text_encoder).forward

    def counting_forward(self, prompts):
        encoded.append(list(prompts))
        return original(self, prompts)

    monkeypatch.setattr(type(pipeline.text_encoder), "forward", counting_forward)
    generate(pipeline, ["a dog barks", "a cat meows", "a dog barks"], num_waveforms_per_prompt=2, batch_size=2)
    assert encoded == [["a dog barks", "a cat meows"], [""]]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"prompts": [""]}, "non-empty"),
        ({"prompts": []}, "non-empty"),
        ({"audio_length_in_s": 0.0}, "positive"),
        ({"num_inference_steps": 0}, "positive"),
        ({"scheduler": "nope"}, "unknown scheduler"),
    ],
)
def test_bad_arguments_are_clear_errors(pipeline, overrides, message):
    prompts = overrides.pop("prompts", ["a dog barks"])
    with pytest.raises(ValueError, match=message):
        generate(pipeline, prompts, **overrides)
