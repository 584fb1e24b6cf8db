"""Numeric precision of the networks: the setting, what `auto` picks, and the CPU found.

`fp32` is the exact path (it reproduces the reference to float round-off). `bf16` runs
the content encoder, rmvpe and the synthesizer with bfloat16 weights and activations;
on a CPU with AMX or AVX512-BF16 oneDNN computes it natively, several times faster.
`fp16` is for CUDA devices. `auto` picks bf16 on a CPU with native bf16, fp16 on CUDA,
fp32 otherwise. The drift of the faster paths against fp32 is measured by
`benchmarks/precision_drift.py`.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""Accepted values of `engine.precision` / `--precision`."""
DEFAULT_PRECISION = "auto"
_BF16_ISA = ("amx_bf16", "avx512_bf16")
"""CPU flags (as /proc/cpuinfo names them) that give native bf16 arithmetic."""
_REPORTED_ISA = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2", "fma")


@dataclass(frozen=True)
class CpuInfo:
    """The CPU model and the vector extensions that matter for inference."""

    model: str
    isa: tuple[str, ...]
    cores: int

    @property
    def native_bf16(self) -> bool:
        return any(flag in self.isa for flag in _BF16_ISA)

    def describe(self) -> str:
        isa = " ".join(self.isa) or "no AVX2"
        return f"{self.model}, {self.cores} cores, {isa}"


@cache
def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """Read the CPU model and flags (Linux /proc/cpuinfo; elsewhere the platform name)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return CpuInfo(model, tuple(f for f in _REPORTED_ISA if f in flags), cores)


def torch_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a concrete precision (fp32, bf16 or fp16)."""
    import torch  # here, not at import: the command line starts without torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def resolve(precision: str, device: str | torch.device) -> str:
    """The concrete precision (fp32, bf16 or fp16) that `precision` means on `device`.

    Raises ValueError for an unknown name or fp16 on the CPU (torch's CPU fp16 kernels
    are slow emulations; use bf16)."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    is_cuda = torch.device(device).type == "cuda"
    if precision == "auto":
        if is_cuda:
            return "fp16"
        return "bf16" if cpu_info().native_bf16 else "fp32"
    if precision == "fp16" and not is_cuda:
        raise ValueError("precision fp16 needs a CUDA device; on the CPU use bf16 (or auto)")
    return precision


def describe(precision: str, device: str | torch.device) -> str:
    """One line for logs and `bench`: the precision chosen, why, and the CPU."""
    import torch

    chosen = resolve(precision, device)
    if torch.device(device).type == "cuda":
        return f"precision {chosen} (asked {precision}) on {torch.cuda.get_device_name(device)}"
    info = cpu_info()
    note = "" if chosen != "bf16" or info.native_bf16 else " (no native bf16 on this CPU: emulated, slow)"
    return f"precision {chosen} (asked {precision}){note} on {info.describe()}"
