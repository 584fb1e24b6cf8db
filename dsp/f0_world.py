"""WORLD pitch estimators: harvest and dio, each refined by stonemask (pyworld).

Parameters as RVC uses them (50..1100 Hz, 10 ms frames; harvest followed by a 3-tap
median filter, RVC's default `filter_radius` 3; RVC-Project WebUI v2 `infer/vc/pipeline.py`
and `rvc_for_realtime.py`).
"""

from __future__ import annotations

import numpy as np
import pyworld
from scipy.signal import medfilt

from .pitch import F0_MAX, F0_MIN, SAMPLE_RATE, check_audio, fit_frames, n_frames, register

FRAME_PERIOD_MS = 10.0


@register("harvest")
class Harvest:
    """Harvest + stonemask + median filter: robust, slow (about real time on one core)."""

    name = "harvest"

    def __init__(self, device: str = "cpu") -> None:
        del device  # CPU-only library

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        x = check_audio(audio).astype(np.float64)
        f0, t = pyworld.harvest(
            x, fs=SAMPLE_RATE, f0_floor=F0_MIN, f0_ceil=F0_MAX, frame_period=FRAME_PERIOD_MS
        )
        f0 = pyworld.stonemask(x, f0, t, SAMPLE_RATE)
        if len(f0) >= 3:  # RVC's 3-frame median filter; shorter inputs have nothing to smooth
            f0 = medfilt(f0, 3)
        return fit_frames(f0, n_frames(len(x)))


@register("dio")
class Dio:
    """Dio + stonemask: fast, less robust to noise than harvest."""

    name = "dio"

    def __init__(self, device: str = "cpu") -> None:
        del device  # CPU-only library

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        x = check_audio(audio).astype(np.float64)
        f0, t = pyworld.dio(x, fs=SAMPLE_RATE, f0_floor=F0_MIN, f0_ceil=F0_MAX, frame_period=FRAME_PERIOD_MS)
        f0 = pyworld.stonemask(x, f0, t, SAMPLE_RATE)
        return fit_frames(f0, n_frames(len(x)))
