"""The virtual microphone under a real (private) PipeWire session, and what rvcd says on
plain jackd: the node exists with the configured name and media class, the converted
voice comes out of it (recorded as an application would, with pw-record), the monitor
changes nothing it carries, it goes away with rvcd however rvcd ends, it is never
duplicated, and it comes back after PipeWire restarts."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from jack_rig import RATE, JackServer, Rig, delay_of, wait_until
from osc_probe import OscProbe
from pipewire_rig import PipeWireSession, missing_tools
from test_jack_daemon import _config, _free_port
from test_streamer import _median_f0, _tone

from rvcd.daemon.config import load_config
from rvcd.daemon.service import Daemon

ROOT = Path(__file__).resolve().parent.parent
MIC = "rvcd-mic"
DESCRIPTION = "rvcd voice"


@pytest.fixture(scope="module")
def pipewire():
    missing = missing_tools()
    if missing:
        pytest.skip(f"PipeWire is not installed ({', '.join(missing)} missing; scripts/setup.sh installs it)")
    session = PipeWireSession()
    yield session
    session.close()


def _write_config(tmp_path: Path) -> Path:
    path = tmp_path / "streaming.yaml"
    path.write_text(
        f"""
jack:
  monitor: true
engine:
  kind: world
  block: 0.1
  crossfade: 0.02
  extra: 0.1
  headroom: 0.2
  limiter: true
virtual_mic:
  enabled: true
  name: {MIC}
  description: {DESCRIPTION}
osc:
  query_port: null
log:
  stats_interval: 0
"""
    )
    return path


class Running:
    """`[pw-jack] rvcd run --config CONFIG --port PORT` in the session, its log in a file."""

    def __init__(
        self, pipewire: PipeWireSession, config: Path, port: int, log: Path, pw_jack: bool = True
    ) -> None:
        self.log = log
        run = ["run", "--config", str(config), "--port", str(port)]
        self.proc = subprocess.Popen(
            [*(["pw-jack"] if pw_jack else []), sys.executable, "-m", "rvcd.daemon.cli", *run],
            cwd=ROOT,
            env=pipewire.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )
        self.probe = OscProbe(port)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            if "running:" in self.log.read_text():
                return
            time.sleep(0.1)
        raise AssertionError(f"rvcd did not start under PipeWire:\n{self.log.read_text()[-3000:]}")

    def status(self) -> dict:
        for _ in range(3):
            replies = self.probe.ask("/rvcd/status", timeout=2.0)
            for address, args in replies:
                if address == "/rvcd/status":
                    return dict(zip(args[::2], args[1::2], strict=True))
        raise AssertionError("no /rvcd/status reply")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=15)
        self.probe.sock.close()
        return code


def _mic_nodes(pipewire: PipeWireSession) -> list[dict]:
    return pipewire.nodes_named(MIC)


def _assert_carries(mic: np.ndarray, out: np.ndarray, period: int) -> None:
    """The microphone's signal is out_1's, sample for sample, up to whole PipeWire
    cycles later (the null sink passes its input to its monitor ports a cycle on)."""
    lag = delay_of(out, mic, 4 * period)
    assert lag % period == 0, f"the microphone lags out_1 by {lag} samples, not whole cycles of {period}"
    np.testing.assert_allclose(mic[lag:], out[: len(out) - lag], atol=1e-6, err_msg="the mic carries out_1")


def test_the_virtual_mic_carries_the_voice_and_leaves_with_rvcd(pipewire, tmp_path):
    """`rvcd run --config configs/streaming.yaml`, as a new user runs it (no pw-jack: rvcd
    starts itself again under it, as the same process)."""
    port = _free_port()
    config = ROOT / "configs" / "streaming.yaml"
    rvcd = Running(pipewire, config, port, tmp_path / "rvcd.log", pw_jack=False)
    try:
        assert "the virtual microphone needs PipeWire's JACK library: starting again" in rvcd.log.read_text()
        assert rvcd.probe.ask("/rvcd/pitch", 12.0)[0] == ("/rvcd/pitch", [12.0])
        (node,) = _mic_nodes(pipewire)
        props = pipewire.props(node)
        assert props["rvcd.pid"] == rvcd.proc.pid, "the same process, so systemd still knows it"
        assert props["media.class"] == "Audio/Source/Virtual"
        assert props["node.description"] == DESCRIPTION
        status = rvcd.status()
        assert (status["virtual_mic"], status["virtual_mic_linked"]) == (MIC, 1)
        shown = subprocess.run(
            [sys.executable, "-m", "rvcd.daemon.cli", "status", "--config", str(config), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert shown.returncode == 0, shown.stderr
        lines = {tuple(line.split(maxsplit=1)) for line in shown.stdout.splitlines()}
        want = {("virtual_mic", MIC), ("virtual_mic_description", DESCRIPTION), ("virtual_mic_linked", "1")}
        assert want <= lines, shown.stdout

        # An application records the microphone while a patchbay plays into rvcd:in_1.
        rig = Rig(None, outputs=("out", "monitor", f"{DESCRIPTION}:capture_MONO"), env=pipewire.jack_env)
        try:
            wav = tmp_path / "app.wav"
            app = pipewire.popen("pw-record", "--target", MIC, "--rate", str(RATE), "--channels=1", str(wav))
            x = _tone(200.0, 2.0)
            out, monitor, mic = rig.play_all(x)
            users = wait_until(lambda: "pw-record" in rvcd.status()["virtual_mic_users"].split(", "), 8.0)
            app.send_signal(signal.SIGINT)
            app.wait(timeout=10)
            assert users, "rvcd says who records its microphone"
            assert f"virtual microphone '{DESCRIPTION}' used by pw-record" in rvcd.log.read_text()
            recorded, rate = sf.read(wav, dtype="float32")
            assert rate == RATE
            heard = _median_f0(recorded[len(recorded) // 3 :])
            assert heard == pytest.approx(400.0, rel=0.03), "an application hears the voice +12 semitones"
            assert _median_f0(mic[RATE // 2 :]) == pytest.approx(400.0, rel=0.03)
            period = status["period"]
            _assert_carries(mic, out, period)
            np.testing.assert_allclose(monitor, out, atol=1e-6, err_msg="the monitor is the voice by default")

            # The speaker's ears: the dry voice at half level; the microphone is unchanged.
            rvcd.probe.send("/rvcd/monitor/mix", 0.0)
            rvcd.probe.send("/rvcd/monitor/gain", -6.0206)
            time.sleep(0.3)
            out, monitor, mic = rig.play_all(x)
            lat = rvcd.status()["latency_samples"]
            assert delay_of(x, monitor, 2 * lat) == lat, "the monitor's dry input is delayed like the voice"
            rms = float(np.sqrt(np.mean(monitor[lat : lat + len(x)] ** 2) / np.mean(x**2)))
            assert rms == pytest.approx(0.5, rel=0.02)
            assert _median_f0(monitor[lat + RATE // 2 : lat + len(x)]) == pytest.approx(200.0, rel=0.03)
            _assert_carries(mic, out, period)
            assert _median_f0(mic[RATE // 2 :]) == pytest.approx(400.0, rel=0.03), "still the converted voice"
        finally:
            rig.close()
    finally:
        assert rvcd.stop() == 0
    assert not _mic_nodes(pipewire), "the node is gone after SIGTERM"
    assert "virtual microphone 'rvcd-mic' removed" in rvcd.log.read_text()

    # Started again: one node; killed outright: still nothing left behind.
    rvcd = Running(pipewire, config, port, tmp_path / "again.log")
    try:
        assert len(_mic_nodes(pipewire)) == 1
    finally:
        rvcd.stop(signal.SIGKILL)
    assert wait_until(lambda: not _mic_nodes(pipewire), 5.0), "the node is gone after SIGKILL"


def test_a_node_left_by_an_earlier_rvcd_is_replaced_not_duplicated(pipewire, tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = pipewire.run(
        "pw-cli",
        "create-node",
        "adapter",
        "{ factory.name=support.null-audio-sink node.name=rvcd-mic media.class=Audio/Source/Virtual "
        f"audio.position=[MONO] object.linger=true rvcd.pid={dead.pid} }}",
    )
    assert stale.returncode == 0, stale.stdout + stale.stderr
    assert wait_until(lambda: len(_mic_nodes(pipewire)) == 1, 15.0)
    port = _free_port()
    rvcd = Running(pipewire, _write_config(tmp_path), port, tmp_path / "rvcd.log")
    try:
        (node,) = _mic_nodes(pipewire)
        assert pipewire.props(node)["rvcd.pid"] == rvcd.proc.pid
        assert f"left by rvcd pid {dead.pid}" in rvcd.log.read_text()
        assert rvcd.status()["virtual_mic_linked"] == 1
    finally:
        rvcd.stop()
    assert not _mic_nodes(pipewire)


def test_a_quantum_change_or_a_reload_keeps_the_mic_fed(pipewire, tmp_path):
    port = _free_port()
    config = _write_config(tmp_path)
    rvcd = Running(pipewire, config, port, tmp_path / "rvcd.log")
    try:
        quantum = pipewire.run("pw-metadata", "-n", "settings", "0", "clock.force-quantum", "512")
        assert quantum.returncode == 0, quantum.stderr
        assert wait_until(lambda: rvcd.status()["period"] == 512, 20.0), "reconfigured for the new quantum"
        assert wait_until(lambda: rvcd.status()["virtual_mic_linked"] == 1, 10.0)
        assert len(_mic_nodes(pipewire)) == 1

        # SIGHUP onto another name: the old node goes, the new one is made and fed.
        config.write_text(config.read_text().replace(f"name: {MIC}", "name: rvcd-mic-2"))
        rvcd.proc.send_signal(signal.SIGHUP)

        # Linking follows the new node's appearance: wait for both, as an operator would.
        def renamed_and_fed() -> bool:
            status = rvcd.status()
            return (status["virtual_mic"], status["virtual_mic_linked"]) == ("rvcd-mic-2", 1)

        assert wait_until(renamed_and_fed, 20.0), rvcd.log.read_text()[-2000:]
        assert not _mic_nodes(pipewire) and len(pipewire.nodes_named("rvcd-mic-2")) == 1
    finally:
        pipewire.run("pw-metadata", "-n", "settings", "0", "clock.force-quantum", "0")
        rvcd.stop()
    assert not pipewire.nodes_named("rvcd-mic-2")


def test_the_mic_comes_back_after_pipewire_restarts(pipewire, tmp_path):
    port = _free_port()
    rvcd = Running(pipewire, _write_config(tmp_path), port, tmp_path / "rvcd.log")
    try:
        pipewire.restart()

        def back() -> bool:
            status = rvcd.status()
            rejoined = "reconnected to JACK" in rvcd.log.read_text()
            return rejoined and status["virtual_mic_linked"] == 1 and status["blocks"] > 0

        assert wait_until(back, 40.0), rvcd.log.read_text()[-3000:]
        assert len(_mic_nodes(pipewire)) == 1
        assert "no JACK process cycle" in rvcd.log.read_text()
        rig = Rig(None, outputs=(f"{DESCRIPTION}:capture_MONO",), env=pipewire.jack_env)
        try:
            mic = rig.play(_tone(200.0, 1.5))
        finally:
            rig.close()
        assert _median_f0(mic[RATE // 2 :]) == pytest.approx(200.0, rel=0.03), "the voice is back in the mic"
    finally:
        rvcd.stop()


def test_on_plain_jackd_the_log_says_why_there_is_no_virtual_mic(tmp_path, caplog):
    server = JackServer()
    try:
        path = _config(tmp_path, server, "virtual_mic:\n  enabled: true\n")
        d = Daemon(load_config(path))
        with caplog.at_level(logging.INFO):
            d.start()
        try:
            assert "no virtual microphone: the JACK server is jackd, not PipeWire" in caplog.text
            assert "route rvcd:out_N with a patchbay" in caplog.text
            status = d.status()
            assert (status["virtual_mic"], status["virtual_mic_linked"]) == ("", 0)
            assert d._status_line().endswith(", virtual mic unavailable"), "in the periodic line and STATUS"
            rig = Rig(server.name)
            try:
                assert _median_f0(rig.play(_tone(200.0, 1.5))[RATE // 2 :]) == pytest.approx(200.0, rel=0.03)
            finally:
                rig.close()
        finally:
            d.stop()
    finally:
        server.stop()
