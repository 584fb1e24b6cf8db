"""The WORLD engine: pitch and formant shifting with the WORLD vocoder (pyworld).

No model is needed, so it is the default engine. For each block it analyses the newest
`tail` samples plus a short context (dio or harvest + stonemask for f0, cheaptrick for
the spectral envelope, d4c for aperiodicity, 5 ms frames), scales f0 by the pitch
shift, warps the envelope along frequency by the formant shift, and resynthesises.
"""

from __future__ import annotations

import time

import numpy as np
import pyworld

from .stream_params import StreamParams

FRAME_PERIOD_MS = 5.0
CONTEXT_SECONDS = 0.1
"""Analysis context before the returned tail, seconds (f0 and envelope need ~2 periods)."""
F0_FLOOR = 50.0
F0_CEIL = 1100.0


def warp_envelope(sp: np.ndarray, factor: float) -> np.ndarray:
    """Stretch each spectral envelope frame [frames, bins] along frequency by `factor`
    (> 1 moves formants up): out(f) = sp(f / factor), linear between bins."""
    if factor == 1.0:
        return sp
    bins = sp.shape[1]
    src = np.arange(bins) / factor
    i0 = np.clip(np.floor(src).astype(np.int64), 0, bins - 1)
    i1 = np.clip(i0 + 1, 0, bins - 1)
    w = np.clip(src - i0, 0.0, 1.0)
    return np.ascontiguousarray(sp[:, i0] * (1 - w) + sp[:, i1] * w)


WORLD_F0_METHODS = ("dio", "harvest")
"""The pitch estimators the WORLD engine can use."""


class WorldEngine:
    """Pitch/formant shifting by WORLD analysis-resynthesis, block by block.

    `f0_method` is the default estimator; a block whose parameters name dio or harvest
    uses that one instead (the others are RVC's and do not apply)."""

    name = "world"

    def __init__(self, f0_method: str = "dio") -> None:
        if f0_method not in WORLD_F0_METHODS:
            raise ValueError(f"the WORLD engine estimates pitch with 'dio' or 'harvest', not {f0_method!r}")
        self.f0_method = f0_method
        self.rate = 0
        self.tail = 0
        self.context = 0

    def prepare(self, rate: int, window: int, tail: int, block: int) -> None:
        self.rate = rate
        self.tail = tail
        self.context = min(window - tail, int(CONTEXT_SECONDS * rate))

    def reset(self) -> None:
        """WORLD keeps no state between blocks."""

    def fork(self) -> WorldEngine:
        return WorldEngine(self.f0_method)

    def effective_f0(self, params: StreamParams) -> str:
        """The estimator a block with `params` uses."""
        return params.f0_method if params.f0_method in WORLD_F0_METHODS else self.f0_method

    def convert(self, window: np.ndarray, params: StreamParams, timings: dict[str, float]) -> np.ndarray:
        seg = window[-(self.tail + self.context) :].astype(np.float64)
        t0 = time.perf_counter()
        analyse = pyworld.harvest if self.effective_f0(params) == "harvest" else pyworld.dio
        f0, t = analyse(seg, self.rate, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_PERIOD_MS)
        f0 = pyworld.stonemask(seg, f0, t, self.rate)
        t1 = time.perf_counter()
        sp = pyworld.cheaptrick(seg, f0, t, self.rate)
        ap = pyworld.d4c(seg, f0, t, self.rate)
        t2 = time.perf_counter()
        f0 = f0 * 2 ** (params.pitch / 12)
        sp = warp_envelope(sp, 2 ** (params.formant / 12))
        y = pyworld.synthesize(f0, sp, ap, self.rate, frame_period=FRAME_PERIOD_MS)
        t3 = time.perf_counter()
        timings["pitch"] = timings.get("pitch", 0.0) + 1000 * (t1 - t0)
        timings["analysis"] = timings.get("analysis", 0.0) + 1000 * (t2 - t1)
        timings["synthesis"] = timings.get("synthesis", 0.0) + 1000 * (t3 - t2)
        y = np.pad(y, (0, max(0, len(seg) - len(y))))[: len(seg)]
        return y[-self.tail :].astype(np.float32)
