"""RMVPE reproduces the reference mel, salience and f0 of every manifest entry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import load_manifest, rmvpe_entries

from rvcd.dsp.rmvpe import Rmvpe, decode_salience


def _assert_log_mel_close(got: np.ndarray, want: np.ndarray) -> None:
    """Log-mel levels agree to 1e-4 (natural log) in bands within 40 dB of the loudest;
    the quieter bands hold the FFT's round-off, which differs between CPUs and FFT
    libraries (measured up to 4e-3 at 80 dB down on a Xeon with AMX), so there the
    linear magnitudes must agree to 1e-5 of the loudest."""
    assert got.shape == want.shape
    loud = want > want.max() - np.log(1e4)
    np.testing.assert_allclose(got[loud], want[loud], atol=1e-4)
    np.testing.assert_allclose(np.exp(got), np.exp(want), atol=1e-5 * np.exp(want).max())


@pytest.mark.parametrize("name", rmvpe_entries())
def test_rmvpe_matches_reference(golden, name):
    entry = load_manifest("manifest.json")[name]
    data = np.load(golden / entry["golden"])
    est = Rmvpe(golden / name, threshold=entry["threshold"])
    arch = entry["architecture"]
    assert est.net.shape.n_blocks == arch["n_blocks"]
    assert est.net.shape.n_gru == arch["n_gru"]
    assert est.net.shape.n_stages == arch["en_de_layers"]
    assert est.net.shape.n_inter == arch["inter_layers"]
    assert est.net.shape.base_channels == arch["en_out_channels"]
    _assert_log_mel_close(est.log_mel(data["audio"]).numpy(), data["mel"])
    sal = est.salience(torch.from_numpy(data["mel"]))
    np.testing.assert_allclose(sal, data["salience"], atol=1e-4)
    np.testing.assert_allclose(est(data["audio"]), data["f0"], atol=1e-2)
    np.testing.assert_allclose(decode_salience(data["salience"], 0.0), data["f0_thred0"], atol=1e-2)


@pytest.mark.parametrize("name", rmvpe_entries())
def test_rmvpe_threshold_decides_voicing(golden, name):
    entry = load_manifest("manifest.json")[name]
    data = np.load(golden / entry["golden"])
    sal = data["salience"]
    assert (decode_salience(sal, 1.0) == 0).all()
    assert (decode_salience(sal, 0.0) > 0).all()
