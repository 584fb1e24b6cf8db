"""Praat autocorrelation pitch ("pm") via praat-parselmouth.

As the reference realtime path runs it (RVC-Project WebUI `infer/rtrvc.py`, `get_f0`):
floor 65 Hz, ceiling 1100 Hz, voicing threshold 0.6, 10 ms steps, the input padded by
1.5 periods of the floor so that frame k is centred on sample 160*k.
"""

from __future__ import annotations

import math

import numpy as np
import parselmouth

from .pitch import F0_MAX, HOP, SAMPLE_RATE, check_audio, fit_frames, n_frames, register

PM_FLOOR = 65.0
"""Praat's pitch floor as the reference sets it, Hz."""


@register("pm")
class Praat:
    """Autocorrelation pitch: fast, good on clean speech."""

    name = "pm"

    def __init__(self, device: str = "cpu") -> None:
        del device  # CPU-only library

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        x = check_audio(audio).astype(np.float64)
        pad = math.ceil(1.5 / PM_FLOOR * SAMPLE_RATE)
        sound = parselmouth.Sound(np.pad(x, (pad, pad + 1)), SAMPLE_RATE)
        pitch = sound.to_pitch_ac(
            time_step=HOP / SAMPLE_RATE,
            voicing_threshold=0.6,
            pitch_floor=PM_FLOOR,
            pitch_ceiling=F0_MAX,
        )
        return fit_frames(np.asarray(pitch.selected_array["frequency"]), n_frames(len(x)))
