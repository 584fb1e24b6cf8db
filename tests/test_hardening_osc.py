"""Hostile and careless OSC traffic against a running daemon (real jackd, real UDP)."""

from __future__ import annotations

import logging
import random
import socket
import struct
import time

import numpy as np
import pytest
from jack_rig import RATE, JackServer, Rig
from osc_probe import OscProbe, build
from test_osc import _daemon, _value
from test_streamer import _tone

from rvcd.control import osc_server
from rvcd.control.osc_server import MAX_SUBSCRIPTIONS_PER_HOST, OscBindError, bind_socket
from rvcd.control.osc_wire import MAX_MESSAGES, MalformedPacketError, split_messages
from rvcd.daemon.config import ConfigError, parse_config


@pytest.fixture(scope="module")
def server():
    srv = JackServer()
    yield srv
    srv.stop()


@pytest.fixture()
def world(server, tmp_path):
    d = _daemon(server, tmp_path)
    probe = OscProbe(d.osc.port)
    yield d, probe
    probe.close()
    d.stop()


def _bundle(*elements: bytes) -> bytes:
    out = b"#bundle\x00" + struct.pack(">Q", 1)
    for e in elements:
        out += struct.pack(">i", len(e)) + e
    return out


def _status_answers(probe: OscProbe, timeout: float = 1.0) -> bool:
    return any(a == "/rvcd/status" for a, _ in probe.ask("/rvcd/status", timeout=timeout))


def test_a_negative_element_size_is_dropped_and_osc_keeps_answering(world, caplog):
    d, probe = world
    packet = b"#bundle\x00" + struct.pack(">Q", 1) + struct.pack(">i", -4) + b"abcd"
    assert len(packet) == 24
    cpu0 = time.process_time()
    with caplog.at_level(logging.DEBUG):
        for _ in range(20):
            probe.send_raw(packet)
        assert _status_answers(probe), "still answering after the 24-byte packet"
        time.sleep(0.5)
    assert d.osc.counters.malformed_kinds["bad element size"] == 20
    # Before: the OSC thread spun at 100 % CPU and logged 5 MB/s.
    assert time.process_time() - cpu0 < 1.0
    assert len(caplog.text) < 20_000


def test_deeply_nested_bundles_are_refused_without_tracebacks(world, caplog):
    d, probe = world
    packet = build("/rvcd/pitch", 3.0).dgram
    for _ in range(400):
        packet = _bundle(packet)
    with caplog.at_level(logging.DEBUG):
        for _ in range(10):
            probe.send_raw(packet)
        assert _status_answers(probe)
    assert d.osc.counters.malformed_kinds["nested too deep"] == 10
    assert d.store.snapshot().pitch == 0.0
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text
    # Two levels are fine.
    probe.send_raw(_bundle(_bundle(build("/rvcd/pitch", 3.0).dgram)))
    assert _value(probe.replies(1.0, until=("/rvcd/pitch",)), "/rvcd/pitch") == [3.0]


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", "empty"),
        (b"/rvcd/pitch!", "unterminated string"),
        (b"/rvcd/pitch\x00,f\x00\x00", "truncated"),
        (b"/rvcd/pitch\x00,X\x00\x00", "unsupported type tag"),
        (b"/rvcd/pitch\x00,[]\x00", "unsupported type tag"),
        (b"/rvcd/\xff\xfe\x00\x00\x00\x00,f\x00\x00\x00\x00\x00\x00", "bad string"),
        (b"rvcd/p\x00\x00,f\x00\x00\x00\x00\x00\x00", "bad address"),
        (b"/a\x00\x00p\x00\x00\x00", "bad type tags"),
        (b"/a\x00\x00,b\x00\x00\xff\xff\xff\xf0", "bad blob size"),
        (b"/a\x00\x00,i\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00", "trailing bytes"),
        (b"#bundle\x00\x00\x00", "truncated"),
        (_bundle(*[build("/rvcd/status").dgram] * (MAX_MESSAGES + 1)), "too many messages"),
        (b"/a\x00\x00," + b"i" * 40 + b"\x00\x00\x00", "too many arguments"),
    ],
)
def test_malformed_datagrams_are_named(data, kind):
    with pytest.raises(MalformedPacketError) as info:
        split_messages(data)
    assert info.value.kind == kind


def test_well_formed_datagrams_pass_unchanged():
    msg = build("/rvcd/pitch", 2.5).dgram
    assert split_messages(msg) == [msg]
    blob = build("/rvcd/x", b"\x01\x02\x03", "s", 7, True).dgram
    assert split_messages(_bundle(msg, blob)) == [msg, blob]


def test_bundles_count_as_messages_and_a_flood_does_not_starve_others(world):
    d, probe = world
    flooder = OscProbe(d.osc.port)
    try:
        bundle = _bundle(*[build("/rvcd/status").dgram] * MAX_MESSAGES)
        answered = 0
        began = time.monotonic()
        for i in range(400):
            flooder.send_raw(bundle)
            if i % 40 == 20:
                answered += _status_answers(probe, timeout=0.5)
        elapsed = time.monotonic() - began
        time.sleep(0.3)
        replies = len(flooder.replies(0.5))
        assert answered == 10, "the normal client got every answer during the flood"
        allowed = osc_server.BURST_MESSAGES + osc_server.MESSAGES_PER_SECOND * (elapsed + 1)
        assert replies <= allowed, f"{replies} replies to the flooder in {elapsed:.1f} s"
        assert d.osc.counters.flooded > 300
    finally:
        flooder.close()


def test_an_integer_out_of_range_is_refused_and_replies_never_break(world):
    d, probe = world
    err = _value(probe.ask("/rvcd/speaker", 2147483648.0), "/rvcd/error")
    assert "32-bit" in err[1]
    assert _status_answers(probe)
    replies = probe.ask("/rvcd/speaker", 70000)
    assert _value(replies, "/rvcd/speaker") == [65535]
    assert "clamped" in _value(replies, "/rvcd/warning")[1]
    assert _status_answers(probe)
    # A stored value too big for OSC's 32-bit int is sent as a 64-bit one, not dropped.
    d.store.set("speaker", 2**40)
    assert _value(probe.ask("/rvcd/speaker"), "/rvcd/speaker") == [2**40]
    assert _status_answers(probe)


def test_subscribers_are_capped_per_host_oldest_evicted(world):
    d, probe = world
    ports = list(range(20000, 20000 + 3 * MAX_SUBSCRIPTIONS_PER_HOST))
    for port in ports:
        probe.send("/rvcd/subscribe", port)
        probe.replies(0.05, until=("/rvcd/subscribe",))
    kept = sorted(p for _, p in d.osc.subscriptions)
    assert kept == ports[-MAX_SUBSCRIPTIONS_PER_HOST:]
    assert d.osc.counters.subscriptions_evicted == len(ports) - MAX_SUBSCRIPTIONS_PER_HOST


def test_drops_are_reported_in_status_log_and_systemd(world, caplog, monkeypatch):
    d, probe = world
    probe.send_raw(b"\x00garbage")
    probe.send_raw(b"/rvcd/pitch\x00" + b"x" * 9000)
    assert _status_answers(probe)
    status = dict(zip(*[iter(_value(probe.ask("/rvcd/status"), "/rvcd/status"))] * 2, strict=True))
    assert status["osc_malformed"] == 1 and status["osc_oversized"] == 1
    assert "osc malformed 1" in d._status_line()
    monkeypatch.setattr(osc_server, "REPORT_EVERY_S", 0.1)
    with caplog.at_level(logging.WARNING, logger="rvcd.osc"):
        time.sleep(0.5)
    assert "1 malformed datagrams" in caplog.text and "bad address" in caplog.text


def test_the_control_port_cannot_be_taken_over(world):
    d, _ = world
    with pytest.raises(OscBindError, match=rf"port {d.osc.port}.*osc\.port"):
        bind_socket("127.0.0.1", d.osc.port)
    thief = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with pytest.raises(OSError):
        thief.bind(("127.0.0.1", d.osc.port))
    thief.close()


def test_senders_by_name_and_ipv6(server, tmp_path):
    d = _daemon(server, tmp_path, allowed_senders=["localhost"])
    probe = OscProbe(d.osc.port)
    try:
        assert _value(probe.ask("/rvcd/pitch", 2.0), "/rvcd/pitch") == [2.0]
    finally:
        probe.close()
        d.stop()
    with pytest.raises(ConfigError, match="osc.allowed_senders"):
        parse_config({"osc": {"allowed_senders": ["no-such-host.invalid"]}}, tmp_path)
    d = _daemon(server, tmp_path, bind="::1")
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.settimeout(2)
    try:
        sock.sendto(build("/rvcd/status").dgram, ("::1", d.osc.port))
        assert b"/rvcd/status" in sock.recv(65536)
    finally:
        sock.close()
        d.stop()


def _mutations(rng: random.Random, valid: list[bytes]) -> bytes:
    base = bytearray(rng.choice(valid))
    kind = rng.randrange(6)
    if kind == 0:  # random bytes
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 80)))
    if kind == 1:  # flip bytes
        for _ in range(rng.randrange(1, 4)):
            base[rng.randrange(len(base))] = rng.getrandbits(8)
    elif kind == 2:  # truncate
        del base[rng.randrange(1, len(base)) :]
    elif kind == 3 and base.startswith(b"#bundle"):  # corrupt an element size
        struct.pack_into(">i", base, 16, rng.choice([-4, -1, 0, 3, 2**31 - 1, len(base)]))
    elif kind == 4:  # corrupt the type tags
        comma = base.find(b",")
        if comma > 0:
            base[comma + 1 : comma + 2] = rng.choice([b"X", b"[", b"]", b"b", b"s", b"\x00"])
    else:  # nest
        for _ in range(rng.randrange(1, 6)):
            base = bytearray(_bundle(bytes(base)))
    return bytes(base)


def test_fuzzed_datagrams_while_audio_flows(tmp_path):
    """A few thousand random and mutated datagrams: the daemon keeps answering, audio
    keeps flowing, the OSC thread's CPU stays bounded."""
    server = JackServer()
    d = _daemon(server, tmp_path)
    rig = Rig(server.name)
    probe = OscProbe(d.osc.port)
    fuzzer = OscProbe(d.osc.port)
    rng = random.Random(1234)
    valid = [
        build("/rvcd/pitch", 3.0).dgram,
        build("/rvcd/formant", 1.0).dgram,
        build("/rvcd/status").dgram,
        build("/rvcd/f0_method", "harvest").dgram,
        build("/rvcd/model", "x", "y").dgram,
        _bundle(build("/rvcd/pitch", 1.0).dgram, build("/rvcd/speaker", 1).dgram),
        _bundle(_bundle(build("/rvcd/gate", -50.0).dgram)),
    ]
    try:
        import threading

        done = threading.Event()
        sent = [0]

        def fuzz() -> None:
            while not done.is_set() and sent[0] < 5000:
                fuzzer.send_raw(_mutations(rng, valid))
                sent[0] += 1
                if sent[0] % 50 == 0:
                    time.sleep(0.005)

        before = d.status()["underruns"]
        cpu0 = time.process_time()
        t = threading.Thread(target=fuzz)
        t.start()
        y = rig.play(_tone(200.0, 3.0))
        done.set()
        t.join()
        cpu = time.process_time() - cpu0
        lat = d.latency_samples()
        played = y[lat + RATE // 5 : lat + 3 * RATE - RATE // 5]
        assert np.sqrt(np.mean(played**2)) > 0.05, "audio kept flowing"
        assert d.status()["underruns"] == before
        assert sent[0] >= 2000
        c = d.osc.counters
        assert c.malformed > 100
        assert c.received == c.accepted + c.malformed + c.oversized + c.flooded + c.refused_senders
        assert c.internal_errors == 0
        # The whole process (audio, WORLD conversion, OSC, fuzzer thread) over ~3.5 s.
        assert cpu < 3.5 * 2, f"{cpu:.1f} s of CPU"
        probe.drain()
        time.sleep(0.3)
        assert _value(probe.ask("/rvcd/pitch", 1.0), "/rvcd/pitch") == [1.0], "still answering"
    finally:
        probe.close()
        fuzzer.close()
        rig.close()
        d.stop()
        server.stop()
