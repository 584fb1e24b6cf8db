"""How well a resampler keeps what it should and rejects what it should not, with tones.

Three figures, each measured on 1 s sine tones (amplitude 0.5, the first and last 0.1 s
of the output left out as edge transients):
- passband ripple, dB: the spread (max - min) of the gain of tones from 50 Hz up to
  `PASSBAND` of the lower Nyquist frequency; the gain is the amplitude of the exact
  sinusoid fitted by least squares.
- residual, dB below the tone: for the same tones, what remains after that fit (images,
  aliases, noise); the worst tone.
- alias rejection, dB: for tones between `STOPBAND` of the output Nyquist and the input's
  Nyquist (downsampling only), the level of everything that comes out, below the tone;
  the worst tone. None when nothing lies above the output Nyquist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

PASSBAND = 0.9
"""Top of the measured passband, share of the lower Nyquist frequency."""
STOPBAND = 1.02
"""Bottom of the measured stop band, share of the output Nyquist frequency (a tone exactly
at Nyquist samples to zeros and would flatter every resampler)."""
TONES = 24
"""Tones measured per band."""
AMPLITUDE = 0.5

Resampler = Callable[[np.ndarray], np.ndarray]
"""float32 mono at the input rate -> float32 mono at the output rate."""


@dataclass(frozen=True)
class Quality:
    passband_ripple_db: float
    worst_residual_db: float
    alias_rejection_db: float | None

    def line(self) -> str:
        alias = "--" if self.alias_rejection_db is None else f"{self.alias_rejection_db:6.1f} dB"
        return (
            f"passband ripple {self.passband_ripple_db:.4f} dB, residual {self.worst_residual_db:6.1f} dB, "
            f"alias rejection {alias}"
        )


def _tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    return (AMPLITUDE * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def _fit(out: np.ndarray, freq: float, rate: int) -> tuple[float, float]:
    """(amplitude of the fitted sinusoid at `freq`, RMS of what remains), edges left out."""
    edge = rate // 10
    y = out[edge:-edge].astype(np.float64)
    t = np.arange(edge, edge + len(y)) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    residual = y - basis @ coef
    return float(np.hypot(*coef)), float(np.sqrt(np.mean(residual**2)))


def _db(x: float) -> float:
    return 20 * np.log10(max(x, 1e-12))


def measure(resample: Resampler, rate_in: int, rate_out: int) -> Quality:
    """Passband ripple, worst residual and alias rejection of `resample`."""
    nyquist = min(rate_in, rate_out) / 2
    gains, residuals = [], []
    for freq in np.linspace(50, PASSBAND * nyquist, TONES):
        amp, rest = _fit(resample(_tone(freq, rate_in)), freq, rate_out)
        gains.append(_db(amp / AMPLITUDE))
        residuals.append(_db(rest / (AMPLITUDE / np.sqrt(2))))
    rejection = None
    if rate_out < rate_in:
        levels = []
        for freq in np.linspace(STOPBAND * rate_out / 2, 0.98 * rate_in / 2, TONES):
            out = resample(_tone(freq, rate_in))
            edge = rate_out // 10
            rms = np.sqrt(np.mean(out[edge:-edge].astype(np.float64) ** 2))
            levels.append(_db(rms / (AMPLITUDE / np.sqrt(2))))
        rejection = -max(levels)
    return Quality(
        passband_ripple_db=max(gains) - min(gains),
        worst_residual_db=max(residuals),
        alias_rejection_db=rejection,
    )
