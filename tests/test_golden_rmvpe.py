"""RMVPE reproduces the reference mel, salience and f0 of every manifest entry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import load_manifest, rmvpe_entries

from rvcd.dsp.rmvpe import Rmvpe, decode_salience


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
    mel = est.log_mel(data["audio"])
    np.testing.assert_allclose(mel.numpy(), data["mel"], atol=1e-4)
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
