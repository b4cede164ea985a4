"""The autocast precision of the sampling commands (`--precision auto|fp32|bf16`) and of training
(`trainer.mixed_precision: "auto"`).

`auto` picks bf16 where bf16 matmuls are fast: a CUDA device that supports bf16, or a CPU with AMX-BF16 tiles
(Sapphire Rapids and later), where benchmarks/results/unet_step.txt measures a guided UNet step 2.2x faster in bf16
autocast than in fp32 (fp32 weights are kept; only the UNet runs under autocast, the VAE decode and vocoder stay
fp32). Everywhere else it picks fp32, since emulated bf16 is slower than fp32.
"""

from pathlib import Path

import torch

AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}
PRECISION_CHOICES = ("auto", *AUTOCAST_DTYPES)


def cpu_has_amx_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU advertises AMX-BF16 (read from /proc/cpuinfo; False where that file does not exist)."""
    try:
        return "amx_bf16" in cpuinfo.read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """"fp32" or "bf16" for a `--precision` value; "auto" decides for `device` (see the module docstring)."""
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"--precision: unknown {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_amx_bf16() else "fp32"


def auto_training_precision() -> str:
    """accelerate's `mixed_precision` for `trainer.mixed_precision: "auto"`: "bf16" where `auto` picks bf16 for
    the device accelerate trains on (a bf16 CUDA GPU, else the CPU with AMX-BF16), else "no" (fp32)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return "bf16" if resolve_precision("auto", device) == "bf16" else "no"
