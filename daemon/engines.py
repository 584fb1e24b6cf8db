"""Building conversion engines from settings (command line or configuration)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rvcd.dsp.engine_world import WorldEngine
from rvcd.dsp.precision import DEFAULT_PRECISION, resolve, torch_dtype
from rvcd.dsp.streamer import Engine

if TYPE_CHECKING:
    import torch

ENGINE_KINDS = ("world", "rvc")


@dataclass(frozen=True)
class EngineSpec:
    """Which engine, and the files the RVC engine needs."""

    kind: str = "world"
    model: Path | None = None
    hubert: Path | None = None
    index: Path | None = None
    rmvpe: Path | None = None
    device: str = "cpu"
    world_f0: str = "dio"
    precision: str = DEFAULT_PRECISION
    """Network precision: auto, fp32, bf16 or fp16 (`rvcd.dsp.precision`)."""

    def dtype(self) -> torch.dtype:
        """The torch dtype `precision` resolves to on `device` (ValueError if it cannot)."""
        return torch_dtype(resolve(self.precision, self.device))


def build_engine(spec: EngineSpec) -> Engine:
    """Load everything the engine needs; raises ModelFileError/ValueError naming the problem."""
    if spec.kind == "world":
        return WorldEngine(spec.world_f0)
    if spec.kind != "rvc":
        raise ValueError(f"unknown engine {spec.kind!r}; choose one of {', '.join(ENGINE_KINDS)}")
    if spec.model is None:
        raise ValueError("the rvc engine needs a voice model (engine.model / --model)")
    if spec.hubert is None:
        raise ValueError("the rvc engine needs a content encoder (engine.hubert / --hubert)")
    from rvcd.dsp.engine_rvc import RvcEngine
    from rvcd.dsp.rvc_window import RvcModels

    models = RvcModels.load(spec.model, spec.hubert, spec.index, device=spec.device, dtype=spec.dtype())
    return RvcEngine(models, spec.rmvpe, spec.device)
