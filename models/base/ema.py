"""Exponential moving average of a model's parameters (Polyak & Juditsky, 1992), for evaluation and sampling.

The average lives outside the model, as one tensor per named parameter on the parameter's device and dtype.
Buffers (e.g. normalisation statistics) are not averaged: evaluation with `applied_to` uses the live ones.
"""

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class ExponentialMovingAverage:
    """shadow <- decay * shadow + (1 - decay) * weights after every training step.

    Args:
        model: the (unwrapped) model whose parameters are averaged; the shadow starts as a copy of them.
        decay: the decay once warmed up, in [0, 1).
        start_step: before this step the shadow is a plain copy of the weights (averaging from random init
            or an early, fast-moving phase only slows the average down).
        warmup: ramp the decay as min(decay, (1 + n) / (10 + n)) over the n updates since `start_step`.

    The decay depends only on the step, so the state to save is the shadow alone.
    """

    def __init__(self, model: nn.Module, *, decay: float, start_step: int = 0, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.start_step = start_step
        self.warmup = warmup
        self.shadow: dict[str, torch.Tensor] = {
            name: parameter.detach().clone() for name, parameter in model.named_parameters()
        }
        self._stored: dict[str, torch.Tensor] | None = None

    def decay_at(self, step: int) -> float:
        """The decay used by the update after training step `step` (0 means: copy the weights)."""
        if step < self.start_step:
            return 0.0
        if not self.warmup:
            return self.decay
        updates = step - self.start_step
        return min(self.decay, (1 + updates) / (10 + updates))

    def _parameters(self, model: nn.Module) -> dict[str, nn.Parameter]:
        parameters = dict(model.named_parameters())
        if parameters.keys() != self.shadow.keys():
            missing = sorted(self.shadow.keys() - parameters.keys())
            unexpected = sorted(parameters.keys() - self.shadow.keys())
            raise ValueError(
                f"model parameters do not match the EMA: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        return parameters

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Fold the model's current weights into the average after training step `step`."""
        decay = self.decay_at(step)
        for name, parameter in self._parameters(model).items():
            if decay == 0.0:
                self.shadow[name].copy_(parameter)
            else:
                self.shadow[name].lerp_(parameter.detach(), 1.0 - decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's parameters with the average."""
        for name, parameter in self._parameters(model).items():
            parameter.copy_(self.shadow[name])

    @torch.no_grad()
    def store(self, model: nn.Module) -> None:
        """Keep a copy of the model's parameters for `restore`."""
        self._stored = {name: parameter.detach().clone() for name, parameter in self._parameters(model).items()}

    @torch.no_grad()
    def restore(self, model: nn.Module) -> None:
        """Put back the parameters saved by `store`."""
        if self._stored is None:
            raise RuntimeError("EMA.restore called without a matching store")
        for name, parameter in self._parameters(model).items():
            parameter.copy_(self._stored[name])
        self._stored = None

    @contextlib.contextmanager
    def applied_to(self, model: nn.Module) -> Iterator[nn.Module]:
        """Swap the average into `model` for the block (validation, sampling, export), then restore it."""
        self.store(model)
        self.copy_to(model)
        try:
            yield model
        finally:
            self.restore(model)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load a saved shadow; names and shapes must match exactly."""
        if state.keys() != self.shadow.keys():
            missing = sorted(self.shadow.keys() - state.keys())
            unexpected = sorted(state.keys() - self.shadow.keys())
            raise ValueError(f"EMA state does not match: missing {missing[:5]}, unexpected {unexpected[:5]}")
        for name, tensor in state.items():
            if tensor.shape != self.shadow[name].shape:
                raise ValueError(f"EMA state {name}: shape {tuple(tensor.shape)} != {tuple(self.shadow[name].shape)}")
            self.shadow[name].copy_(tensor)
