"""The true-peak limiter: peaks between samples stay under the ceiling (measured with an
independent 32x polyphase resampler), quiet audio passes untouched and exactly `delay`
samples late, the gain recovers at the stated rate, and block sizes do not matter."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from rvcd.dsp.limiter import RELEASE_DB_PER_S, TruePeakLimiter, true_peak_db

RATE = 48000
SKIP = 1000
"""Samples left out at each end when metering (the meter's resampler rings there)."""


def _signals() -> dict[str, np.ndarray]:
    """Loud material (6 to 7 dB over full scale between samples), band-limited to 20 kHz as
    converted voices are: steps onto tones, filtered noise, harmonic bursts."""
    t = np.arange(2 * RATE) / RATE
    rng = np.random.default_rng(3)
    step = np.where((t > 0.5) & (t < 1.2), 2.0, 0.3)
    out = {f"step onto {f} Hz": step * np.sin(2 * np.pi * f * t + 1.2) for f in (100, 3000, 11000, 15000)}
    for cut in (8000, 16000, 20000):
        noise = sosfilt(butter(8, cut, fs=RATE, output="sos"), rng.standard_normal(len(t)))
        out[f"noise below {cut} Hz"] = 2 * noise / np.abs(noise).max()
    harmonics = sum(np.sin(2 * np.pi * 150 * k * t + rng.uniform(0, 6)) / k for k in range(1, 120))
    out["voice-like bursts"] = 2.2 * harmonics / np.abs(harmonics).max() * np.where(t % 0.4 < 0.25, 1.0, 0.05)
    return {name: x.astype(np.float32) for name, x in out.items()}


@pytest.mark.parametrize("name", list(_signals()))
@pytest.mark.parametrize("ceiling", [-1.0, -3.0])
def test_true_peaks_stay_under_the_ceiling(name, ceiling):
    x = _signals()[name]
    assert true_peak_db(x, SKIP) > 6.0
    limiter = TruePeakLimiter(RATE, ceiling)
    y = np.concatenate([limiter.process(b) for b in np.array_split(x, 40)])
    assert true_peak_db(y, SKIP) <= ceiling + 0.1
    assert true_peak_db(y, SKIP) >= ceiling - 1.0, "limited to the ceiling, not far below it"


def test_quiet_audio_passes_untouched_and_delay_samples_late():
    x = (np.random.default_rng(1).standard_normal(RATE) * 0.05).astype(np.float32)
    limiter = TruePeakLimiter(RATE)
    y = np.concatenate([limiter.process(b) for b in np.array_split(x, 7)])
    d = limiter.delay
    assert 0 < d < 0.005 * RATE
    np.testing.assert_array_equal(y[:d], 0.0)
    np.testing.assert_array_equal(y[d:], x[: len(x) - d])


def test_the_gain_is_down_before_a_sudden_peak_and_recovers_at_the_release_rate():
    quiet, loud = 0.1, 4.0
    x = np.full(RATE, quiet, dtype=np.float32) * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)
    x = x.astype(np.float32)
    x[RATE // 4 : RATE // 4 + 480] *= loud / quiet  # 10 ms, 32 dB louder, no warning
    limiter = TruePeakLimiter(RATE, -1.0)
    y = limiter.process(x)
    d = limiter.delay
    assert np.abs(y).max() <= 10 ** (-1 / 20) + 1e-6
    over_db = 20 * np.log10(loud) + 1.0
    ends = RATE // 4 + 480 + d
    ratio = np.abs(y[ends : ends + RATE // 100]).max() / quiet
    assert ratio < 10 ** ((-over_db + 1.0) / 20), "still held down in the 10 ms after the burst"
    back = ends + int((over_db / RELEASE_DB_PER_S + 0.05) * RATE)
    np.testing.assert_allclose(y[back:], x[back - d : len(x) - d], atol=1e-6)


def test_block_sizes_do_not_change_the_output():
    x = (np.random.default_rng(2).standard_normal(RATE) * 0.8).astype(np.float32)
    whole = TruePeakLimiter(RATE).process(x)
    limiter = TruePeakLimiter(RATE)
    pieces = np.concatenate([limiter.process(b) for b in np.split(x, [5, 300, 301, 4000, 20000])])
    np.testing.assert_allclose(pieces, whole, atol=1e-6)
