"""Streaming benchmark: per-stage milliseconds and real-time factor of an engine.

Real-time factor = processing time per block / block duration; below 1 keeps up. The
figures are medians over `blocks` blocks after `warmup` blocks, on a speech-like signal
(harmonic tone with vibrato and a little noise) at the graph rate.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from .stream_params import StreamParams
from .streamer import Engine, Streamer, StreamShape


@dataclass
class BenchResult:
    engine: str
    block_s: float
    extra_s: float
    crossfade_s: float
    stages_ms: dict[str, float]
    total_ms: float
    p99_ms: float

    @property
    def rtf(self) -> float:
        return self.total_ms / (1000 * self.block_s)

    def line(self) -> str:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in self.stages_ms.items())
        return (
            f"{self.engine:<6} block {self.block_s:.3f} s, extra {self.extra_s:.2f} s, crossfade "
            f"{self.crossfade_s:.3f} s: {self.total_ms:7.1f} ms/block (p99 {self.p99_ms:.1f}), "
            f"RTF {self.rtf:.2f}  [{stages}]"
        )


def voice_like_signal(rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Voice-like test material: 140 Hz harmonics with 5 Hz vibrato, syllable-rate
    amplitude modulation and -50 dB noise."""
    t = np.arange(int(rate * seconds)) / rate
    phase = 2 * np.pi * np.cumsum(140 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))) / rate
    x = sum(0.25 / k * np.sin(k * phase) for k in range(1, 8))
    x *= 0.55 + 0.45 * np.sin(2 * np.pi * 3 * t)
    x += 0.003 * np.random.default_rng(seed).standard_normal(len(t))
    return x.astype(np.float32)


def bench_engine(
    engine: Engine,
    rate: int = 48000,
    block: float = 0.25,
    crossfade: float = 0.05,
    extra: float = 2.5,
    blocks: int = 20,
    warmup: int = 3,
    params: StreamParams | None = None,
) -> BenchResult:
    """Stream `warmup + blocks` blocks through `engine` and report the medians."""
    shape = StreamShape.from_seconds(rate, block, crossfade, extra)
    streamer = Streamer(engine, shape)
    params = params or StreamParams()
    audio = voice_like_signal(rate, (warmup + blocks) * shape.block / rate + 0.1)
    totals: list[float] = []
    stages: dict[str, list[float]] = {}
    for i in range(warmup + blocks):
        streamer.process(audio[i * shape.block : (i + 1) * shape.block], params)
        if i >= warmup:
            totals.append(streamer.last.total_ms)
            for name, ms in streamer.last.stages.items():
                stages.setdefault(name, []).append(ms)
    ordered = sorted(totals)
    return BenchResult(
        engine=engine.name,
        block_s=shape.block / rate,
        extra_s=shape.extra / rate,
        crossfade_s=shape.crossfade / rate,
        stages_ms={k: statistics.median(v) for k, v in stages.items()},
        total_ms=statistics.median(totals),
        p99_ms=ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    )
