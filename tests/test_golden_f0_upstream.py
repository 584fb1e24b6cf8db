"""CREPE and FCPE, run from the weights their wheels ship, reproduce f0-upstream.npz."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import noisy_tone

from rvcd.dsp.f0_crepe import Crepe
from rvcd.dsp.f0_fcpe import Fcpe
from rvcd.dsp.pitch import HOP, SAMPLE_RATE

DITHER_CENTS = 20
"""torchcrepe adds unseeded triangular noise of up to 20 cents to every frame."""


@pytest.fixture(scope="module")
def upstream(golden):
    path = golden / "f0-upstream.npz"
    if not path.is_file():
        pytest.skip(f"{path} is not in this golden directory")
    return np.load(path)


@pytest.mark.parametrize("capacity", ["tiny", "full"])
def test_crepe_matches_torchcrepe(upstream, capacity):
    f0, periodicity = Crepe(capacity).predict(upstream["audio"])
    want_f0 = upstream[f"crepe_{capacity}_f0"].reshape(-1)
    want_p = upstream[f"crepe_{capacity}_periodicity"].reshape(-1)
    assert f0.shape == want_f0.shape
    np.testing.assert_allclose(periodicity, want_p, atol=1e-4)
    cents = 1200 * np.abs(np.log2(f0 / want_f0))
    assert cents.max() <= DITHER_CENTS + 0.5


def test_fcpe_matches_torchfcpe(upstream):
    f0 = Fcpe()(upstream["audio"])
    want = upstream["fcpe_f0"].reshape(-1)
    assert f0.shape == want.shape
    np.testing.assert_array_equal(f0 > 0, want > 0)
    np.testing.assert_allclose(f0, want, atol=0.01)


def _silent_frames(audio: np.ndarray) -> np.ndarray:
    """Frames (10 ms hop) whose whole analysis window (1024 samples around the frame's
    centre, the longer of the two estimators') is digital silence."""
    frames = len(audio) // HOP + 1
    padded = np.pad(np.abs(audio), 512)
    return np.array([padded[i * HOP : i * HOP + 1024].max() < 1e-4 for i in range(frames)])


def _with_a_gap() -> np.ndarray:
    """0.5 s of a 220 Hz voice-like tone, 0.3 s of silence, 0.5 s of tone (16 kHz)."""
    tone = noisy_tone(220.0, 0.5)
    return np.concatenate([tone, np.zeros(int(0.3 * SAMPLE_RATE), np.float32), tone])


def _assert_silence_unvoiced(audio: np.ndarray) -> None:
    silent = _silent_frames(audio)
    for estimator in (Fcpe(), Crepe("tiny")):
        f0 = estimator(audio)
        assert (f0[silent[: len(f0)]] == 0).all(), type(estimator).__name__
        assert (f0[~silent[: len(f0)]] > 0).mean() > 0.5, "the rest is mostly voiced"


def test_silent_gaps_of_the_golden_signal_are_unvoiced(upstream):
    """Its gaps are found from the audio itself, not from the file's name or layout."""
    _assert_silence_unvoiced(upstream["audio"].reshape(-1))


def test_a_silent_gap_is_unvoiced():
    audio = _with_a_gap()
    assert _silent_frames(audio).sum() >= 15
    _assert_silence_unvoiced(audio)
