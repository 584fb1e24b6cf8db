"""Model hot-swap over OSC under continuous audio, and the models_dir security boundary."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import torch
from jack_rig import RATE, JackServer, Rig
from osc_probe import OscProbe
from test_safe_loading import _hostile_checkpoint
from test_streamer import _tone

from rvcd.daemon.config import load_config, parse_config
from rvcd.daemon.service import Daemon
from rvcd.dsp import test_models

BLOCK = 0.2


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("swap")
    d = root / "models"
    d.mkdir()
    test_models.write_voice_model(d / "a.pth", "v2", 40000, True, seed=0)
    test_models.write_voice_model(d / "b.pth", "v2", 40000, True, n_speakers=2, seed=1)
    test_models.write_voice_model(d / "v1.pth", "v1", 40000, True, seed=2)
    test_models.write_index(d / "b.index", 768, rows=300)
    test_models.write_content_encoder(root / "hubert", "tiny", "v2")
    (root / "outside.pth").write_bytes((d / "a.pth").read_bytes())
    os.symlink(root / "outside.pth", d / "link.pth")
    (d / "notes.txt").write_text("not a model")
    return root


@pytest.fixture()
def rvc(models):
    server = JackServer()
    raw = {
        "jack": {"server_name": server.name},
        "engine": {
            "kind": "rvc",
            "model": str(models / "models" / "a.pth"),
            "hubert": str(models / "hubert"),
            "f0_method": "pm",
            "block": BLOCK,
            "extra": 0.3,
            "crossfade": 0.04,
            "headroom": 0.2,
        },
        "osc": {"port": 0},
        "log": {"stats_interval": 0},
        "models_dir": str(models / "models"),
    }
    d = Daemon(parse_config(raw, models))
    d.start()
    probe = OscProbe(d.osc.port)
    yield d, probe, server
    probe.close()
    d.stop()
    server.stop()


def _longest_silence(y: np.ndarray) -> int:
    quiet = np.abs(y) < 1e-4
    best = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        best = max(best, run)
    return best


def test_swap_under_continuous_audio_has_no_gap_and_no_click(rvc):
    d, probe, server = rvc
    rig = Rig(server.name)
    try:
        replies: list = []

        def swap():
            probe.send("/rvcd/model", "b.pth", "b.index")
            replies.extend(probe.replies(10.0, until=("/rvcd/model/loaded", "/rvcd/error")))

        x = _tone(160.0, 5.0)
        timer = threading.Timer(1.5, swap)
        timer.start()
        y = rig.play(x, tail_seconds=0.5)
        timer.join()
    finally:
        rig.close()
    assert any(a == "/rvcd/model/loaded" and args[0] == "b.pth" for a, args in replies), replies
    assert d.model_name() == "b.pth"
    assert d.n_speakers() == 2
    lat = d.latency_samples()
    active = y[lat + RATE // 2 : lat + len(x) - RATE // 4]
    assert _longest_silence(active) < BLOCK * RATE, "no gap longer than one block"
    jumps = np.abs(np.diff(active))
    assert jumps.max() < 0.5, "no click"
    assert np.sqrt(np.mean(active**2)) > 0.01


def test_failed_loads_leave_the_current_model_running(rvc, models, tmp_path):
    d, probe, _ = rvc
    marker = tmp_path / "pwned"
    _hostile_checkpoint(models / "models" / "evil.pth", marker)
    cases = {
        "/etc/passwd.pth": "absolute paths are refused",
        "../outside.pth": "'..' is refused",
        "link.pth": "resolves outside models_dir",
        "notes.txt": "only .pth files",
        "missing.pth": "no such file",
        "evil.pth": "refused",
        "v1.pth": "v1 models need layer 9",
    }
    for name, reason in cases.items():
        replies = probe.ask("/rvcd/model", name, timeout=15.0)
        errors = [args for a, args in replies if a == "/rvcd/error"]
        assert errors and reason in errors[0][1], (name, replies)
        assert d.model_name() == "a.pth"
    replies = probe.ask("/rvcd/model", "b.pth", "../b.index")
    assert any(a == "/rvcd/error" and "'..' is refused" in args[1] for a, args in replies)
    assert not marker.exists()
    assert _value_of(probe.ask("/rvcd/model"), "/rvcd/model") == ["a.pth"]


def _value_of(replies, address):
    return [args for a, args in replies if a == address][-1]


def test_a_newer_request_supersedes_a_queued_one(rvc):
    d, probe, _ = rvc
    probe.drain()
    for name in ("b.pth", "a.pth", "b.pth"):
        probe.send("/rvcd/model", name)
    replies = probe.replies(20.0)
    loaded = [args[0] for a, args in replies if a == "/rvcd/model/loaded"]
    superseded = [args for a, args in replies if a == "/rvcd/error" and "superseded" in args[1]]
    assert loaded[-1] == "b.pth"
    assert len(loaded) + len(superseded) == 3
    assert d.model_name() == "b.pth"


def test_peak_memory_is_reported(rvc):
    d, probe, _ = rvc
    replies = probe.ask("/rvcd/model", "b.pth", timeout=0.1)
    replies += probe.replies(15.0, until=("/rvcd/model/loaded",))
    loaded = [args for a, args in replies if a == "/rvcd/model/loaded"]
    assert loaded and loaded[0][2] > 50, "peak resident memory in MiB"
    report = d.swapper.last_report
    assert report["peak_mib"] >= report["rss_after_mib"] * 0.9
    assert report["load_s"] > 0


def _broken_model(src, dst, config=None, weight=None):
    """A copy of voice model `src` with config entries (index -> value) or one weight
    (name -> function of the tensor) replaced: valid as a file, not as a network."""
    ckpt = torch.load(src, weights_only=True)
    for i, value in (config or {}).items():
        ckpt["config"][i] = value
    for name, change in (weight or {}).items():
        ckpt["weight"][name] = change(ckpt["weight"][name])
    torch.save(ckpt, dst)
    return dst


BROKEN = {
    "zero_heads.pth": ({"config": {5: 0}}, "n_heads = 0"),
    "huge_channels.pth": ({"config": {3: 10**9}}, "hidden_channels = 1000000000"),
    "zero_upsample.pth": ({"config": {12: [0, 10, 2, 2]}}, "upsample rates [0, 10, 2, 2]"),
    "nan_output.pth": (
        {"weight": {"dec.conv_post.weight": lambda w: torch.full_like(w, float("nan"))}},
        "first block gives NaN",
    ),
}


def test_models_that_load_but_cannot_run_are_refused_and_the_loader_lives(rvc, models):
    d, probe, _ = rvc
    src = models / "models" / "a.pth"
    for name, (change, reason) in BROKEN.items():
        _broken_model(src, models / "models" / name, **change)
        replies = probe.ask("/rvcd/model", name, timeout=20.0)
        errors = [args[1] for a, args in replies if a == "/rvcd/error"]
        assert errors and reason in errors[0], (name, replies)
        assert d.model_name() == "a.pth"
    assert d.status()["load_failures"] == len(BROKEN)
    assert "load failures 4" in d._status_line()
    replies = probe.ask("/rvcd/model", "b.pth", timeout=0.1) + probe.replies(
        20.0, until=("/rvcd/model/loaded",)
    )
    assert any(a == "/rvcd/model/loaded" for a, _ in replies), "the loader still works"


def test_reload_onto_a_broken_model_keeps_the_running_one(models, tmp_path):
    server = JackServer()
    bad = _broken_model(models / "models" / "a.pth", tmp_path / "bad.pth", config={5: 0})
    path = tmp_path / "rvcd.yaml"
    text = (
        f"jack:\n  server_name: {server.name}\n"
        f"engine:\n  kind: rvc\n  model: {models / 'models' / 'a.pth'}\n  hubert: {models / 'hubert'}\n"
        f"  f0_method: pm\n  block: {BLOCK}\n  extra: 0.3\n  crossfade: 0.04\n  headroom: 0.2\n"
        "osc:\n  enabled: false\nlog:\n  stats_interval: 0\n"
    )
    path.write_text(text)
    d = Daemon(load_config(path))
    d.start()
    try:
        path.write_text(text.replace(str(models / "models" / "a.pth"), str(bad)))
        assert not d.reload()
        assert d.model_name() == "a.pth" and d.cfg.engine.model.name == "a.pth"
        assert d.status()["load_failures"] == 1
        rig = Rig(server.name)
        try:
            y = rig.play(_tone(220.0, 1.0))
        finally:
            rig.close()
        assert np.sqrt(np.mean(y**2)) > 0.01, "still converting"
    finally:
        d.stop()
        server.stop()


def test_stop_during_a_load_is_bounded(rvc, models):
    """The loader used to wait 30 s for a worker that had stopped."""
    d, _, _ = rvc
    d._stop.set()
    d._worker.join(timeout=5)
    replies = []
    d.request_model(models / "models" / "b.pth", None, "b.pth", lambda a, args: replies.append(a))
    time.sleep(2.0)  # loaded; now waiting for a worker that will never take it
    began = time.monotonic()
    d.stop()
    assert time.monotonic() - began < 3.0


def test_pitch_on_a_no_f0_model_is_answered_with_a_warning(rvc, models):
    d, probe, _ = rvc
    test_models.write_voice_model(models / "models" / "nof0.pth", "v2", 40000, False, seed=3)
    replies = probe.ask("/rvcd/model", "nof0.pth", timeout=0.1) + probe.replies(
        20.0, until=("/rvcd/model/loaded",)
    )
    assert any(a == "/rvcd/model/loaded" for a, _ in replies)
    replies = probe.ask("/rvcd/pitch", 4.0)
    assert any(a == "/rvcd/warning" and "takes no pitch" in args[1] for a, args in replies), replies
    replies = probe.ask("/rvcd/index_rate", 0.5)
    assert any(a == "/rvcd/warning" and "without a retrieval index" in args[1] for a, args in replies), (
        replies
    )


def test_a_models_own_preset_applies_at_the_swap_boundary(rvc, models):
    """b.preset.yaml beside b.pth: its pitch takes effect in the worker, right before the
    first block that the new voice converts."""
    d, probe, _ = rvc
    preset = models / "models" / "b.preset.yaml"
    preset.write_text("pitch: 7\nformant: 1.5\n")
    changes = []
    d.store.subscribe(lambda p: changes.append((p.pitch, threading.current_thread().name)))
    try:
        replies = probe.ask("/rvcd/model", "b.pth", timeout=0.1)
        replies += probe.replies(20.0, until=("/rvcd/model/loaded",))
        assert any(a == "/rvcd/model/loaded" for a, _ in replies)
        assert d.store.snapshot().pitch == 7.0 and d.store.snapshot().formant == 1.5
        assert changes[0] == (7.0, "rvcd-worker"), "set by the worker at the block boundary"
    finally:
        preset.unlink()


def test_models_are_listed_with_what_they_are(rvc):
    _, probe, _ = rvc
    probe.drain()
    probe.send("/rvcd/models")
    replies = probe.replies(30.0, until=("/rvcd/models/end",))
    listed = {args[0]: args[1:] for a, args in replies if a == "/rvcd/models"}
    assert listed["a.pth"] == ["v2", 40000, 1, 0]
    assert listed["b.pth"] == ["v2", 40000, 1, 1], "b.index is beside it"
    assert listed["link.pth"][0] == "unreadable" and "outside models_dir" in listed["link.pth"][-1]
    assert [args for a, args in replies if a == "/rvcd/models/end"] == [[len(listed)]]
