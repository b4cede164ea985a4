"""The CPU line every benchmark prints with its results, so that a result names the hardware it came from.

bf16 speed depends on the CPU's bf16 units more than on anything else (`utils.precision`): AMX-BF16 tiles make
bf16 matmuls several times faster than fp32, AVX-512 BF16 alone (e.g. AMD Zen 4) raised the matmul peak 2.3x
(benchmarks/results/unet_step.txt) and much less on small convolutional models, and without either bf16 is
emulated and slower than fp32.
"""

import platform
from pathlib import Path

from utils.precision import CPUINFO, cpu_bf16_units


def describe_cpu(cpuinfo: Path = CPUINFO) -> str:
    """"<model name>, <bf16 units>" from /proc/cpuinfo (e.g. "AMD EPYC, AVX-512 BF16"; "no bf16 units" when it
    lists neither); the platform's machine name where that file does not exist."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    units = cpu_bf16_units(cpuinfo)
    return f"{model or platform.machine()}, {' + '.join(units) if units else 'no bf16 units'}"
