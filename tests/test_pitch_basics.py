"""f0 post-processing as RVC does it, and the CPU estimators measured on known tones."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import noisy_tone

from rvcd.dsp.pitch import coarse_pitch, fill_unvoiced, make_estimator, methods, n_frames, shift_semitones


def test_coarse_pitch_mapping_matches_rvc_formula():
    f0 = np.array([0.0, 50.0, 100.0, 220.0, 440.0, 1100.0, 2000.0])
    mel = 1127 * np.log(1 + f0 / 700)
    mel_min, mel_max = 1127 * np.log(1 + 50 / 700), 1127 * np.log(1 + 1100 / 700)
    want = np.where(mel > 0, (mel - mel_min) * 254 / (mel_max - mel_min) + 1, mel)
    want = np.rint(np.clip(want, 1, 255)).astype(np.int64)
    got = coarse_pitch(f0)
    np.testing.assert_array_equal(got, want)
    assert got[0] == 1 and got[1] == 1 and got[5] == 255 and got[6] == 255
    assert np.all(np.diff(got[1:6]) > 0)


def test_shift_and_fill():
    np.testing.assert_allclose(shift_semitones(np.array([0.0, 110.0]), 12), [0.0, 220.0])
    np.testing.assert_allclose(shift_semitones(np.array([440.0]), -7), [440.0 * 2 ** (-7 / 12)])
    np.testing.assert_allclose(
        fill_unvoiced(np.array([0.0, 100.0, 0.0, 200.0, 0.0])), [100, 100, 150, 200, 200]
    )
    np.testing.assert_array_equal(fill_unvoiced(np.zeros(4)), np.zeros(4))


@pytest.mark.parametrize("method", ["harvest", "dio", "pm"])
@pytest.mark.parametrize("f0", [110.0, 220.0, 440.0])
def test_cpu_estimators_measure_a_tone(method, f0):
    audio = noisy_tone(f0, 1.0)
    est = make_estimator(method)
    track = est(audio)
    assert len(track) == n_frames(len(audio))
    voiced = track[10:-10]
    assert (voiced > 0).mean() > 0.9
    assert np.median(voiced[voiced > 0]) == pytest.approx(f0, rel=0.01)


@pytest.mark.parametrize("method", ["harvest", "dio", "pm"])
def test_silence_is_unvoiced(method):
    assert (make_estimator(method)(np.zeros(8000, dtype=np.float32)) == 0).all()


@pytest.mark.parametrize("method", ["harvest", "dio", "pm"])
def test_bad_audio_is_a_clear_error(method):
    est = make_estimator(method)
    with pytest.raises(ValueError, match="empty"):
        est(np.zeros(0, dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        est(np.array([0.0, np.nan, 0.0], dtype=np.float32))


def test_unknown_method_lists_choices():
    with pytest.raises(ValueError, match="harvest"):
        make_estimator("yin")
    assert {"rmvpe", "harvest", "dio", "pm"} <= set(methods())


def test_rmvpe_needs_its_file():
    with pytest.raises(ValueError, match="rmvpe.pt"):
        make_estimator("rmvpe")
