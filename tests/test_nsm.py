"""rvcd under a session manager: a stand-in NSM server speaks the documented OSC messages
(new-session-manager.jackaudio.org/api) to a real `rvcd run` on a real jackd."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jack
import yaml
from jack_rig import JackServer
from osc_probe import OscProbe, build
from pythonosc.osc_message import OscMessage

ROOT = Path(__file__).resolve().parent.parent


class StandInServer:
    """The server side of NSM over UDP, one message at a time."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.url = f"osc.udp://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.client: tuple[str, int] | None = None

    def send(self, address: str, *args: Any) -> None:
        assert self.client is not None
        self.sock.sendto(build(address, *args).dgram, self.client)

    def expect(self, address: str, timeout: float = 60.0, first: Any = None) -> list[Any]:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                data, sender = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            self.client = sender
            msg = OscMessage(data)
            seen.append((msg.address, list(msg.params)))
            if msg.address == address and (first is None or msg.params[0] == first):
                return list(msg.params)
        raise AssertionError(f"no {address} ({first}) from rvcd; got {seen}")

    def close(self) -> None:
        self.sock.close()


def _spawn(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rvcd.daemon.cli", "run"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )


def _osc_port(opened: list[Any]) -> int:
    return int(opened[1].rsplit("OSC port ", 1)[1])


def test_open_save_quit_and_reopen(tmp_path):
    jackd = JackServer()
    nsm = StandInServer()
    env = {k: v for k, v in os.environ.items() if k != "RVCD_CONFIG"}
    env.update(NSM_URL=nsm.url, JACK_DEFAULT_SERVER=jackd.name, XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    session = tmp_path / "session" / "rvcd.nABCD"
    proc = _spawn(env)
    try:
        name, capabilities, _executable, major, _minor, pid = nsm.expect("/nsm/server/announce")
        assert (name, capabilities, major, pid) == ("rvcd", ":switch:dirty:message:", 1, proc.pid)
        nsm.send("/reply", "/nsm/server/announce", "welcome", "stand-in", ":server-control:")
        nsm.send("/nsm/client/open", str(session), "My Show", "rvcd.nABCD")
        opened = nsm.expect("/reply", first="/nsm/client/open")
        assert "JACK client 'rvcd.nABCD'" in opened[1]
        probe = jack.Client("probe", servername=jackd.name, no_start_server=True)
        assert probe.get_ports("rvcd.nABCD:in_1"), "the JACK client takes the session's client id"
        probe.close()
        config = session / "config.yaml"
        assert config.is_file()

        osc = OscProbe(_osc_port(opened))
        assert osc.ask("/rvcd/pitch", 5.0)[-1] == ("/rvcd/pitch", [5.0])
        osc.close()
        nsm.expect("/nsm/client/is_dirty")
        nsm.send("/nsm/client/save")
        assert "saved" in nsm.expect("/reply", first="/nsm/client/save")[1]
        nsm.expect("/nsm/client/is_clean")
        assert yaml.safe_load(config.read_text())["engine"]["pitch"] == 5.0

        # :switch: another session's state and client id, without restarting.
        nsm.send("/nsm/client/open", str(tmp_path / "other" / "rvcd.nEFGH"), "Other", "rvcd.nEFGH")
        assert "switched" in nsm.expect("/reply", first="/nsm/client/open")[1]
        probe = jack.Client("probe", servername=jackd.name, no_start_server=True)
        assert probe.get_ports("rvcd.nEFGH:in_1") and not probe.get_ports("rvcd.nABCD:")
        probe.close()

        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert time.monotonic() - began < 3.0, "quits at once on SIGTERM"
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        nsm.close()

    # Opening the same session again brings back what was saved.
    nsm = StandInServer()
    env["NSM_URL"] = nsm.url
    proc = _spawn(env)
    try:
        nsm.expect("/nsm/server/announce")
        nsm.send("/nsm/client/open", str(session), "My Show", "rvcd.nABCD")
        osc = OscProbe(_osc_port(nsm.expect("/reply", first="/nsm/client/open")))
        assert osc.ask("/rvcd/pitch")[-1] == ("/rvcd/pitch", [5.0])
        osc.close()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
        nsm.close()
        jackd.stop()


def test_a_session_that_cannot_open_is_reported_to_the_server(tmp_path):
    nsm = StandInServer()
    env = {k: v for k, v in os.environ.items() if k != "RVCD_CONFIG"}
    env.update(NSM_URL=nsm.url, JACK_DEFAULT_SERVER="rvcd-no-such-server")
    session = tmp_path / "rvcd.nXYZ"
    proc = _spawn(env)
    try:
        nsm.expect("/nsm/server/announce")
        nsm.send("/nsm/client/open", str(session), "Show", "rvcd.nXYZ")
        error = nsm.expect("/error", first="/nsm/client/open")
        assert error[1] == -1 and "cannot connect to JACK" in error[2]
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 1
    finally:
        if proc.poll() is None:
            proc.kill()
        nsm.close()
