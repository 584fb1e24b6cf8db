"""The torch resampler (the GPU path's) keeps soxr's quality and soxr's timing."""

from __future__ import annotations

import numpy as np
import pytest
import soxr
import torch

from rvcd.dsp.resample_quality import measure
from rvcd.dsp.torch_resample import SincResampler

RATES = [(48000, 16000), (44100, 16000), (40000, 48000), (32000, 48000), (16000, 48000)]


@pytest.mark.parametrize(("rate_in", "rate_out"), RATES)
def test_quality_matches_soxr(rate_in: int, rate_out: int) -> None:
    resampler = SincResampler.build(rate_in, rate_out)
    got = measure(lambda x: resampler(torch.from_numpy(x)).numpy(), rate_in, rate_out)
    soxr_hq = measure(lambda x: soxr.resample(x, rate_in, rate_out, quality="HQ"), rate_in, rate_out)
    assert got.passband_ripple_db <= max(0.005, soxr_hq.passband_ripple_db)
    assert got.worst_residual_db <= -120
    if soxr_hq.alias_rejection_db is not None:
        assert got.alias_rejection_db >= soxr_hq.alias_rejection_db - 3


@pytest.mark.parametrize(("rate_in", "rate_out"), RATES)
def test_a_voice_comes_out_as_soxr_puts_it(rate_in: int, rate_out: int) -> None:
    """Same length, same alignment: the streamer can take either."""
    rng = np.random.default_rng(1)
    t = np.arange(rate_in) / rate_in
    audio = sum(np.sin(2 * np.pi * 150 * k * t + rng.uniform(0, 6)) / k for k in range(1, 30))
    audio = (0.3 * audio / np.abs(audio).max()).astype(np.float32)
    got = SincResampler.build(rate_in, rate_out)(torch.from_numpy(audio)[None]).numpy()[0]
    expected = soxr.resample(audio, rate_in, rate_out, quality="HQ")
    assert got.shape == expected.shape
    inner = slice(len(got) // 10, -len(got) // 10)
    assert np.abs(got[inner] - expected[inner]).max() < 1e-4 * np.abs(expected).max()


def test_equal_rates_pass_through_and_bad_rates_are_refused() -> None:
    x = torch.randn(3, 100)
    assert SincResampler.build(48000, 48000)(x) is x
    with pytest.raises(ValueError, match="positive"):
        SincResampler.build(0, 16000)
