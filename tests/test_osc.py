"""The OSC surface against a running daemon: python-osc on loopback, real jackd."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from jack_rig import RATE, JackServer, Rig
from osc_probe import OscProbe
from test_streamer import _envelope_peak_hz, _median_f0, _tone, _vowel

from rvcd.daemon.config import parse_config
from rvcd.daemon.service import Daemon


@pytest.fixture(scope="module")
def server():
    srv = JackServer()
    yield srv
    srv.stop()


def _daemon(server, tmp_path, engine=None, **osc):
    raw = {
        "jack": {"server_name": server.name},
        "engine": {"kind": "world", "block": 0.1, "crossfade": 0.02, "extra": 0.1, "headroom": 0.1},
        "osc": {"port": 0, **osc},
        "log": {"stats_interval": 0},
        "models_dir": str(tmp_path),
    }
    if engine:
        raw["engine"].update(engine)
    d = Daemon(parse_config(raw, tmp_path))
    d.start()
    return d


@pytest.fixture()
def world(server, tmp_path):
    d = _daemon(server, tmp_path)
    probe = OscProbe(d.osc.port)
    yield d, probe
    probe.close()
    d.stop()


def _value(replies, address):
    values = [args for a, args in replies if a == address]
    assert values, f"no {address} reply in {replies}"
    return values[-1]


@pytest.mark.parametrize(
    ("name", "sent", "expected"),
    [
        ("pitch", 5.5, 5.5),
        ("formant", -3, -3.0),
        ("index_rate", 0.25, 0.25),
        ("gate", -50, -50.0),
        ("rms_mix", 0.5, 0.5),
    ],
)
def test_float_parameters_set_and_read_back(world, name, sent, expected):
    d, probe = world
    assert _value(probe.ask(f"/rvcd/{name}", sent), f"/rvcd/{name}")[0] == pytest.approx(expected)
    assert getattr(d.store.snapshot(), name) == pytest.approx(expected)
    assert _value(probe.ask(f"/rvcd/{name}"), f"/rvcd/{name}")[0] == pytest.approx(expected)


def test_out_of_range_is_clamped_with_a_warning(world):
    d, probe = world
    replies = probe.ask("/rvcd/pitch", 40.0)
    assert any(a == "/rvcd/warning" and "clamped to 24" in args[1] for a, args in replies)
    assert _value(replies, "/rvcd/pitch")[0] == 24.0
    assert d.store.snapshot().pitch == 24.0


def test_types_are_coerced_as_daws_send_them(world):
    d, probe = world
    assert _value(probe.ask("/rvcd/pitch", 7), "/rvcd/pitch")[0] == 7.0
    assert _value(probe.ask("/rvcd/pitch", "3.5"), "/rvcd/pitch")[0] == 3.5
    assert _value(probe.ask("/rvcd/bypass", True), "/rvcd/bypass") == [1]
    assert _value(probe.ask("/rvcd/bypass", 0.0), "/rvcd/bypass") == [0]
    assert _value(probe.ask("/rvcd/bypass", "on"), "/rvcd/bypass") == [1]
    assert _value(probe.ask("/rvcd/speaker", 2.0), "/rvcd/speaker") == [2]
    assert _value(probe.ask("/rvcd/f0_method", "harvest"), "/rvcd/f0_method") == ["harvest"]
    assert d.store.snapshot().f0_method == "harvest"


def test_normalised_variants(world):
    d, probe = world
    assert _value(probe.ask("/rvcd/pitch/norm", 0.75), "/rvcd/pitch/norm")[0] == pytest.approx(0.75)
    assert d.store.snapshot().pitch == pytest.approx(12.0)
    probe.ask("/rvcd/formant/norm", 0.0)
    assert d.store.snapshot().formant == pytest.approx(-12.0)


@pytest.mark.parametrize(
    ("address", "args", "reason"),
    [
        ("/rvcd/nonsense", [1.0], "unknown address"),
        ("/other/pitch", [1.0], "unknown address"),
        ("/rvcd/speaker/norm", [0.5], "unknown address"),
        ("/rvcd/pitch", ["abc"], "expected a number"),
        ("/rvcd/pitch", [1.0, 2.0], "expected 0..1 argument(s), got 2"),
        ("/rvcd/f0_method", ["yin"], "unknown f0 method"),
        ("/rvcd/f0_method", [3], "expected a string"),
        ("/rvcd/bypass", ["maybe"], "expected on/off"),
        ("/rvcd/status", [1], "expected 0 argument(s)"),
    ],
)
def test_bad_requests_get_an_error_and_change_nothing(world, address, args, reason):
    d, probe = world
    before = d.store.snapshot()
    replies = probe.ask(address, *args)
    errors = [a for addr, a in replies if addr == "/rvcd/error"]
    assert errors and errors[0][0] == address and reason in errors[0][1], replies
    assert d.store.snapshot() == before


def test_status_reflects_every_change(world):
    d, probe = world
    for address, value in (
        ("/rvcd/pitch", 4.0),
        ("/rvcd/formant", 2.0),
        ("/rvcd/gate", -60.0),
        ("/rvcd/bypass", 1),
    ):
        probe.ask(address, value)
    args = _value(probe.ask("/rvcd/status"), "/rvcd/status")
    status = dict(zip(args[::2], args[1::2], strict=True))
    assert (
        status["pitch"] == 4.0
        and status["formant"] == 2.0
        and status["gate"] == -60.0
        and status["bypass"] == 1
    )
    for key in (
        "engine",
        "model",
        "latency_ms",
        "load",
        "p50_ms",
        "p99_ms",
        "xruns",
        "underruns",
        "uptime_s",
    ):
        assert key in status
    assert status["engine"] == "world"
    assert status["latency_ms"] == pytest.approx(1000 * d.latency_samples() / RATE, rel=1e-3)


def test_bundle_messages_are_handled_in_order(world):
    d, probe = world
    probe.drain()
    probe.send_bundle(("/rvcd/pitch", 3.0), ("/rvcd/pitch", 7.0), ("/rvcd/formant", 1.0))
    replies = probe.replies(1.0)
    assert [args[0] for a, args in replies if a == "/rvcd/pitch"] == [3.0, 7.0]
    assert d.store.snapshot().pitch == 7.0 and d.store.snapshot().formant == 1.0


def test_subscribe_sends_meters_until_unsubscribed(world):
    _, probe = world
    probe.ask("/rvcd/subscribe")
    meters = [args for a, args in probe.replies(1.0) if a == "/rvcd/meters"]
    assert len(meters) >= 5
    in_db, out_db, latency_ms, load = meters[-1]
    assert latency_ms > 0 and in_db <= 0 and out_db <= 0 and load >= 0
    assert _value(probe.ask("/rvcd/unsubscribe"), "/rvcd/unsubscribe") == [1]
    time.sleep(0.3)
    probe.drain()
    assert not [a for a, _ in probe.replies(0.5) if a == "/rvcd/meters"]


def _change_while_playing(
    d: Daemon, rig: Rig, probe: OscProbe, x: np.ndarray, address: str, value: float
) -> tuple[np.ndarray, np.ndarray]:
    """Play `x` (3 s) and send `address value` 1.2 s into it; returns the recorded output
    before the change and from two blocks (0.1 s each) after it was sent: a change must
    reach the output within two blocks plus the latency."""
    timer = threading.Timer(1.2, lambda: probe.send(address, value))
    timer.start()
    y = rig.play(x)
    timer.join()
    lat = d.latency_samples()
    block = int(0.1 * RATE)
    before = y[lat + RATE // 5 : lat + int(1.1 * RATE)]
    after = y[lat + int(1.2 * RATE) + 2 * block + RATE // 10 : lat + len(x) - RATE // 10]
    return before, after


def test_pitch_change_is_audible_within_two_blocks(server, tmp_path):
    d = _daemon(server, tmp_path)
    rig = Rig(server.name)
    probe = OscProbe(d.osc.port)
    try:
        before, after = _change_while_playing(d, rig, probe, _tone(180.0, 3.0), "/rvcd/pitch", 12.0)
        assert _median_f0(before) == pytest.approx(180.0, rel=0.02)
        assert _median_f0(after) == pytest.approx(360.0, rel=0.02)
    finally:
        probe.close()
        rig.close()
        d.stop()


def test_formant_change_moves_the_envelope_within_two_blocks(server, tmp_path):
    d = _daemon(server, tmp_path)
    rig = Rig(server.name)
    probe = OscProbe(d.osc.port)
    try:
        before, after = _change_while_playing(d, rig, probe, _vowel(3.0), "/rvcd/formant", 7.0)
        ratio = _envelope_peak_hz(after) / _envelope_peak_hz(before)
        assert ratio == pytest.approx(2 ** (7 / 12), rel=0.1), "the envelope moved up 7 semitones"
        assert _median_f0(after) == pytest.approx(_median_f0(before), rel=0.02), "the pitch stayed"
    finally:
        probe.close()
        rig.close()
        d.stop()


def test_allowed_senders_are_enforced(server, tmp_path):
    d = _daemon(server, tmp_path, allowed_senders=["127.0.0.2"])
    probe = OscProbe(d.osc.port)
    try:
        assert probe.ask("/rvcd/pitch", 5.0, timeout=0.5) == []
        assert d.store.snapshot().pitch == 0.0
        assert d.osc.counters.refused_senders >= 1
    finally:
        probe.close()
        d.stop()


def test_malformed_oversized_and_floods_never_stall_audio(tmp_path):
    # A realtime server, as on a real rig. xruns are not asserted: they depend on what
    # else the machine runs; benchmarks/soak.py measures them.
    server = JackServer(realtime=True)
    d = _daemon(server, tmp_path)
    rig = Rig(server.name)
    probe = OscProbe(d.osc.port)
    try:
        # The flood comes from another process, as it would on a real network.
        attack = (
            "import socket, sys\n"
            "from pythonosc.osc_message_builder import OscMessageBuilder\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "target = ('127.0.0.1', int(sys.argv[1]))\n"
            "for i in range(3000):\n"
            "    if i % 3 == 0:\n"
            "        s.sendto(b'\\x00garbage' * (i % 7 + 1), target)\n"
            "    elif i % 3 == 1:\n"
            "        s.sendto(b'/rvcd/pitch\\x00' + b'x' * 60000, target)\n"
            "    else:\n"
            "        b = OscMessageBuilder('/rvcd/pitch')\n"
            "        b.add_arg(float(i % 24))\n"
            "        s.sendto(b.build().dgram, target)\n"
        )
        before = d.status()["underruns"]
        attacker = subprocess.Popen([sys.executable, "-c", attack, str(d.osc.port)])
        y = rig.play(_tone(200.0, 2.0))
        attacker.wait(timeout=60)
        lat = d.latency_samples()
        played = y[lat + RATE // 5 : lat + 2 * RATE - RATE // 5]
        assert np.sqrt(np.mean(played**2)) > 0.05, "audio kept flowing"
        c = d.osc.counters
        assert c.malformed > 0 and c.oversized > 0
        assert c.received == c.accepted + c.malformed + c.oversized + c.flooded + c.refused_senders
        assert d.status()["underruns"] == before
        probe.drain()
        time.sleep(0.5)
        assert _value(probe.ask("/rvcd/pitch", 1.0), "/rvcd/pitch")[0] == 1.0, "still answering"
    finally:
        probe.close()
        rig.close()
        d.stop()
        server.stop()
