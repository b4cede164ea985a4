"""`utils.precision`: `--precision auto` picks bf16 only where bf16 matmuls are fast."""

import pytest
import torch

from utils import precision
from utils.precision import cpu_bf16_units, cpu_has_bf16_units, resolve_precision


def test_bf16_units_are_read_from_the_cpu_flags(tmp_path):
    amx, avx512_bf16, avx512_only, avx2 = (tmp_path / name for name in ("amx", "avx512_bf16", "avx512", "avx2"))
    amx.write_text("flags\t\t: fpu avx512f amx_bf16 amx_tile\n")
    avx512_bf16.write_text("flags\t\t: fpu avx512f avx512_bf16\n")
    avx512_only.write_text("flags\t\t: fpu avx512f avx512_vnni\n")
    avx2.write_text("flags\t\t: fpu avx2 fma\n")
    assert cpu_has_bf16_units(amx) and cpu_has_bf16_units(avx512_bf16)
    assert not cpu_has_bf16_units(avx512_only) and not cpu_has_bf16_units(avx2)
    assert not cpu_has_bf16_units(tmp_path / "missing")
    assert cpu_bf16_units(amx) == ["AMX-BF16"] and cpu_bf16_units(avx512_bf16) == ["AVX-512 BF16"]
    assert cpu_bf16_units(avx2) == [] and cpu_bf16_units(tmp_path / "missing") == []


@pytest.mark.parametrize("units", [True, False])
def test_auto_follows_the_cpu_and_explicit_values_are_kept(monkeypatch, units):
    monkeypatch.setattr(precision, "cpu_has_bf16_units", lambda: units)
    assert resolve_precision("auto", "cpu") == ("bf16" if units else "fp32")
    assert resolve_precision("auto", torch.device("meta")) == "fp32"
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"


def test_unknown_precision_names_the_flag():
    with pytest.raises(ValueError, match="--precision: unknown 'fp16'"):
        resolve_precision("fp16", "cpu")


@pytest.mark.parametrize("units", [True, False])
def test_auto_training_precision_is_bf16_only_where_fast(monkeypatch, units):
    monkeypatch.setattr(precision, "cpu_has_bf16_units", lambda: units)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert precision.auto_training_precision() == ("bf16" if units else "no")
