"""CREPE and FCPE, run from the weights their wheels ship, reproduce f0-upstream.npz."""

from __future__ import annotations

import numpy as np
import pytest

from rvcd.dsp.f0_crepe import Crepe
from rvcd.dsp.f0_fcpe import Fcpe

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


def test_the_silent_gap_is_unvoiced(upstream):
    """The golden signal is silent from 0.60 s to 0.75 s: frames 62..73 at 10 ms."""
    gap = slice(63, 73)
    assert (Fcpe()(upstream["audio"])[gap] == 0).all()
    assert (Crepe("tiny")(upstream["audio"])[gap] == 0).all()
