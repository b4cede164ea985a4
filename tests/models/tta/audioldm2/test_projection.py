"""AudioLDM2Projection: layout, key map, and parity with diffusers' AudioLDM2ProjectionModel on tiny weights."""

import json

import pytest
import torch
from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2ProjectionModel
from safetensors.torch import load_file, save_file

from models.tta.audioldm2.key_map import convert_diffusers_projection_state_dict, load_diffusers_projection
from models.tta.audioldm2.projection import AudioLDM2Projection
from tests.fixtures.tiny_audioldm2 import (  # noqa: F401  (pytest fixture)
    CLAP_PROJECTION_DIM,
    GPT2_HIDDEN_DIM,
    T5_HIDDEN_DIM,
    tiny_audioldm2_folder,
)


def _projection(clap_dim: int = CLAP_PROJECTION_DIM) -> AudioLDM2Projection:
    return AudioLDM2Projection(clap_dim=clap_dim, t5_dim=T5_HIDDEN_DIM, language_model_dim=GPT2_HIDDEN_DIM)


def _inputs(batch_size: int = 3, t5_length: int = 6) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    clap = torch.randn(batch_size, 1, CLAP_PROJECTION_DIM)
    clap_mask = torch.ones(batch_size, 1, dtype=torch.long)
    t5 = torch.randn(batch_size, t5_length, T5_HIDDEN_DIM)
    t5_mask = torch.ones(batch_size, t5_length, dtype=torch.long)
    t5_mask[1, 4:] = 0
    t5_mask[2, 2:] = 0
    return clap, clap_mask, t5, t5_mask


def test_layout_brackets_each_stream_and_keeps_t5_padding_before_its_end_vector() -> None:
    projection = _projection()
    learned = (projection.clap_start, projection.clap_end, projection.t5_start, projection.t5_end)
    with torch.no_grad():
        for index, parameter in enumerate(learned):
            parameter.fill_(10.0 * (index + 1))
    clap, clap_mask, t5, t5_mask = _inputs()
    sequence, mask = projection(clap, clap_mask, t5, t5_mask)

    assert sequence.shape == (3, 1 + 6 + 4, GPT2_HIDDEN_DIM)
    assert mask.dtype == torch.long
    for position, value in ((0, 10.0), (2, 20.0), (3, 30.0), (10, 40.0)):
        assert torch.all(sequence[:, position] == value)
    torch.testing.assert_close(sequence[:, 1], projection.clap_projection(clap[:, 0]))
    torch.testing.assert_close(sequence[:, 4:10], projection.t5_projection(t5))
    assert mask[2].tolist() == [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1]
    assert mask[0].tolist() == [1] * 11


def test_matches_diffusers_projection_model(tiny_audioldm2_folder) -> None:
    folder = tiny_audioldm2_folder / "projection_model"
    reference = AudioLDM2ProjectionModel.from_pretrained(folder, local_files_only=True).eval()
    ours = load_diffusers_projection(folder).eval()
    clap, clap_mask, t5, t5_mask = _inputs()
    with torch.no_grad():
        expected = reference(hidden_states=clap, hidden_states_1=t5, attention_mask=clap_mask, attention_mask_1=t5_mask)
        sequence, mask = ours(clap, clap_mask, t5, t5_mask)
    assert torch.equal(mask, expected.attention_mask)
    assert (sequence - expected.hidden_states).abs().max().item() <= 1e-5


def test_key_map_names_missing_and_unexpected_keys(tiny_audioldm2_folder) -> None:
    state = load_file(str(tiny_audioldm2_folder / "projection_model" / "diffusion_pytorch_model.safetensors"))
    model = _projection()
    state.pop("eos_embed_1")
    state["learnable_positional_embedding"] = torch.zeros(1, T5_HIDDEN_DIM, 4)
    with pytest.raises(KeyError, match=r"missing \['t5_end'\], unexpected \['learnable_positional_embedding'\]"):
        convert_diffusers_projection_state_dict(state, model)


def test_key_map_rejects_wrong_shapes_and_vits_configs(tiny_audioldm2_folder, tmp_path) -> None:
    source = tiny_audioldm2_folder / "projection_model"
    state = load_file(str(source / "diffusion_pytorch_model.safetensors"))
    wrong_width = _projection(clap_dim=CLAP_PROJECTION_DIM + 1)
    with pytest.raises(ValueError, match="clap_projection.weight"):
        convert_diffusers_projection_state_dict(state, wrong_width)

    config = json.loads((source / "config.json").read_text())
    config.update(use_learned_position_embedding=True, max_seq_length=4)
    (tmp_path / "config.json").write_text(json.dumps(config))
    save_file(state, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(ValueError, match="VITS"):
        load_diffusers_projection(tmp_path)
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_diffusers_projection(tmp_path / "missing")
