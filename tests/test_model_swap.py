"""Model hot-swap over OSC under continuous audio, and the models_dir security boundary."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from jack_rig import RATE, JackServer, Rig
from osc_probe import OscProbe
from test_safe_loading import _hostile_checkpoint
from test_streamer import _tone

from rvcd.daemon.config import parse_config
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
        "v1.pth": "256-d",
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
