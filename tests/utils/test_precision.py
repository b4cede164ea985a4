"""`utils.precision`: `--precision auto` picks bf16 only where bf16 matmuls are fast."""

import pytest
import torch

from utils import precision
from utils.precision import cpu_has_amx_bf16, resolve_precision


def test_amx_bf16_is_read_from_the_cpu_flags(tmp_path):
    with_amx, without_amx = tmp_path / "amx", tmp_path / "plain"
    with_amx.write_text("flags\t\t: fpu avx512f amx_bf16 amx_tile\n")
    without_amx.write_text("flags\t\t: fpu avx512f avx512_bf16\n")
    assert cpu_has_amx_bf16(with_amx) and not cpu_has_amx_bf16(without_amx)
    assert not cpu_has_amx_bf16(tmp_path / "missing")


@pytest.mark.parametrize("amx", [True, False])
def test_auto_follows_the_cpu_and_explicit_values_are_kept(monkeypatch, amx):
    monkeypatch.setattr(precision, "cpu_has_amx_bf16", lambda: amx)
    assert resolve_precision("auto", "cpu") == ("bf16" if amx else "fp32")
    assert resolve_precision("auto", torch.device("meta")) == "fp32"
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"


def test_unknown_precision_names_the_flag():
    with pytest.raises(ValueError, match="--precision: unknown 'fp16'"):
        resolve_precision("fp16", "cpu")


@pytest.mark.parametrize("amx", [True, False])
def test_auto_training_precision_is_bf16_only_where_fast(monkeypatch, amx):
    monkeypatch.setattr(precision, "cpu_has_amx_bf16", lambda: amx)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert precision.auto_training_precision() == ("bf16" if amx else "no")
