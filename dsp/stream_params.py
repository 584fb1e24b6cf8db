"""Conversion parameters that may change between blocks, with their ranges and units."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

# name -> (low, high): the range a value is clamped to.
RANGES: dict[str, tuple[float, float]] = {
    "pitch": (-24.0, 24.0),
    "formant": (-12.0, 12.0),
    "index_rate": (0.0, 1.0),
    "gate": (-120.0, 0.0),
    "rms_mix": (0.0, 1.0),
    "protect": (0.0, 0.5),
    "gain": (-60.0, 12.0),
    "monitor_mix": (0.0, 1.0),
    "monitor_gain": (-60.0, 12.0),
}
MAX_SPEAKER = 65535
"""Highest speaker id accepted before a model says how many it has (RVC's largest
multi-speaker models have a few hundred)."""
GATE_OFF_DB = -120.0
"""A gate threshold at or below this lets everything through."""


@dataclass(frozen=True)
class StreamParams:
    """One consistent set of parameters; the worker takes a snapshot per block."""

    pitch: float = 0.0
    """Pitch shift, semitones (-24..24)."""
    formant: float = 0.0
    """Formant shift, semitones (-12..12)."""
    index_rate: float = 0.0
    """Retrieval blend, 0..1 (RVC engine with an index)."""
    f0_method: str = "rmvpe"
    """Pitch estimator name (RVC engine); the WORLD engine uses harvest or dio."""
    speaker: int = 0
    """Speaker id (RVC engine)."""
    gate: float = GATE_OFF_DB
    """Input gate threshold, dBFS: 10 ms frames quieter than this are muted."""
    rms_mix: float = 1.0
    """Loudness envelope: 0 = follow the input's, 1 = keep the converted voice's own."""
    protect: float = 0.33
    """Share of raw content features kept in unvoiced frames, 0..0.5 (0.5 = off)."""
    bypass: bool = False
    """Pass the input through (delayed by the declared latency), click-free."""
    gain: float = 0.0
    """Output level, dB (-60..12): the main outputs, converted, bypassed or dry."""
    monitor_mix: float = 1.0
    """Monitor ports: 0 = the dry input, 1 = the converted voice (delayed alike)."""
    monitor_gain: float = 0.0
    """Monitor ports' level, dB (-60..12)."""
    monitor_mute: bool = False
    """Silence the monitor ports (the main outputs carry on)."""

    def with_changes(self, **changes: Any) -> StreamParams:
        return replace(self, **changes)


def db_to_gain(db: float) -> float:
    """A level in dB as a linear factor (gain, monitor gain)."""
    return 10 ** (db / 20)


def clamp(name: str, value: float) -> tuple[float, bool]:
    """Clamp `value` into the range of parameter `name`; returns (value, was_clamped)."""
    lo, hi = RANGES[name]
    clamped = min(max(float(value), lo), hi)
    return clamped, clamped != float(value)


def param_names() -> list[str]:
    return [f.name for f in fields(StreamParams)]
