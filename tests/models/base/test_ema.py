"""models.base.ema: decay schedule, update rule, swap in / restore, state round trip."""

import pytest
import torch
from torch import nn

from models.base.ema import ExponentialMovingAverage


def make_model(value: float) -> nn.Linear:
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.fill_(value)
        model.bias.fill_(value)
    return model


def test_decay_schedule_copies_before_start_then_warms_up():
    ema = ExponentialMovingAverage(make_model(0.0), decay=0.99, start_step=5)
    assert ema.decay_at(0) == 0.0 and ema.decay_at(4) == 0.0
    assert ema.decay_at(5) == pytest.approx(1 / 10)
    assert ema.decay_at(6) == pytest.approx(2 / 11)
    assert ema.decay_at(10_000) == 0.99
    assert ExponentialMovingAverage(make_model(0.0), decay=0.9, warmup=False).decay_at(0) == 0.9


def test_update_follows_the_moving_average_rule():
    model = make_model(0.0)
    ema = ExponentialMovingAverage(model, decay=0.5, start_step=1, warmup=False)
    with torch.no_grad():
        model.weight.fill_(4.0)
    ema.update(model, step=0)
    assert torch.equal(ema.shadow["weight"], torch.full((2, 2), 4.0)), "before start_step: a copy"
    with torch.no_grad():
        model.weight.fill_(8.0)
    ema.update(model, step=1)
    assert torch.allclose(ema.shadow["weight"], torch.full((2, 2), 0.5 * 4.0 + 0.5 * 8.0))


def test_applied_to_swaps_in_the_average_and_restores_exactly():
    torch.manual_seed(0)
    model = nn.Linear(3, 3)
    original = {key: value.clone() for key, value in model.state_dict().items()}
    ema = ExponentialMovingAverage(model, decay=0.9)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter))
    trained = {key: value.clone() for key, value in model.state_dict().items()}
    with ema.applied_to(model):
        for key, value in model.state_dict().items():
            assert torch.equal(value, original[key])
    for key, value in model.state_dict().items():
        assert torch.equal(value, trained[key])
    with pytest.raises(RuntimeError, match="without a matching store"):
        ema.restore(model)


def test_state_dict_round_trip_and_mismatch_errors():
    source = ExponentialMovingAverage(make_model(3.0), decay=0.9)
    target = ExponentialMovingAverage(make_model(0.0), decay=0.9)
    target.load_state_dict(source.state_dict())
    assert torch.equal(target.shadow["bias"], torch.full((2,), 3.0))
    with pytest.raises(ValueError, match=r"missing \['bias'\]"):
        target.load_state_dict({"weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="shape"):
        target.load_state_dict({"weight": torch.zeros(3, 2), "bias": torch.zeros(2)})
    with pytest.raises(ValueError, match="do not match the EMA"):
        target.update(nn.Linear(2, 2, bias=False), step=0)


def test_tied_parameters_are_averaged_once():
    model = nn.Sequential(nn.Embedding(4, 2), nn.Linear(2, 4, bias=False))
    model[1].weight = model[0].weight
    ema = ExponentialMovingAverage(model, decay=0.5, warmup=False)
    assert list(ema.shadow) == ["0.weight"]
    with torch.no_grad():
        model[0].weight.fill_(2.0)
    ema.update(model, step=0)
    ema.copy_to(model)
    assert torch.equal(model[1].weight, model[0].weight)
