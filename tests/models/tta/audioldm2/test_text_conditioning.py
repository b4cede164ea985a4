"""AudioLDM2TextConditioner vs diffusers' AudioLDM2Pipeline.encode_prompt / score_waveforms on tiny weights."""

import json
import shutil

import numpy as np
import pytest
import torch

from models.tta.audioldm2.text_conditioning import AudioLDM2TextConditioner, load_audioldm2_conditioner
from tests.fixtures.tiny_audioldm2 import (  # noqa: F401  (pytest fixture)
    CLAP_PROJECTION_DIM,
    GPT2_HIDDEN_DIM,
    T5_HIDDEN_DIM,
    load_reference_pipeline,
    tiny_audioldm2_folder,
)

PROMPTS = ["a dog barking", "rain falling on a roof in the forest"]
# The second negative prompt is longer than the longest positive one: the reference cuts it to that length.
NEGATIVE_PROMPTS = ["low quality", "loud noise of a car engine passing by and more noise"]


@pytest.fixture(scope="module")
def reference(tiny_audioldm2_folder):
    return load_reference_pipeline(tiny_audioldm2_folder)


@pytest.fixture(scope="module")
def conditioner(tiny_audioldm2_folder) -> AudioLDM2TextConditioner:
    return load_audioldm2_conditioner(tiny_audioldm2_folder)


@pytest.mark.parametrize(
    ("prompts", "negative_prompts", "do_cfg", "num_waveforms_per_prompt"),
    [
        (PROMPTS, None, False, 1),
        (PROMPTS, None, True, 1),
        (PROMPTS, NEGATIVE_PROMPTS, True, 3),
        ("the sound of a hammer hitting a wooden surface", "low quality", True, 2),
    ],
    ids=["no_cfg", "cfg_empty_negative", "cfg_negative_x3", "single_prompt_x2"],
)
def test_encode_matches_reference_encode_prompt(
    reference, conditioner, prompts, negative_prompts, do_cfg, num_waveforms_per_prompt
) -> None:
    with torch.no_grad():
        t5_states, t5_mask, language_of_audio = reference.encode_prompt(
            prompts, "cpu", num_waveforms_per_prompt, do_cfg, negative_prompt=negative_prompts
        )
        ours = conditioner.encode(prompts, negative_prompts, do_cfg, num_waveforms_per_prompt)
    batch_size = (2 if do_cfg else 1) * (1 if isinstance(prompts, str) else len(prompts)) * num_waveforms_per_prompt
    assert ours.language_of_audio.shape == (batch_size, 8, GPT2_HIDDEN_DIM)
    assert ours.t5_states.shape == (batch_size, t5_states.shape[1], T5_HIDDEN_DIM)
    assert torch.equal(ours.t5_mask, t5_mask)
    assert (ours.t5_states - t5_states).abs().max().item() <= 1e-5
    assert (ours.language_of_audio - language_of_audio).abs().max().item() <= 1e-5


def test_encode_orders_negative_first_and_repeats_each_prompt(conditioner) -> None:
    with torch.no_grad():
        guided = conditioner.encode(PROMPTS, NEGATIVE_PROMPTS, True, 2)
        positive = conditioner.encode(PROMPTS, None, False, 1)
    torch.testing.assert_close(guided.language_of_audio[4:6], positive.language_of_audio[0:1].expand(2, -1, -1))
    torch.testing.assert_close(guided.language_of_audio[6:8], positive.language_of_audio[1:2].expand(2, -1, -1))
    assert (guided.language_of_audio[0] - guided.language_of_audio[4]).abs().max().item() > 1e-4
    assert torch.equal(guided.t5_mask[4:], positive.t5_mask.repeat_interleave(2, dim=0))


def test_clap_text_features_match_reference_scoring(reference, conditioner) -> None:
    """Text side of ``score_waveforms``: the ClapModel forward on the tokenised prompts and 48 kHz audio features."""
    text_inputs = reference.tokenizer(PROMPTS, return_tensors="pt", padding=True)
    audio = np.random.default_rng(0).standard_normal((3, 48000)).astype(np.float32) * 0.1
    audio_features = reference.feature_extractor(list(audio), return_tensors="pt", sampling_rate=48000).input_features
    with torch.no_grad():
        expected = reference.text_encoder(**text_inputs, input_features=audio_features).text_embeds
        ours = conditioner.clap_text_features(PROMPTS)
    assert ours.shape == (2, CLAP_PROJECTION_DIM)
    assert (ours - expected).abs().max().item() <= 1e-5


def test_encode_rejects_bad_arguments(conditioner) -> None:
    with pytest.raises(ValueError, match="2 negative prompts for 1 prompts"):
        conditioner.encode(["a dog"], ["low quality", "noise"])
    with pytest.raises(ValueError, match="num_waveforms_per_prompt"):
        conditioner.encode(PROMPTS, num_waveforms_per_prompt=0)
    with pytest.raises(ValueError, match="non-empty list of strings"):
        conditioner.encode([])


def test_loader_reads_vector_count_and_rejects_other_layouts(tiny_audioldm2_folder, tmp_path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(tiny_audioldm2_folder, folder)
    config_path = folder / "language_model" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "max_new_tokens": 3}))
    conditioner = load_audioldm2_conditioner(folder)
    assert not conditioner.training
    with torch.no_grad():
        assert conditioner.encode("a dog", do_cfg=False).language_of_audio.shape == (1, 3, GPT2_HIDDEN_DIM)

    index_path = folder / "model_index.json"
    model_index = json.loads(index_path.read_text())
    index_path.write_text(json.dumps({**model_index, "text_encoder_2": ["transformers", "VitsModel"]}))
    with pytest.raises(ValueError, match="text_encoder_2 is 'VitsModel'"):
        load_audioldm2_conditioner(folder)
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        load_audioldm2_conditioner(tmp_path / "missing")
