"""HuBERT/ContentVec from both checkpoint layouts reproduces hubert.npz."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import load_manifest, manifest_entries

from rvcd.dsp.content_loader import load_content_encoder
from rvcd.dsp.conv_layout import prepare

_META_KEYS = {"golden", "hidden_size", "layers", "final_dim"}


def _entries() -> list:
    return manifest_entries("hubert-manifest.json", lambda k, _: k not in _META_KEYS)


def _golden_file(golden) -> np.lib.npyio.NpzFile:
    name = load_manifest("hubert-manifest.json")["golden"].split(":")[0].strip()
    return np.load(golden / name)


@pytest.mark.parametrize("name", _entries())
def test_shape_matches_manifest(golden, name):
    manifest = load_manifest("hubert-manifest.json")
    enc = load_content_encoder(golden / name)
    assert enc.cfg.hidden_size == manifest["hidden_size"]
    assert enc.cfg.num_layers == manifest["layers"]
    assert enc.cfg.final_dim == manifest["final_dim"]


@pytest.mark.parametrize("name", _entries())
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("layout", ["plain", "channels-last"])
def test_features_match_reference(golden, name, version, layout):
    """As loaded, and as the live path runs it (`conv_layout.prepare`, fp32)."""
    data = _golden_file(golden)
    enc = load_content_encoder(golden / name)
    if layout == "channels-last":
        enc = prepare(enc, "cpu", torch.float32)
    with torch.no_grad():
        feats = enc.features(torch.from_numpy(data["audio"])[None], version)[0].numpy()
    want = data[version]
    assert feats.shape == want.shape
    np.testing.assert_allclose(feats, want, atol=1e-4 * max(1.0, float(np.abs(want).max())))


@pytest.mark.parametrize("name", _entries())
def test_perturbed_audio_changes_the_features(golden, name):
    data = _golden_file(golden)
    enc = load_content_encoder(golden / name)
    audio = data["audio"].copy()
    audio[::7] += 0.05
    with torch.no_grad():
        feats = enc.features(torch.from_numpy(audio)[None], "v2")[0].numpy()
    assert np.abs(feats - data["v2"]).max() > 1e-3
