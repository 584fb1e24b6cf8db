"""rvcd as a real JACK client: ports, audio through the WORLD default, bypass, latency,
late engines, a server restart, and configuration errors."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import jack
import numpy as np
import pytest
from jack_rig import PERIOD, RATE, JackServer, Rig, delay_of, port_appears, wait_until
from osc_probe import OscProbe
from test_streamer import _median_f0, _tone

from rvcd.daemon import service
from rvcd.daemon.config import load_config
from rvcd.daemon.jack_latency import CAPTURE, get_range
from rvcd.daemon.service import Daemon, StartupInterrupted
from rvcd.dsp.engine_world import WorldEngine
from rvcd.dsp.limiter import TruePeakLimiter, true_peak_db

ROOT = Path(__file__).resolve().parent.parent
RVCD = [sys.executable, "-m", "rvcd.daemon.cli"]
HEADROOM = 0.2
"""Seconds the worker may run late before a block plays dry: ample for the WORLD engine's
~30 ms per 0.1 s block, so that tests about the conversion survive a busy machine."""


@pytest.fixture()
def server():
    srv = JackServer()
    yield srv
    srv.stop()


def _config(tmp_path: Path, server: JackServer, extra: str = "") -> Path:
    path = tmp_path / "rvcd.yaml"
    path.write_text(
        f"""
jack:
  server_name: {server.name}
engine:
  kind: world
  block: 0.1
  crossfade: 0.02
  extra: 0.1
  headroom: {HEADROOM}
osc:
  enabled: false
log:
  stats_interval: 0
{extra}
"""
    )
    return path


@pytest.fixture()
def daemon(tmp_path, server):
    d = Daemon(load_config(_config(tmp_path, server)))
    d.start()
    rig = Rig(server.name)
    yield d, rig
    rig.close()
    d.stop()


def _take(
    d: Daemon, rig: Rig, x: np.ndarray, tries: int = 3, converted: bool = False
) -> tuple[np.ndarray, int]:
    """Play `x` and record it; returns the recording and the xruns JACK reported during
    it. In an xrun JACK skips some clients for a cycle and not others, which shifts a
    recording by whole periods, so a take with xruns is played again, up to `tries`.
    With `converted`, a take in which the worker was late (dry output) is played again
    too, for tests about what the engine does rather than about timing."""
    for _ in range(tries):
        before = d.status()
        y = rig.play(x)
        after = d.status()
        xruns = after["xruns"] - before["xruns"]
        late = converted and after["underruns"] > before["underruns"]
        if xruns == 0 and not late:
            break
    return y, xruns


def _dry_fraction(y: np.ndarray, x: np.ndarray, lat: int, xruns: int) -> float:
    """Share of `x` that comes back unchanged `lat` samples later, in 10 ms pieces; with
    xruns in the take a piece may come back up to `xruns` periods early or late."""
    piece = RATE // 100
    shifts = [k * PERIOD for k in range(-xruns, xruns + 1)]
    dry = 0
    for start in range(0, len(x) - piece + 1, piece):
        want = x[start : start + piece]
        dry += any(
            np.allclose(y[lat + start + s : lat + start + s + piece], want, atol=1e-6)
            for s in shifts
            if lat + start + s >= 0
        )
    return dry / (len(x) // piece)


def test_ports_exist_and_latency_is_reported(daemon, server):
    d, _ = daemon
    probe = jack.Client("probe", servername=server.name, no_start_server=True)
    try:
        names = {p.name for p in probe.get_ports("rvcd:")}
        assert names == {"rvcd:in_1", "rvcd:out_1"}
    finally:
        probe.close()
    block, crossfade, search = int(0.1 * RATE), int(0.02 * RATE), RATE // 100
    assert d.latency_samples() == block + 2 * server.period + int(HEADROOM * RATE) + crossfade + search


def test_world_default_plus_12_semitones_doubles_f0(daemon):
    d, rig = daemon
    d.store.set("pitch", 12)
    time.sleep(0.5)
    x = _tone(180.0, 2.0)
    y, _ = _take(d, rig, x, converted=True)
    lat = d.latency_samples()
    steady = y[lat + RATE // 4 : lat + len(x) - RATE // 4]
    assert _median_f0(steady) / 180.0 == pytest.approx(2.0, rel=0.02)


def test_bypass_returns_the_input_bit_exact_after_the_latency(daemon):
    d, rig = daemon
    d.store.set("bypass", True)
    time.sleep(0.5)
    x = (np.random.default_rng(3).standard_normal(RATE) * 0.1).astype(np.float32)
    y, _ = _take(d, rig, x)
    lat = d.latency_samples()
    np.testing.assert_array_equal(y[lat : lat + len(x)], x)


@pytest.mark.parametrize("bypass", [True, False])
def test_measured_delay_equals_reported_latency(daemon, bypass):
    d, rig = daemon
    d.store.set("bypass", bypass)
    time.sleep(0.5)
    # Tone bursts of irregular lengths: the delay is read from the energy envelopes,
    # which a vocoder preserves even where it does not preserve waveform phase.
    gate = np.zeros(int(1.5 * RATE), dtype=np.float32)
    for start, length in ((0.1, 0.12), (0.35, 0.05), (0.5, 0.3), (0.95, 0.08), (1.15, 0.2)):
        gate[int(start * RATE) : int((start + length) * RATE)] = 1.0
    x = _tone(150.0, 1.5) * gate
    y, xruns = _take(d, rig, x)
    measured = delay_of(_envelope(x), _envelope(y), 2 * d.latency_samples())
    search = RATE // 100
    skipped = xruns * PERIOD  # cycles a client may have missed when no take was clean
    # What DAWs compensate: the capture latency JACK reports on rvcd:out_1 (the rig's
    # player, feeding in_1, adds none).
    probe = jack.Client("latency-probe", servername=d.cfg.jack.server_name, no_start_server=True)
    try:
        reported = get_range(probe.get_port_by_name("rvcd:out_1"), CAPTURE)
    finally:
        probe.close()
    assert reported == (d.latency_samples(), d.latency_samples())
    if bypass:
        assert abs(measured - reported[0]) <= PERIOD + skipped
        assert abs(measured - d.latency_samples()) <= skipped
    else:
        # SOLA may align the converted audio up to one search window (10 ms) earlier, and
        # WORLD's minimum-phase resynthesis peaks about 2 ms after each pulse (measured
        # offline: 88 samples at 48 kHz).
        lat = d.latency_samples()
        assert lat - search - skipped <= measured <= lat + 2 * RATE // 1000 + skipped


def _envelope(x: np.ndarray) -> np.ndarray:
    """Energy envelope over 1 ms, mean removed."""
    env = np.convolve(x.astype(np.float64) ** 2, np.ones(RATE // 1000), mode="same")
    return env - env.mean()


class SlowEngine(WorldEngine):
    """WORLD plus a per-block sleep (seconds), or a hang until `release` is set: a
    stand-in for an engine that is late, or stuck."""

    def __init__(self) -> None:
        super().__init__()
        self.delay = 0.0
        self.release = threading.Event()
        self.release.set()

    def fork(self):
        return self

    def convert(self, window, params, timings):
        self.release.wait()
        time.sleep(self.delay)
        return window[-self.tail :].copy()


def test_late_engine_plays_dry_counts_underruns_and_recovers(tmp_path, server):
    """The callback never waits for the worker: with the engine late, or stuck for the
    whole take, the output is the dry input at the declared latency. (JACK's xrun count
    is not asserted: on a shared machine it depends on everything else running;
    benchmarks/soak.py measures it.)"""
    engine = SlowEngine()
    d = Daemon(load_config(_config(tmp_path, server)), engine=engine)
    d.start()
    rig = Rig(server.name)
    try:
        x = (np.random.default_rng(4).standard_normal(2 * RATE) * 0.1).astype(np.float32)
        lat = d.latency_samples()
        engine.delay = 0.3
        y, xruns = _take(d, rig, x)
        assert d.status()["underruns"] > 10
        # Late blocks are replaced by the dry input delayed by the declared latency (the
        # blocks the engine still delivers on time are converted).
        assert _dry_fraction(y, x, lat, xruns) > 0.8
        engine.delay = 0.0
        engine.release.clear()
        time.sleep(0.5)
        y, xruns = _take(d, rig, x)
        assert _dry_fraction(y, x, lat, xruns) > 0.8, "a stuck worker leaves the output dry, not silent"
        engine.release.set()
        time.sleep(1.0)
        before = d.status()["underruns"]
        rig.play(x)
        assert d.status()["underruns"] == before, "no underruns once the engine is fast again"
    finally:
        engine.release.set()
        rig.close()
        d.stop()


def _spawn(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*RVCD, "run", "--config", str(config)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def _wait_for_ports(server: str) -> None:
    assert port_appears(server, "rvcd:out_1"), "rvcd's ports did not appear"


def _tone_level_through(server: JackServer) -> float:
    """RMS of what comes out of rvcd:out_1 while a 1 s 200 Hz tone goes in."""
    rig = Rig(server.name)
    try:
        y = rig.play(_tone(200.0, 1.0))
    finally:
        rig.close()
    return float(np.sqrt(np.mean(y**2)))


@contextmanager
def _serving(d: Daemon):
    """Start `d` and run its serve loop on a thread (no signal handlers: pytest owns them)."""
    d.start()
    loop = threading.Thread(target=d.serve)
    loop.start()
    try:
        yield
    finally:
        d.request_stop()
        loop.join(timeout=20)
    assert not loop.is_alive()


def test_daemon_reconnects_after_jackd_restart(tmp_path, server):
    proc = _spawn(_config(tmp_path, server))
    try:
        _wait_for_ports(server.name)
        server.stop()
        time.sleep(1.0)
        assert proc.poll() is None, "the daemon must survive the server going away"
        server.start()
        _wait_for_ports(server.name)
        time.sleep(0.5)
        assert _tone_level_through(server) > 0.05, "audio flows again after the restart"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "reconnected to JACK" in err
    assert "Traceback" not in err


class VanishingServerEngine(WorldEngine):
    """WORLD whose first conversion (the warm-up, between registering the ports and
    activating the client) stops the JACK server."""

    def __init__(self, server: JackServer) -> None:
        super().__init__()
        self.server: JackServer | None = server

    def fork(self):
        return self

    def convert(self, window, params, timings):
        if self.server is not None:
            self.server.stop()
            self.server = None
        return super().convert(window, params, timings)


def test_server_lost_during_start_up_is_reconnected(tmp_path, server):
    d = Daemon(load_config(_config(tmp_path, server)), engine=VanishingServerEngine(server))
    with _serving(d):
        assert server.proc is None, "the server went away during start-up"
        server.start()
        deadline = time.monotonic() + 20
        while d.status()["reconnects"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert d.status()["reconnects"] == 1
        assert _tone_level_through(server) > 0.05, "audio flows once the server is back"


def test_buffer_size_change_reconfigures_and_audio_flows(tmp_path, server):
    d = Daemon(load_config(_config(tmp_path, server)))
    with _serving(d):
        before = d.latency_samples()
        env = {**os.environ, "JACK_DEFAULT_SERVER": server.name}
        subprocess.run(["jack_bufsize", "512"], env=env, check=True, capture_output=True, timeout=20)
        deadline = time.monotonic() + 20
        while (d.pipeline is None or d.pipeline.period != 512) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert d.status()["period"] == 512
        assert d.latency_samples() == before + 2 * (512 - 256), "two periods of queue, now longer"
        d.store.set("bypass", True)
        time.sleep(0.5)
        rig = Rig(server.name)
        try:
            x = (np.random.default_rng(5).standard_normal(RATE) * 0.1).astype(np.float32)
            y, _ = _take(d, rig, x)
        finally:
            rig.close()
        lat = d.latency_samples()
        np.testing.assert_array_equal(y[lat : lat + len(x)], x)


def test_sigterm_stops_cleanly_and_unregisters(tmp_path, server):
    proc = _spawn(_config(tmp_path, server))
    _wait_for_ports(server.name)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "Traceback" not in err
    probe = jack.Client("probe", servername=server.name, no_start_server=True)
    try:
        assert not probe.get_ports("rvcd:")
    finally:
        probe.close()


def test_sighup_reloads_and_a_bad_file_keeps_running(tmp_path, server):
    cfg = _config(tmp_path, server)
    proc = _spawn(cfg)
    try:
        _wait_for_ports(server.name)
        cfg.write_text(cfg.read_text().replace("kind: world", "kind: world\n  pitch: 99"))
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None
        _wait_for_ports(server.name)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert "reload failed, keeping the running configuration" in err
    assert "engine.pitch: 99.0 is outside the allowed range -24..24" in err


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("engine:\n  pitch: 40\n", "engine.pitch: 40.0 is outside the allowed range -24..24"),
        ("engine:\n  blok: 0.2\n", "engine.blok: unknown key"),
        ("jack:\n  channels: two\n", "jack.channels: 'two' is not a whole number"),
        ("engine: [unclosed\n", "not valid YAML at line"),
        ("engine:\n  pitch: 2\n  pitch: 5\n", "key 'pitch' appears twice (lines 2 and 3)"),
        ("jack:\n  client_name: " + "x" * 70 + "\n", "jack.client_name: 'xxx"),
        ("engine:\n  block: 0.05\n  crossfade: 0.1\n", "engine.crossfade: 0.1 s is longer than engine.block"),
        ("osc:\n  allowed_senders: [no-such-host.invalid]\n", "osc.allowed_senders: 'no-such-host.invalid'"),
        ("virtual_mic:\n  name: my mic\n", "virtual_mic.name: 'my mic' must be 1..63 letters, digits"),
        ('virtual_mic:\n  description: "a:b"\n', "virtual_mic.description: 'a:b' must be 1..63 bytes"),
        ("virtual_mic:\n  enable: true\n", "virtual_mic.enable: unknown key (known keys: desc"),
        ("engine:\n  limiter_ceiling: 3\n", "engine.limiter_ceiling: 3.0 is outside the allowed range -20"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    proc = subprocess.run([*RVCD, "run", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]


@pytest.mark.parametrize("osc", ["enabled: false", "port: 0"])
def test_missing_jack_server_is_a_clear_error(tmp_path, osc):
    path = tmp_path / "nojack.yaml"
    path.write_text(f"jack:\n  server_name: rvcd-no-such-server\nosc:\n  {osc}\n")
    proc = subprocess.run([*RVCD, "run", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "cannot connect to JACK (server 'rvcd-no-such-server')" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- signals, reloads and threads under stress -----------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _osc_config(
    tmp_path: Path, server: JackServer, port: int, osc_extra: str = "", engine_extra: str = ""
) -> Path:
    path = tmp_path / "rvcd-osc.yaml"
    path.write_text(
        f"jack:\n  server_name: {server.name}\n"
        f"engine:\n  kind: world\n  block: 0.1\n  crossfade: 0.02\n  extra: 0.1\n  headroom: {HEADROOM}\n"
        f"{engine_extra}"
        f"osc:\n  port: {port}\n{osc_extra}"
        "log:\n  stats_interval: 0\n"
    )
    return path


def test_reload_applies_osc_settings_or_refuses_and_keeps_osc_set_values(tmp_path, server, caplog):
    p1, p2 = _free_port(), _free_port()
    path = _osc_config(tmp_path, server, p1)
    d = Daemon(load_config(path))
    d.start()
    probe = OscProbe(p1)
    try:
        assert probe.ask("/rvcd/pitch", 3.0)[-1] == ("/rvcd/pitch", [3.0])
        with caplog.at_level(logging.INFO, logger="rvcd"):
            assert d.reload()
        assert "nothing changed" in caplog.text
        assert d.store.snapshot().pitch == 3.0, "an unchanged file keeps what OSC set"

        path.write_text(path.read_text().replace("osc:\n", "osc:\n  allowed_senders: ['127.0.0.2']\n"))
        assert d.reload()
        assert probe.ask("/rvcd/pitch", 5.0, timeout=0.5) == [], "the removed sender lost control"
        assert d.store.snapshot().pitch == 3.0

        (tmp_path / "voices").mkdir()
        path.write_text(
            _osc_config(tmp_path, server, p2, engine_extra="  formant: 2.0\n").read_text()
            + f"models_dir: {tmp_path / 'voices'}\n"
        )
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="rvcd"):
            assert d.reload()
        assert "osc.port" in caplog.text and "engine.formant" in caplog.text and "models_dir" in caplog.text
        assert d.osc.settings.models_dir == tmp_path / "voices"
        assert d.store.snapshot().formant == 2.0, "a value the file changes is applied"
        assert d.store.snapshot().pitch == 3.0
        assert probe.ask("/rvcd/status", timeout=0.5) == [], "the old port is closed"
        probe2 = OscProbe(p2)
        try:
            assert probe2.ask("/rvcd/pitch")[-1] == ("/rvcd/pitch", [3.0])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
                taken.bind(("127.0.0.1", 0))
                path.write_text(_osc_config(tmp_path, server, taken.getsockname()[1]).read_text())
                caplog.clear()
                with caplog.at_level(logging.ERROR, logger="rvcd"):
                    assert not d.reload()
                assert f"port {taken.getsockname()[1]}" in caplog.text
            assert probe2.ask("/rvcd/pitch")[-1] == ("/rvcd/pitch", [3.0]), "still serving the old port"
            assert d.store.snapshot().formant == 2.0, "a refused reload changes nothing"
        finally:
            probe2.close()
    finally:
        probe.close()
        d.stop()


def test_sighup_while_starting_does_not_kill_the_daemon(tmp_path, server):
    proc = _spawn(_config(tmp_path, server))
    try:
        time.sleep(0.6)
        probe = jack.Client("probe", servername=server.name, no_start_server=True)
        starting = not probe.get_ports("rvcd:")
        probe.close()
        proc.send_signal(signal.SIGHUP)
        assert starting, "the signal must arrive before the ports exist"
        _wait_for_ports(server.name)
        time.sleep(0.5)
        assert proc.poll() is None, "alive after a SIGHUP during start-up"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "configuration reloaded" in err


def test_sigterm_while_starting_stops_within_three_seconds(tmp_path, server):
    """A warm-up that never ends (the engine is stuck) must not hold a stop."""
    engine = SlowEngine()
    engine.release.clear()
    d = Daemon(load_config(_config(tmp_path, server)), engine=engine)
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    d.handle_signals()
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    began = time.monotonic()
    try:
        with pytest.raises(StartupInterrupted):
            d.start()
        d.stop()
    finally:
        engine.release.set()
        for s, handler in saved.items():
            signal.signal(s, handler)
    assert time.monotonic() - began < 3.0


def test_a_second_instance_says_its_real_name(tmp_path, server, caplog):
    first = Daemon(load_config(_config(tmp_path, server)))
    first.start()
    try:
        with caplog.at_level(logging.WARNING, logger="rvcd.jack"):
            second = Daemon(load_config(_config(tmp_path, server)))
            second.start()
        try:
            assert second.status()["client"] == "rvcd-01"
            assert "'rvcd' is taken" in caplog.text and "rvcd-01" in caplog.text
        finally:
            second.stop()
    finally:
        first.stop()


def test_the_watchdog_stops_when_the_osc_thread_hangs(tmp_path, server, monkeypatch, caplog):
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.settimeout(0.05)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setattr(service, "HUNG_AFTER_S", 0.5)
    d = Daemon(load_config(_osc_config(tmp_path, server, 0)))
    d.start()
    serving = threading.Thread(target=d.serve)
    serving.start()
    probe = OscProbe(d.osc.port)

    def pings(seconds: float) -> int:
        n, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                n += listener.recv(4096).count(b"WATCHDOG=1")
        return n

    try:
        assert pings(1.0) >= 3
        with caplog.at_level(logging.ERROR, logger="rvcd"), d.store._lock:
            probe.send("/rvcd/pitch", 2.0)  # the OSC thread now waits for the lock
            pings(0.8)
            assert pings(1.0) == 0, "no pings while the OSC thread is stuck"
        assert "no progress in the OSC" in caplog.text
        assert pings(1.0) >= 3, "pings again once it runs"
    finally:
        d.request_stop()
        serving.join(timeout=10)
        probe.close()
        listener.close()


def test_the_log_tells_what_runs(tmp_path, server, caplog):
    with caplog.at_level(logging.INFO, logger="rvcd"):
        d = Daemon(load_config(_config(tmp_path, server)))
        d.start()
        d.stop()
    running = [r.getMessage() for r in caplog.records if r.getMessage().startswith("running: ")]
    assert running, caplog.text
    line = running[0]
    for part in (
        "engine world",
        "f0 dio",
        "device cpu",
        "block 0.1 s, extra 0.1 s, crossfade 0.02 s, headroom 0.2 s",
        f"JACK 'rvcd' {RATE} Hz period {PERIOD}, latency",
        "OSC off",
    ):
        assert part in line, (part, line)


def _reload_and_wait(d: Daemon, done, timeout: float = 20.0) -> None:
    """Ask the serve loop for a reload (as SIGHUP does) and wait until `done()`."""
    d.request_reload()
    wait_until(done, timeout)
    assert done(), "the reload did not take effect"
    time.sleep(0.3)


def test_connections_made_by_anyone_survive_a_reconfiguration(tmp_path, server, caplog):
    """A patch made with jack_connect (here: another client) comes back after a buffer-size
    change and after a reload that changes the block."""
    cfg = _config(tmp_path, server)
    d = Daemon(load_config(cfg))
    patchbay = jack.Client("patchbay", servername=server.name, no_start_server=True)
    src = patchbay.outports.register("src")
    dst = patchbay.inports.register("dst")
    patchbay.activate()

    def patched() -> set[str]:
        return {p.name for p in patchbay.get_all_connections(src)} | {
            p.name for p in patchbay.get_all_connections(dst)
        }

    try:
        with _serving(d), caplog.at_level(logging.INFO, logger="rvcd.jack"):
            patchbay.connect(src, "rvcd:in_1")
            patchbay.connect("rvcd:out_1", dst)
            time.sleep(0.3)
            env = {**os.environ, "JACK_DEFAULT_SERVER": server.name}
            subprocess.run(["jack_bufsize", "512"], env=env, check=True, capture_output=True, timeout=20)
            deadline = time.monotonic() + 20
            while (d.pipeline is None or d.pipeline.period != 512) and time.monotonic() < deadline:
                time.sleep(0.1)
            wait_until(lambda: patched() == {"rvcd:in_1", "rvcd:out_1"})
            assert patched() == {"rvcd:in_1", "rvcd:out_1"}, "restored after the buffer-size change"
            assert "restored 2 connection(s)" in caplog.text
            cfg.write_text(cfg.read_text().replace("block: 0.1", "block: 0.2"))
            _reload_and_wait(d, lambda: d.pipeline is not None and d.pipeline.shape.block == RATE // 5)
            wait_until(lambda: patched() == {"rvcd:in_1", "rvcd:out_1"})
            assert patched() == {"rvcd:in_1", "rvcd:out_1"}, "restored after a reload that rebuilt the client"
            patchbay.disconnect(src, "rvcd:in_1")
            time.sleep(0.3)
            cfg.write_text(cfg.read_text().replace("block: 0.2", "block: 0.1"))
            _reload_and_wait(d, lambda: d.pipeline is not None and d.pipeline.shape.block == RATE // 10)
            wait_until(lambda: patched() == {"rvcd:out_1"})
            assert patched() == {"rvcd:out_1"}, "a connection removed by hand stays removed"
    finally:
        patchbay.close()


def test_the_monitor_mixes_and_levels_without_touching_the_output(tmp_path, server):
    path = _config(tmp_path, server)
    path.write_text(path.read_text().replace("jack:\n", "jack:\n  monitor: true\n", 1))
    d = Daemon(load_config(path))
    d.start()
    rig = Rig(server.name, outputs=("out", "monitor"))
    x = (np.random.default_rng(7).standard_normal(RATE) * 0.1).astype(np.float32)
    try:
        probe = jack.Client("probe", servername=server.name, no_start_server=True)
        lat = d.latency_samples()
        assert get_range(probe.get_port_by_name("rvcd:monitor_1"), CAPTURE)[0] == lat, "declared like out_1"
        probe.close()
        d.store.set("pitch", 12.0)

        def take() -> tuple[np.ndarray, np.ndarray, int]:
            """Out and monitor of one take, and the xruns in it (which shift a recording
            by whole periods: `_dry_fraction` allows for them)."""
            for _ in range(3):
                before = d.status()["xruns"]
                out, monitor = rig.play_all(x)
                xruns = d.status()["xruns"] - before
                if xruns == 0:
                    break
            return out, monitor, xruns

        out, monitor, _ = take()
        np.testing.assert_array_equal(monitor, out)  # default: the converted voice
        d.store.set("monitor_mix", 0.0)
        d.store.set("monitor_gain", -6.0206)
        out, monitor, xruns = take()
        assert _dry_fraction(monitor / 0.5, x, lat, xruns) > 0.9, "the dry input at half level"
        assert _dry_fraction(out, x, lat, xruns) < 0.1, "the output is still converted"
        d.store.set("monitor_mute", True)
        out, monitor, _ = take()
        assert not monitor.any() and np.sqrt(np.mean(out**2)) > 0.01
    finally:
        rig.close()
        d.stop()


def test_output_gain_levels_what_the_outputs_carry(daemon):
    d, rig = daemon
    x = (np.random.default_rng(9).standard_normal(RATE) * 0.1).astype(np.float32)
    d.store.set("bypass", True)
    d.store.set("gain", -6.0206)
    time.sleep(0.5)
    y, xruns = _take(d, rig, x)
    assert _dry_fraction(y / 0.5, x, d.latency_samples(), xruns) > 0.9, "the input at half level"


def test_physical_connects_the_hardware_ports_in_order(tmp_path, server):
    path = _config(tmp_path, server)
    patterns = "".join(f"  connect_{ports}: ['@physical']\n" for ports in ("inputs", "outputs", "monitor"))
    path.write_text(path.read_text().replace("jack:\n", "jack:\n  monitor: true\n" + patterns))
    d = Daemon(load_config(path))
    d.start()
    try:
        client = d.jack.client

        def peers(port: str) -> list[str]:
            return sorted(p.name for p in client.get_all_connections(port))

        assert peers("rvcd:in_1") == ["system:capture_1"]
        assert peers("rvcd:out_1") == ["system:playback_1", "system:playback_2"], "one channel: both ears"
        assert peers("rvcd:monitor_1") == ["system:playback_1", "system:playback_2"]
    finally:
        d.stop()


def test_the_limiter_holds_its_ceiling_and_its_delay_is_declared(tmp_path, server):
    path = _config(tmp_path, server)
    limiter = "engine:\n  limiter: true\n  limiter_ceiling: -1\n"
    path.write_text(path.read_text().replace("engine:\n", limiter))
    plain = Daemon(load_config(_config(tmp_path / "..", server)))
    d = Daemon(load_config(path))
    d.start()
    rig = Rig(server.name)
    try:
        d.store.set("bypass", True)
        assert d.latency_samples() == plain._make_pipeline(RATE, PERIOD).latency + TruePeakLimiter(RATE).delay
        probe = jack.Client("latency-probe", servername=server.name, no_start_server=True)
        assert get_range(probe.get_port_by_name("rvcd:out_1"), CAPTURE)[0] == d.latency_samples()
        probe.close()
        quiet = (np.random.default_rng(4).standard_normal(RATE) * 0.05).astype(np.float32)
        y, xruns = _take(d, rig, quiet)
        assert _dry_fraction(y, quiet, d.latency_samples(), xruns) > 0.9, "below the ceiling: untouched"
        noise = np.random.default_rng(5).standard_normal(RATE)
        loud = (2 * noise / np.abs(noise).max()).astype(np.float32)  # +6 dBFS peaks
        y, _ = _take(d, rig, loud)
        assert true_peak_db(y, 1000) <= -1.0 + 0.1
        assert d.status()["limited_blocks"] >= 8, "the take's blocks were limited, and counted"
    finally:
        rig.close()
        d.stop()
