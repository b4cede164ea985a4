"""The contract between the shared trainer and a stage: which methods a stage may define, and what its hooks
must return. Checked when a stage is constructed, so a renamed hook or a malformed return value fails at once
with a message naming the stage, instead of being ignored or failing deep inside the loop."""

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

# Hook name -> required. A stage may define these (with the base signature) and private helpers, nothing else.
HOOKS = {
    "build_models": True,
    "build_optimizers": False,
    "build_datasets": True,
    "collate": False,
    "train_step": True,
    "validate": True,
    "log_samples": False,
}


def check_stage_class(stage: type, base: type) -> None:
    """Raise if `stage` (a subclass of `base`) defines a public method that is not a hook, overrides the loop,
    gives a hook another number of parameters, or lacks a required hook."""
    if stage is base:
        raise TypeError(f"{base.__name__} is a base class: subclass it and implement its hooks")
    defined: dict[str, Any] = {}
    for klass in stage.__mro__:
        if klass is base:
            break
        for attribute, value in vars(klass).items():
            defined.setdefault(attribute, value)
    for attribute, value in defined.items():
        if attribute.startswith("_"):
            continue
        if not (inspect.isfunction(value) or isinstance(value, (staticmethod, classmethod, property))):
            continue
        if attribute in HOOKS:
            _check_signature(stage, base, attribute, value)
            continue
        close = difflib.get_close_matches(attribute, list(HOOKS), n=1, cutoff=0.6)
        hint = f" Did you mean the hook {close[0]!r}?" if close else ""
        loop = " It overrides part of the loop, which stages must not change." if hasattr(base, attribute) else ""
        raise TypeError(
            f"{stage.__name__} defines public method {attribute!r}, which is not a trainer hook.{hint}{loop} "
            f"Hooks: {', '.join(HOOKS)}. Name stage helpers with a leading underscore."
        )
    missing = [hook for hook, required in HOOKS.items() if required and getattr(stage, hook) is getattr(base, hook)]
    if missing:
        raise NotImplementedError(f"{stage.__name__} must implement the trainer hooks: {', '.join(missing)}")


def _check_signature(stage: type, base: type, hook: str, value: Any) -> None:
    expected = list(inspect.signature(getattr(base, hook)).parameters)
    if not inspect.isfunction(value):
        raise TypeError(f"{stage.__name__}.{hook} must be a plain method ({', '.join(expected)})")
    actual = list(inspect.signature(value).parameters)
    if len(actual) != len(expected):
        raise TypeError(f"{stage.__name__}.{hook} takes ({', '.join(actual)}); the hook is ({', '.join(expected)})")


def checked_models(models: Any, where: str) -> dict[str, nn.Module]:
    """build_models must return {identifier: module with trainable parameters} (names become file names)."""
    if not isinstance(models, dict) or not models:
        raise TypeError(f"{where} must return a non-empty dict of name -> nn.Module, got {type(models).__name__}")
    for name, model in models.items():
        if not (isinstance(name, str) and name.isidentifier()):
            raise ValueError(f"{where}: model name {name!r} must be an identifier (it names checkpoint files)")
        if not isinstance(model, nn.Module):
            raise TypeError(f"{where}: {name!r} is a {type(model).__name__}, not an nn.Module")
        if not any(p.requires_grad for p in model.parameters()):
            raise ValueError(f"{where}: {name!r} has no trainable parameters; keep frozen modules out of it")
    return models


def optimizer_config(configured: Mapping[str, Any], name: str, optimizer_names: list[str]) -> Any:
    """The `trainer.optimizers` entry of optimizer `name`, or a clear error."""
    if name not in configured:
        raise ValueError(
            f"trainer.optimizers has no entry for optimizer {name!r} (optimizers: {sorted(optimizer_names)}; "
            f"configured: {sorted(configured)})"
        )
    return configured[name]


def checked_optimizers(
    optimizers: Any, configured: Mapping[str, Any], where: str
) -> dict[str, torch.optim.Optimizer]:
    """build_optimizers must return {name: Optimizer}, one `trainer.optimizers` entry each, and no extra entry."""
    if not isinstance(optimizers, dict) or not optimizers:
        raise TypeError(f"{where} must return a non-empty dict of name -> Optimizer")
    for name, optimizer in optimizers.items():
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"{where}: {name!r} is a {type(optimizer).__name__}, not a torch Optimizer")
        optimizer_config(configured, name, list(optimizers))
    unknown = sorted(set(configured) - set(optimizers))
    if unknown:
        raise ValueError(f"trainer.optimizers names {unknown}, which are not optimizers ({sorted(optimizers)})")
    return optimizers


def metrics_as_floats(metrics: Any, where: str) -> dict[str, float]:
    """train_step / validate return {name: number or scalar tensor}; converted to floats."""
    if not isinstance(metrics, dict):
        raise TypeError(f"{where} must return a dict of metric name -> float, got {type(metrics).__name__}")
    converted = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise TypeError(f"{where}: metric {key!r} has shape {tuple(value.shape)}, expected a scalar")
            value = value.item()
        if not isinstance(key, str) or not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError(f"{where}: metric {key!r} must map a string to a number, got {type(value).__name__}")
        converted[key] = float(value)
    return converted
