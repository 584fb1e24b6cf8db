"""Voice models reproduce the reference outputs of every manifest entry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import load_manifest, voice_entries

from rvcd.dsp.conv_layout import prepare
from rvcd.dsp.voice_model import load_voice_model

LAYOUTS = ["plain", "channels-last"]
"""The network as loaded, and as the live path runs it (`conv_layout.prepare`, fp32)."""


def _load(path, layout):
    model = load_voice_model(path)
    if layout == "channels-last":
        model.synth = prepare(model.synth, "cpu", torch.float32)
    return model


def _inputs(golden, name):
    entry = load_manifest("manifest.json")[name]
    data = np.load(golden / entry["golden"])
    phone = torch.from_numpy(data["phone"])
    return entry, data, phone, torch.tensor([phone.shape[1]]), torch.from_numpy(data["sid"])


def _infer(model, entry, data, phone, lengths, sid, **kwargs):
    pitch = torch.from_numpy(data["pitch"]) if model.f0 else None
    pitchf = torch.from_numpy(data["pitchf"]) if model.f0 else None
    torch.manual_seed(entry["seed_before_infer"])
    with torch.no_grad():
        return model.synth.infer(phone, lengths, pitch, pitchf, sid, **kwargs)


def _assert_audio_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    peak = float(np.abs(want).max())
    assert peak > 0
    err = float(np.abs(got - want).max())
    assert err < 1e-3 * peak, f"max abs error {err:.3g} vs peak {peak:.3g}"


@pytest.mark.parametrize("name", voice_entries())
def test_metadata_matches_manifest(golden, name):
    entry = load_manifest("manifest.json")[name]
    model = load_voice_model(golden / name)
    assert model.version == entry["version"]
    assert model.sample_rate == entry["sr"]
    assert model.f0 == bool(entry["f0"])
    assert model.meta.n_speakers == entry["n_speakers"]
    assert model.meta.config == entry["config"]


@pytest.mark.parametrize("name", voice_entries())
def test_text_encoder_matches_reference(golden, name):
    entry, data, phone, lengths, _ = _inputs(golden, name)
    model = load_voice_model(golden / name)
    pitch = torch.from_numpy(data["pitch"]) if model.f0 else None
    with torch.no_grad():
        m, logs, _ = model.synth.enc_p(phone, pitch, lengths)
    np.testing.assert_allclose(m.numpy(), data["enc_p_m"], atol=1e-4)
    np.testing.assert_allclose(logs.numpy(), data["enc_p_logs"], atol=1e-4)


@pytest.mark.parametrize("name", voice_entries())
@pytest.mark.parametrize("layout", LAYOUTS)
def test_full_inference_matches_reference(golden, name, layout):
    entry, data, phone, lengths, sid = _inputs(golden, name)
    model = _load(golden / name, layout)
    out = _infer(model, entry, data, phone, lengths, sid)
    np.testing.assert_allclose(out.z_p.numpy(), data["z_p_full"], atol=1e-4)
    audio = out.audio[0, 0].numpy()
    assert len(audio) == entry["audio_full_len"]
    _assert_audio_close(audio, data["audio_full"])


@pytest.mark.parametrize("name", voice_entries())
@pytest.mark.parametrize("layout", LAYOUTS)
def test_streaming_inference_matches_reference(golden, name, layout):
    entry, data, phone, lengths, sid = _inputs(golden, name)
    model = _load(golden / name, layout)
    out = _infer(model, entry, data, phone, lengths, sid, **entry["stream_kwargs"])
    np.testing.assert_allclose(out.z_p.numpy(), data["z_p_stream"], atol=1e-4)
    audio = out.audio[0, 0].numpy()
    assert len(audio) == entry["audio_stream_len"]
    _assert_audio_close(audio, data["audio_stream"])


@pytest.mark.parametrize("name", voice_entries())
def test_a_perturbed_weight_breaks_the_match(golden, name, tmp_path):
    """The comparison notices one changed tensor. The change must show whatever the
    weights: a model whose output saturates shrugs off a 5 % scale, but the output
    convolution (no bias, before the tanh) with its sign flipped flips the waveform."""
    ckpt = torch.load(golden / name, weights_only=True)
    key = "dec.conv_post.weight"
    ckpt["weight"][key] = -ckpt["weight"][key]
    torch.save(ckpt, tmp_path / "perturbed.pth")
    entry, data, phone, lengths, sid = _inputs(golden, name)
    model = load_voice_model(tmp_path / "perturbed.pth")
    audio = _infer(model, entry, data, phone, lengths, sid).audio[0, 0].numpy()
    with pytest.raises(AssertionError):
        _assert_audio_close(audio, data["audio_full"])
