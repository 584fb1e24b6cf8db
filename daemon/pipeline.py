"""The real-time data path: ports -> input ring -> worker -> streamers -> output ring -> ports.

`io()` is what the JACK process callback runs: it only copies samples between port
buffers and preallocated rings and reads a few integers; it never waits for the worker.
`work()` is what the worker thread runs: it takes the next complete block, converts it
and stamps it as ready.

Timeline (absolute sample positions since the stream started at `t0`): block k covers
input [t0 + kB, t0 + (k+1)B) and plays at output [t0 + kB + Q, ...), with the queue
delay Q = B + 2 periods + headroom: one block to collect, up to two periods of
callback rounding, and `headroom` for the worker to convert it. With the streamer's own
delay (crossfade + search) and the output limiter's look-ahead (when on) the declared
latency is constant. A block whose stamp is
missing when its samples are due is replaced by the input delayed by the declared
latency (or silence), counted as an underrun, and never by a repeat of an old block.
"""

from __future__ import annotations

import collections
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rvcd.control.param_store import ParamStore
from rvcd.daemon.ring import SampleRing
from rvcd.dsp.limiter import TruePeakLimiter
from rvcd.dsp.stream_params import db_to_gain
from rvcd.dsp.streamer import Engine, Streamer, StreamShape


@dataclass
class PipelineStats:
    """Counters and timing the daemon reports (status, logs, sd_notify)."""

    blocks: int
    late_blocks: int
    underruns: int
    p50_ms: float
    p99_ms: float
    load: float
    """Median block processing time / block duration."""


class Pipeline:
    """Rings, streamers and the timeline for `channels` channels at one rate and period."""

    def __init__(
        self,
        engines: Sequence[Engine],
        shape: StreamShape,
        period: int,
        headroom: int,
        store: ParamStore,
        underrun_silence: bool = False,
        limiter_ceiling: float | None = None,
    ) -> None:
        """`limiter_ceiling` (dBTP) puts a true-peak limiter on every output channel."""
        self.shape = shape
        self.channels = len(engines)
        self.period = period
        self.store = store
        self.underrun_silence = underrun_silence
        self.streamers = [Streamer(engine, shape) for engine in engines]
        self.limiters = [
            TruePeakLimiter(shape.rate, limiter_ceiling) for _ in engines if limiter_ceiling is not None
        ]
        self.queue = shape.block + 2 * period + headroom
        self.latency = self.queue + shape.latency + (self.limiters[0].delay if self.limiters else 0)
        capacity = 4 * (self.latency + shape.block + period)
        self.inputs = SampleRing(self.channels, capacity)
        self.outputs = SampleRing(self.channels, capacity)
        self.n_slots = self.inputs.capacity // shape.block + 2
        self.stamps = np.full(self.n_slots, -1, dtype=np.int64)
        self.block_in = np.zeros(shape.block, dtype=np.float32)
        self.t0: int | None = None
        self.frame_time = 0
        self.published = 0
        self.next_block = 0
        self.underruns = 0
        self.late_blocks = 0
        self.errors = 0
        self.last_error = ""
        self.level_in = np.zeros(self.channels, dtype=np.float32)
        self.level_out = np.zeros(self.channels, dtype=np.float32)
        self._dry = np.zeros(period, dtype=np.float32)
        self.times_ms: collections.deque[float] = collections.deque(maxlen=2000)
        self._pending: tuple[Engine, threading.Event, Callable[[], None] | None] | None = None

    # -- real-time side ------------------------------------------------------------------

    def _ready(self, k: int) -> bool:
        return k < 0 or self.stamps[k % self.n_slots] == k

    def io(
        self,
        inputs: Sequence[np.ndarray],
        outputs: Sequence[np.ndarray],
        frames: int,
        monitors: Sequence[np.ndarray] = (),
    ) -> None:
        """Process callback body: store input, emit converted output (or the fallback),
        and the monitor feed (a mix of the output and the equally delayed input)."""
        if self.t0 is None:
            self.t0 = self.frame_time
        t = self.frame_time
        for ch, buf in enumerate(inputs):
            self.inputs.write(ch, t, buf)
        self.published = t + frames
        rel = t - self.t0 - self.queue
        first, last = rel // self.shape.block, (rel + frames - 1) // self.shape.block
        if self._ready(first) and self._ready(last):
            for ch, buf in enumerate(outputs):
                self.outputs.read(ch, t, buf)
        else:
            self.underruns += 1
            dry_at = t - self.latency
            for ch, buf in enumerate(outputs):
                if self.underrun_silence or dry_at < self.t0:
                    buf.fill(0.0)
                else:
                    self.inputs.read(ch, dry_at, buf)
                    gain = self.store.snapshot().gain
                    if gain:
                        buf *= np.float32(db_to_gain(gain))
        if monitors:
            self._monitor(t, outputs, monitors, frames)
        self.frame_time = t + frames

    def _monitor(
        self, t: int, outputs: Sequence[np.ndarray], monitors: Sequence[np.ndarray], frames: int
    ) -> None:
        """monitor = gain * (mix * output + (1 - mix) * input delayed by the latency); the
        outputs themselves are not touched. In place, into preallocated buffers."""
        p = self.store.snapshot()
        gain = 0.0 if p.monitor_mute else db_to_gain(p.monitor_gain)
        dry_at = t - self.latency
        for ch, buf in enumerate(monitors):
            np.multiply(outputs[ch], gain * p.monitor_mix, out=buf)
            if gain and p.monitor_mix < 1 and dry_at >= self.t0:
                dry = self._dry[:frames]
                self.inputs.read(ch, dry_at, dry)
                dry *= gain * (1 - p.monitor_mix)
                buf += dry

    # -- worker side ---------------------------------------------------------------------

    def swap_engine(
        self, engine: Engine, timeout: float = 30.0, before: Callable[[], None] | None = None
    ) -> bool:
        """Hand `engine` to the worker, which installs it at the next block boundary
        (the streamers keep their windows, so SOLA crossfades from the old engine's
        output into the new one's), calling `before()` first: parameters it sets take
        effect in the same block as the new voice. Returns once installed, False on
        timeout."""
        done = threading.Event()
        self._pending = (engine, done, before)
        return done.wait(timeout)

    def _install_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        engine, done, before = pending
        if before is not None:
            before()
        params = self.store.snapshot()
        for i, streamer in enumerate(self.streamers):
            streamer.replace_engine(engine if i == 0 else engine.fork(), params)
        done.set()

    def work(self) -> bool:
        """Convert the next block if it is complete; returns False when there was none."""
        if self._pending is not None:
            self._install_pending()
        if self.t0 is None:
            return False
        k = self.next_block
        start = self.t0 + k * self.shape.block
        if self.published < start + self.shape.block:
            return False
        out_at = start + self.queue
        params = self.store.snapshot()
        late = self.published >= out_at + self.shape.block
        if late:
            # Its slot has passed: keep the streamers' context continuous without
            # converting (bypass is nearly free); the next block crossfades back in.
            params = params.with_changes(bypass=True)
            self.late_blocks += 1
        began = time.perf_counter()
        for ch, streamer in enumerate(self.streamers):
            self.inputs.read(ch, start, self.block_in)
            try:
                out = streamer.process(self.block_in, params)
            except Exception as exc:  # a failing block plays dry; the stream goes on
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                out = streamer.process(self.block_in, params.with_changes(bypass=True))
                late = True
            if params.gain:
                out = out * np.float32(db_to_gain(params.gain))
            if self.limiters:  # late blocks too, so its delay line stays continuous
                out = self.limiters[ch].process(out)
            self.level_in[ch] = float(np.sqrt(np.mean(self.block_in**2)))
            self.level_out[ch] = float(np.sqrt(np.mean(out**2)))
            if not late:
                self.outputs.write(ch, out_at, out)
        if not late:
            self.times_ms.append(1000 * (time.perf_counter() - began))
            self.stamps[k % self.n_slots] = k
        self.next_block = k + 1
        return True

    def warm_up(self) -> float:
        """Run one silent block through every streamer (loads lazy models, fills caches),
        then reset them; returns the milliseconds it took."""
        began = time.perf_counter()
        silence = np.zeros(self.shape.block, dtype=np.float32)
        params = self.store.snapshot()
        for streamer in self.streamers:
            streamer.process(silence, params.with_changes(bypass=False))
            streamer.reset()
        return 1000 * (time.perf_counter() - began)

    def limiter_reduction_db(self) -> float:
        """The output limiter's largest attenuation in the last block, dB, on any channel."""
        return max((limiter.reduction_db for limiter in self.limiters), default=0.0)

    def limited_blocks(self) -> int:
        """Blocks in which the output limiter attenuated, on any channel."""
        return max((limiter.limited_blocks for limiter in self.limiters), default=0)

    def stats(self) -> PipelineStats:
        times = sorted(self.times_ms)
        block_ms = 1000 * self.shape.block / self.shape.rate
        p50 = statistics.median(times) if times else 0.0
        p99 = times[min(len(times) - 1, int(0.99 * len(times)))] if times else 0.0
        return PipelineStats(
            blocks=self.next_block,
            late_blocks=self.late_blocks,
            underruns=self.underruns,
            p50_ms=p50,
            p99_ms=p99,
            load=p50 / block_ms if block_ms else 0.0,
        )
