"""Every estimator behind one interface: shape, measured pitch, defined output on bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import noisy_tone

from rvcd.dsp.pitch import make_estimator, methods, n_frames

ALL = ["rmvpe", "fcpe", "crepe", "crepe-tiny", "harvest", "dio", "pm"]
TRAINED = ["fcpe", "crepe", "crepe-tiny", "harvest", "dio", "pm"]
"""Estimators with real weights or no weights; rmvpe here has random test weights."""


@pytest.fixture(scope="module")
def estimators(tiny_models):
    rmvpe = tiny_models() / "rmvpe.pt"
    return {m: make_estimator(m, rmvpe_path=rmvpe) for m in ALL}


def test_every_method_is_registered():
    assert methods() == ALL


@pytest.mark.parametrize("method", ALL)
def test_output_shape_and_units(estimators, method):
    audio = noisy_tone(220.0, 0.73)
    f0 = estimators[method](audio)
    assert f0.shape == (n_frames(len(audio)),)
    assert np.isfinite(f0).all() and (f0 >= 0).all()


@pytest.mark.parametrize("method", TRAINED)
@pytest.mark.parametrize("hz", [120.0, 330.0])
def test_measured_pitch(estimators, method, hz):
    f0 = estimators[method](noisy_tone(hz, 1.0))[15:-15]
    assert (f0 > 0).mean() > 0.8, f"{method} called a steady tone unvoiced"
    assert np.median(f0[f0 > 0]) == pytest.approx(hz, rel=0.02)


@pytest.mark.parametrize("method", TRAINED)
def test_silence_is_unvoiced(estimators, method):
    assert (estimators[method](np.zeros(8000, dtype=np.float32)) == 0).mean() > 0.95


@pytest.mark.parametrize("method", ALL)
def test_bad_input_is_a_clear_error(estimators, method):
    est = estimators[method]
    with pytest.raises(ValueError, match="empty"):
        est(np.zeros(0, dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        est(np.full(1600, np.inf, dtype=np.float32))
    with pytest.raises(ValueError, match="mono"):
        est(np.zeros((2, 1600), dtype=np.float32))


@pytest.mark.parametrize("method", ALL)
def test_clipped_and_tiny_input_gives_defined_output(estimators, method):
    loud = np.clip(noisy_tone(200.0, 0.5) * 20, -4, 4)
    assert np.isfinite(estimators[method](loud)).all()
    assert estimators[method](np.zeros(10, dtype=np.float32)).shape == (1,)


def test_the_listed_estimators_are_the_registered_ones():
    from rvcd.dsp.pitch import METHOD_NAMES, methods

    assert methods() == list(METHOD_NAMES)
