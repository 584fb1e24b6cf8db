"""Building conversion engines from settings (command line or configuration)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rvcd.dsp.engine_world import WorldEngine
from rvcd.dsp.streamer import Engine

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
    dtype: str = "float32"
    """Synthesizer precision: float32, or float16 on a CUDA device."""


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
    import torch

    from rvcd.dsp.engine_rvc import RvcEngine
    from rvcd.dsp.rvc_window import RvcModels

    dtype = torch.float16 if spec.dtype == "float16" else torch.float32
    models = RvcModels.load(spec.model, spec.hubert, spec.index, device=spec.device, dtype=dtype)
    return RvcEngine(models, spec.rmvpe, spec.device)
