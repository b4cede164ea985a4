"""The autocast precision of the sampling commands (`--precision auto|fp32|bf16`) and of training
(`trainer.mixed_precision: "auto"`).

`auto` picks bf16 where bf16 matmuls are fast: a CUDA device that supports bf16, or a CPU with bf16 dot-product
units, AMX-BF16 tiles (Intel Sapphire Rapids and later) or AVX-512 BF16 (e.g. AMD Zen 4). Everywhere else it picks
fp32, since emulated bf16 is slower than fp32 (about 3x on an AVX2-only AMD EPYC). fp32 weights are kept; only the
models run under autocast (the VAE decode and vocoder of the sampling commands stay fp32). Measured gains:
- AMX-BF16 (2-core Xeon): a guided full-size UNet step 2.2x faster than fp32 (benchmarks/results/unet_step.txt).
- AVX-512 BF16 without AMX (2-core AMD EPYC): the matmul peak 2.3x (422 against 187 GFLOP/s, measured by
  benchmarks/bench_unet_step.py, results/unet_step.txt, session 8); on the quickstart's small models the main job
  ran 26.6 instead of 32.4 minutes (VAE training 1.4x, stage-2 training 1.3x, generation 1.4x, the vocoder's training
  1.05x slower; docs/results/quickstart/run_times.txt, session 8), with metrics within run-to-run spread.
"""

from pathlib import Path

import torch

AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}
PRECISION_CHOICES = ("auto", *AUTOCAST_DTYPES)
BF16_CPU_UNITS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX-512 BF16"}
CPUINFO = Path("/proc/cpuinfo")


def cpu_bf16_units(cpuinfo: Path = CPUINFO) -> list[str]:
    """Names of the bf16 dot-product units the CPU advertises in /proc/cpuinfo ("AMX-BF16", "AVX-512 BF16");
    empty where it lists neither or the file does not exist."""
    try:
        flags = set(cpuinfo.read_text(encoding="utf-8", errors="replace").split())
    except OSError:
        return []
    return [name for flag, name in BF16_CPU_UNITS.items() if flag in flags]


def cpu_has_bf16_units(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU advertises AMX-BF16 or AVX-512 BF16 (False where /proc/cpuinfo does not exist)."""
    return bool(cpu_bf16_units(cpuinfo))


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """"fp32" or "bf16" for a `--precision` value; "auto" decides for `device` (see the module docstring)."""
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"--precision: unknown {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_bf16_units() else "fp32"


def auto_training_precision() -> str:
    """accelerate's `mixed_precision` for `trainer.mixed_precision: "auto"`: "bf16" where `auto` picks bf16 for
    the device accelerate trains on (a bf16 CUDA GPU, else a CPU with bf16 units), else "no" (fp32)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return "bf16" if resolve_precision("auto", device) == "bf16" else "no"
