"""The tensor pitch post-processing gives what the numpy path gives (it runs on the GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rvcd.dsp import device_pitch, pitch, rmvpe


def _salience(frames: int, seed: int) -> np.ndarray:
    """A salience map like rmvpe's: a bump around a wandering bin, some frames quiet."""
    rng = np.random.default_rng(seed)
    bins = np.arange(rmvpe.N_CLASSES)
    peak = np.clip(180 + np.cumsum(rng.normal(0, 3, frames)), 0, rmvpe.N_CLASSES - 1)
    sal = np.exp(-0.5 * ((bins[None, :] - peak[:, None]) / 2.5) ** 2)
    sal *= rng.uniform(0.0, 1.0, frames)[:, None] ** 2
    sal[rng.random(frames) < 0.2] *= 0.01
    sal[:3, :] = 0
    sal[-5:, :5] = 1
    sal[-5:, 5:] = 0
    return sal + rng.uniform(0, 0.005, sal.shape)


@pytest.mark.parametrize("seed", range(4))
def test_the_decode_gives_the_numpy_f0(seed: int) -> None:
    sal = _salience(400, seed)
    expected = rmvpe.decode_salience(sal)
    got = device_pitch.decode_salience(torch.from_numpy(sal)).numpy()
    assert (got > 0).sum() > 100, "the test signal must be mostly voiced"
    assert ((got > 0) == (expected > 0)).all()
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # float32, as the network gives it: within a hundredth of a cent.
    got32 = device_pitch.decode_salience(torch.from_numpy(sal.astype(np.float32))).double().numpy()
    voiced = expected > 0
    assert ((got32 > 0) == voiced).all()
    assert np.abs(1200 * np.log2(got32[voiced] / expected[voiced])).max() < 0.01


@pytest.mark.parametrize(
    "f0",
    [
        [0, 0, 100, 0, 0, 200, 0],
        [150, 0, 0, 0, 300],
        [0, 0, 0],
        [220, 230, 240],
        [0, 0, 0, 180],
        [180, 0, 0, 0],
    ],
)
def test_gaps_are_filled_as_numpy_fills_them(f0: list[float]) -> None:
    f0 = np.asarray(f0, dtype=np.float64)
    np.testing.assert_allclose(
        device_pitch.fill_unvoiced(torch.from_numpy(f0)).numpy(), pitch.fill_unvoiced(f0), rtol=1e-12
    )


def test_a_shifted_filled_contour_gives_the_same_coarse_bins() -> None:
    rng = np.random.default_rng(7)
    f0 = np.where(rng.random(2000) < 0.3, 0.0, rng.uniform(40, 1400, 2000))
    for semitones in (-12.0, 0.0, 7.5):
        hz = pitch.shift_semitones(pitch.fill_unvoiced(f0), semitones)
        t = device_pitch.shift_semitones(device_pitch.fill_unvoiced(torch.from_numpy(f0)), semitones)
        np.testing.assert_allclose(t.numpy(), hz, rtol=1e-12)
        np.testing.assert_array_equal(device_pitch.coarse_pitch(t).numpy(), pitch.coarse_pitch(hz))
    # The shift read from a device tensor (no recapture on a pitch change) is the same.
    shifted = device_pitch.shift_semitones(torch.from_numpy(f0), torch.tensor(3.0))
    np.testing.assert_allclose(shifted.numpy(), pitch.shift_semitones(f0, 3.0), rtol=1e-12)
