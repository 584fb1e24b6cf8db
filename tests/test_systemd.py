"""systemd units verify, and the daemon speaks the notify protocol (READY, STATUS,
WATCHDOG, STOPPING) the units rely on."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jack_rig import JackServer
from test_jack_daemon import _config

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "systemd"


def _verify(path: Path) -> subprocess.CompletedProcess:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is not installed")
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("unit", ["rvcd.service", "rvcd-system.service", "rvcd@.service"])
def test_unit_verifies(unit, tmp_path):
    path = UNITS / unit
    if unit.endswith("@.service"):
        shutil.copy(path, tmp_path / unit)
        path = tmp_path / unit.replace("@.", "@mic2.")
    result = _verify(path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    text = (UNITS / unit).read_text()
    for line in ("Type=notify", "Restart=on-failure", "WatchdogSec=", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in text, f"{unit} lacks {line}"


def test_a_broken_unit_fails_verification(tmp_path):
    broken = (UNITS / "rvcd.service").read_text().replace("/usr/bin/env rvcd", "/no/such/rvcd")
    (tmp_path / "broken.service").write_text(broken)
    assert _verify(tmp_path / "broken.service").returncode != 0


def test_daemon_notifies_systemd(tmp_path):
    server = JackServer()
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.5)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rvcd.daemon.cli", "run", "--config", str(_config(tmp_path, server))],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("WATCHDOG=1" in m for m in messages):
            with contextlib.suppress(TimeoutError):
                messages.append(sock.recv(4096).decode())
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
        try:
            while True:
                messages.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
        server.stop()
    ready = next(m for m in messages if "READY=1" in m)
    assert "STATUS=world 48000 Hz, latency" in ready
    assert any("WATCHDOG=1" in m for m in messages)
    assert "STOPPING=1" in messages[-1]
    assert proc.returncode == 0
