"""Block streamer: turns a conversion engine into a seamless stream (RVC's realtime path).

For every block of `block` samples the engine sees a window of
`extra + crossfade + search + block` samples (the newest last) and returns the converted
last `crossfade + search + block` samples. SOLA picks the offset within `search` where
the new audio best continues the previous block (normalised cross-correlation against
the previous block's crossfade tail), crossfades over `crossfade` samples with a
sin^2 window, and emits `block` samples (RVC-Project WebUI `realtime_gui.py`,
`audio_callback`; SOLA from DDSP-SVC). The input gate and the loudness envelope mix
follow the same file. The algorithmic delay is constant: `latency` samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .stream_params import GATE_OFF_DB, StreamParams


class Engine(Protocol):
    """Converts a context window; implemented by the WORLD and RVC engines."""

    name: str

    def prepare(self, rate: int, window: int, tail: int, block: int) -> None:
        """Called once before streaming: graph rate (Hz) and sizes (samples)."""

    def convert(self, window: np.ndarray, params: StreamParams, timings: dict[str, float]) -> np.ndarray:
        """Window [window] float32 -> converted last `tail` samples at the graph rate.

        Stage durations (ms) are added into `timings`."""
        ...

    def reset(self) -> None:
        """Forget all history (caches) after a discontinuity."""

    def fork(self) -> Engine:
        """A new engine with its own stream state sharing the loaded models (one per channel)."""
        ...


SHAPE_RANGES: dict[str, tuple[float, float]] = {
    "block": (0.01, 5.0),
    "crossfade": (0.01, 0.5),
    "extra": (0.0, 10.0),
}
"""Allowed stream-shape lengths, seconds (configuration and command line)."""
SHAPE_DEFAULTS: dict[str, float] = {"block": 0.25, "crossfade": 0.05, "extra": 0.5}
"""Default stream-shape lengths, seconds: the one table the configuration schema, the
command line (`convert`, `bench`) and the example configuration share. RVC's GUI uses
2.5 s of extra context; 0.5 s costs a fifth of the content-encoder time per block, and
`rvcd tune` measures what a machine affords."""


@dataclass(frozen=True)
class StreamShape:
    """Sizes in samples at the graph rate, each a whole number of 10 ms frames."""

    rate: int
    block: int
    crossfade: int
    search: int
    extra: int

    @classmethod
    def from_seconds(cls, rate: int, block: float, crossfade: float, extra: float) -> StreamShape:
        zc = rate // 100
        if zc * 100 != rate:
            raise ValueError(f"sample rate {rate} Hz is not a multiple of 100 Hz")
        if crossfade > block:
            raise ValueError(
                f"the crossfade ({crossfade:g} s) must not be longer than the block ({block:g} s)"
            )

        def frames(seconds: float, minimum: int) -> int:
            return max(minimum, round(seconds * rate / zc)) * zc

        return cls(rate, frames(block, 1), frames(crossfade, 1), zc, frames(extra, 0))

    @property
    def zc(self) -> int:
        """Samples per 10 ms."""
        return self.rate // 100

    @property
    def tail(self) -> int:
        """Samples the engine returns: crossfade + search + block."""
        return self.crossfade + self.search + self.block

    @property
    def window(self) -> int:
        """Samples the engine sees: extra + tail."""
        return self.extra + self.tail

    @property
    def latency(self) -> int:
        """Delay of the output stream behind the input stream, samples, when each output
        block is emitted in the slot of its input block (crossfade + search; the same
        for wet and bypass). Live, a block can only be converted once it has arrived,
        which adds one block."""
        return self.crossfade + self.search


@dataclass
class BlockStats:
    """What one block cost: stage durations in ms and the total."""

    stages: dict[str, float] = field(default_factory=dict)
    total_ms: float = 0.0


def frame_rms_db(signal: np.ndarray, zc: int) -> np.ndarray:
    """RMS level (dBFS) of each 10 ms frame, measured over 40 ms centred on it."""
    padded = np.pad(signal.astype(np.float64), (2 * zc - zc // 2, 2 * zc))
    n = len(signal) // zc
    win = np.lib.stride_tricks.sliding_window_view(padded, 4 * zc)[::zc][:n]
    return 10 * np.log10(np.mean(win**2, axis=1) + 1e-20)


def envelope_mix(source: np.ndarray, converted: np.ndarray, zc: int, mix: float) -> np.ndarray:
    """Scale `converted` by (rms_source / rms_converted)^(1 - mix) per 10 ms (linear in
    between), the realtime path's volume envelope mixing."""
    n = len(converted)

    def env(x: np.ndarray) -> np.ndarray:
        padded = np.pad(x.astype(np.float64), (2 * zc, 2 * zc))
        frames = np.lib.stride_tricks.sliding_window_view(padded, 4 * zc)[::zc]
        rms = np.sqrt(np.mean(frames**2, axis=1))
        return np.interp(np.linspace(0, len(rms) - 1, n + 1)[:-1], np.arange(len(rms)), rms)

    gain = (env(source[:n]) / np.maximum(env(converted), 1e-3)) ** (1.0 - mix)
    return (converted * gain).astype(np.float32)


class Streamer:
    """Feeds blocks through an engine with SOLA alignment; one instance per channel."""

    def __init__(self, engine: Engine, shape: StreamShape) -> None:
        self.engine = engine
        self.shape = shape
        self.window = np.zeros(shape.window, dtype=np.float32)
        self.sola_buffer = np.zeros(shape.crossfade, dtype=np.float32)
        ramp = np.linspace(0.0, 1.0, shape.crossfade, dtype=np.float32)
        self.fade_in = np.sin(0.5 * np.pi * ramp) ** 2
        self.fade_out = 1.0 - self.fade_in
        self.was_bypassed = False
        self.last = BlockStats()
        engine.prepare(shape.rate, shape.window, shape.tail, shape.block)

    @property
    def latency(self) -> int:
        return self.shape.latency

    def replace_engine(self, engine: Engine, params: StreamParams) -> None:
        """Continue the stream with another engine: it is prepared and, if it can, primed
        with the current window (or with the old engine's state, when the old engine saw
        the last block); the next block crossfades from the old engine's tail."""
        s = self.shape
        engine.prepare(s.rate, s.window, s.tail, s.block)
        prime = getattr(engine, "prime", None)
        if prime is not None:
            prime(self.window, params, previous=None if self.was_bypassed else self.engine)
        self.engine = engine

    def reset(self) -> None:
        self.window[:] = 0
        self.sola_buffer[:] = 0
        self.was_bypassed = False
        self.engine.reset()

    def _gate(self, block: np.ndarray, threshold: float) -> np.ndarray:
        zc = self.shape.zc
        history = self.window[-2 * zc :]
        levels = frame_rms_db(np.concatenate([history, block]), zc)[2:]
        gated = block.copy()
        for i, level in enumerate(levels[: len(block) // zc]):
            if level < threshold:
                gated[i * zc : (i + 1) * zc] = 0
        return gated

    def _sola_offset(self, converted: np.ndarray) -> int:
        """The offset (0..search) where `converted` best continues the previous block:
        the argmax of the normalised cross-correlation with the crossfade tail. The
        window energies come from a running sum (O(n), not a windows x crossfade array)."""
        s = self.shape
        seg = converted[: s.crossfade + s.search].astype(np.float64)
        num = np.correlate(seg, self.sola_buffer.astype(np.float64), mode="valid")
        energy = np.concatenate(([0.0], np.cumsum(seg * seg)))
        den = np.sqrt(np.maximum(energy[s.crossfade :] - energy[: -s.crossfade], 0.0) + 1e-8)
        return int(np.argmax(num / den))

    def process(self, block: np.ndarray, params: StreamParams) -> np.ndarray:
        """Take `block` new input samples, return `block` output samples."""
        s = self.shape
        if len(block) != s.block:
            raise ValueError(f"expected a block of {s.block} samples, got {len(block)}")
        start = time.perf_counter()
        stages: dict[str, float] = {}
        block = np.asarray(block, dtype=np.float32)
        if params.gate > GATE_OFF_DB and not params.bypass:
            block = self._gate(block, params.gate)
        self.window[: -s.block] = self.window[s.block :]
        self.window[-s.block :] = block
        dry = self.window[-s.tail :]
        if params.bypass:
            out = dry[: s.block].copy()
            if not self.was_bypassed:
                out[: s.crossfade] = out[: s.crossfade] * self.fade_in + self.sola_buffer * self.fade_out
            self.sola_buffer[:] = dry[s.block : s.block + s.crossfade]
            self.was_bypassed = True
        else:
            converted = self.engine.convert(self.window, params, stages)
            if len(converted) != s.tail:
                raise RuntimeError(
                    f"engine {self.engine.name} returned {len(converted)} samples, expected {s.tail}"
                )
            if params.rms_mix < 1.0:
                converted = envelope_mix(dry, converted, s.zc, params.rms_mix)
            t0 = time.perf_counter()
            offset = 0 if self.was_bypassed else self._sola_offset(converted)
            aligned = converted[offset : offset + s.block + s.crossfade].astype(np.float32)
            out = aligned[: s.block].copy()
            out[: s.crossfade] = out[: s.crossfade] * self.fade_in + self.sola_buffer * self.fade_out
            self.sola_buffer[:] = aligned[s.block : s.block + s.crossfade]
            self.was_bypassed = False
            stages["sola"] = stages.get("sola", 0.0) + 1000 * (time.perf_counter() - t0)
        self.last = BlockStats(stages, 1000 * (time.perf_counter() - start))
        return out

    def run(
        self,
        audio: np.ndarray,
        params: StreamParams,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Stream a whole signal block by block and return it aligned with the input:
        the `latency` samples of delay are removed (what a live run outputs, shifted).
        `progress(done, total)` is called after every block."""
        s = self.shape
        n_blocks = -(-(len(audio) + s.latency) // s.block)
        padded = np.zeros(n_blocks * s.block, dtype=np.float32)
        padded[: len(audio)] = audio
        out = np.empty_like(padded)
        for i in range(n_blocks):
            out[i * s.block : (i + 1) * s.block] = self.process(
                padded[i * s.block : (i + 1) * s.block], params
            )
            if progress:
                progress(i + 1, n_blocks)
        return out[s.latency : s.latency + len(audio)]
