"""How far one rendering of a conversion drifts from another (bf16 against fp32).

Three figures, each what a listener would notice first:
- f0 difference, cents: pyworld harvest on both outputs, over the frames voiced in
  both; the median and the 95th percentile of |1200 log2(f_b / f_a)|.
- log-mel spectral distance, dB: 80-band power mel spectra (25 ms frames, 10 ms hop);
  per frame the RMS over bands of the difference of their levels in dB, floored 60 dB
  below the loudest band of the reference; the mean over frames louder than -60 dBFS.
- peak-normalised max abs difference: max |b - a| / max |a|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyworld

from .mel import mel_filterbank

N_MELS = 80
FLOOR_DB = 60.0
"""Levels more than this far below the reference's loudest band count as the floor:
below it lies what nobody hears next to the voice, and bf16's own rounding noise (an
8-bit mantissa, about -50 dB of each value). With an 80 dB floor the random-weight test
models, whose spectra put half their bands 65 dB down, read 1.1 dB where the voice's
bands differ by 0.1 dB."""
QUIET_DBFS = -60.0
"""Frames quieter than this (RMS) are left out of the spectral distance."""


@dataclass(frozen=True)
class Drift:
    """Drift of one rendering against a reference rendering of the same input."""

    f0_median_cents: float
    f0_p95_cents: float
    voiced_frames: int
    logmel_db: float
    max_abs: float

    def line(self) -> str:
        f0 = (
            f"f0 median {self.f0_median_cents:5.2f} cents, p95 {self.f0_p95_cents:6.2f} cents "
            f"({self.voiced_frames} voiced frames)"
            if self.voiced_frames
            else "f0 -- (no frames voiced in both)"
        )
        return f"{f0}, log-mel {self.logmel_db:5.3f} dB, max abs {self.max_abs:.4f} of peak"


def f0_cents(reference: np.ndarray, other: np.ndarray, rate: int) -> np.ndarray:
    """|cents| between the harvest f0 of two signals, over frames voiced in both."""
    fa, _ = pyworld.harvest(reference.astype(np.float64), rate, frame_period=10.0)
    fb, _ = pyworld.harvest(other.astype(np.float64), rate, frame_period=10.0)
    n = min(len(fa), len(fb))
    both = (fa[:n] > 0) & (fb[:n] > 0)
    return np.abs(1200 * np.log2(fb[:n][both] / fa[:n][both]))


def log_mel_db(audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(mel levels dB [frames, 80], frame RMS dBFS [frames]) of `audio`."""
    n_fft = int(2 ** np.ceil(np.log2(0.025 * rate)))
    hop = rate // 100
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(audio, (n_fft // 2, n_fft // 2)), n_fft)[::hop]
    power = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2
    mel = power @ mel_filterbank(rate, n_fft, N_MELS, 0.0, rate / 2, htk=False).T
    rms = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    return 10 * np.log10(mel + 1e-20), rms


def measure(reference: np.ndarray, other: np.ndarray, rate: int) -> Drift:
    """Drift of `other` against `reference` (same length, same rate, Hz)."""
    n = min(len(reference), len(other))
    a, b = reference[:n].astype(np.float64), other[:n].astype(np.float64)
    cents = f0_cents(a, b, rate)
    ma, rms = log_mel_db(a, rate)
    mb, _ = log_mel_db(b, rate)
    floor = ma.max() - FLOOR_DB
    diff = np.maximum(ma, floor) - np.maximum(mb, floor)
    loud = rms > QUIET_DBFS
    per_frame = np.sqrt(np.mean(diff[loud] ** 2, axis=1)) if loud.any() else np.zeros(1)
    peak = float(np.abs(a).max()) or 1.0
    return Drift(
        f0_median_cents=float(np.median(cents)) if len(cents) else 0.0,
        f0_p95_cents=float(np.percentile(cents, 95)) if len(cents) else 0.0,
        voiced_frames=len(cents),
        logmel_db=float(np.mean(per_frame)),
        max_abs=float(np.abs(b - a).max()) / peak,
    )
