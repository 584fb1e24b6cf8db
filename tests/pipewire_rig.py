"""Test helper: a private PipeWire desktop session (its own D-Bus session bus and
XDG_RUNTIME_DIR, PipeWire and WirePlumber, as `dbus-run-session` gives), and reading its
graph with pw-dump."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from jack_rig import wait_until

TOOLS = ("pipewire", "wireplumber", "pw-jack", "pw-cli", "pw-dump", "pw-link", "pw-record", "dbus-daemon")
PW_JACK_LIBRARY_PATH = "/usr/${LIB}/pipewire-0.3/jack"
"""What pw-jack puts first in LD_LIBRARY_PATH (the loader expands ${LIB})."""


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


class PipeWireSession:
    """pipewire + wireplumber on a private session bus, in a private runtime directory."""

    def __init__(self) -> None:
        self.runtime = Path(tempfile.mkdtemp(prefix="rvcd-pw-"))
        self.runtime.chmod(0o700)
        self.logs = self.runtime / "logs"
        self.logs.mkdir()
        bus = f"unix:path={self.runtime}/bus"
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(self.runtime), "DBUS_SESSION_BUS_ADDRESS": bus}
        self.env.pop("PIPEWIRE_REMOTE", None)
        self.jack_env = {"LD_LIBRARY_PATH": PW_JACK_LIBRARY_PATH, **self._session_vars()}
        """What a JACK client needs to reach this PipeWire (as under pw-jack)."""
        self.dbus = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", f"--address={bus}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._procs: list[subprocess.Popen] = []
        self.start()

    def _session_vars(self) -> dict[str, str]:
        return {key: self.env[key] for key in ("XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS")}

    def _spawn(self, name: str) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("a")
        return subprocess.Popen([name], env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def start(self) -> None:
        """Start PipeWire, then WirePlumber; return once WirePlumber is in the graph."""
        self._procs = [self._spawn("pipewire")]
        self._wait(lambda: self.run("pw-cli", "info", "0").returncode == 0)
        self._procs.append(self._spawn("wireplumber"))
        self._wait(lambda: "WirePlumber" in [self.props(c).get("application.name") for c in self.clients()])

    def stop(self) -> None:
        """Stop WirePlumber and PipeWire (the session bus stays)."""
        for proc in reversed(self._procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._procs = []

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self.dbus.terminate()
        self.dbus.wait(timeout=10)
        shutil.rmtree(self.runtime, ignore_errors=True)

    def log_tail(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.logs.iterdir()))

    def _wait(self, done: Any, timeout: float = 20.0) -> None:
        if not wait_until(done, timeout):
            raise RuntimeError(f"the PipeWire session did not come up:\n{self.log_tail()}")

    # -- the graph ---------------------------------------------------------------------------

    def run(self, *command: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        """Run a command in this session (pw-cli, pw-dump, pw-record...)."""
        return subprocess.run(list(command), env=self.env, capture_output=True, text=True, timeout=timeout)

    def objects(self, kind: str) -> list[dict[str, Any]]:
        out = self.run("pw-dump", "--no-colors")
        if out.returncode != 0 or not out.stdout.strip():
            return []
        return [o for o in json.loads(out.stdout) if o.get("type", "").endswith(f":{kind}")]

    @staticmethod
    def props(obj: dict[str, Any]) -> dict[str, Any]:
        return (obj.get("info") or {}).get("props") or {}

    def clients(self) -> list[dict[str, Any]]:
        return self.objects("Client")

    def nodes_named(self, name: str) -> list[dict[str, Any]]:
        return [n for n in self.objects("Node") if self.props(n).get("node.name") == name]

    def popen(self, *command: str, **kwargs: Any) -> subprocess.Popen:
        """Start a command in this session; JACK clients get PipeWire's JACK library."""
        env = {**self.env, **self.jack_env}
        return subprocess.Popen(list(command), env=env, **kwargs)
