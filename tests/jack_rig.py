"""Test helpers: a private JACK server, and player/recorder clients around rvcd's ports."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import jack
import numpy as np

RATE = 48000
PERIOD = 256


class JackServer:
    """`jackd --no-realtime -d dummy` on a unique server name; stop() kills it."""

    def __init__(
        self, rate: int = RATE, period: int = PERIOD, name: str | None = None, realtime: bool = False
    ) -> None:
        self.realtime = realtime
        if shutil.which("jackd") is None:
            raise RuntimeError("jackd is not installed (scripts/setup.sh installs jackd2)")
        self.name = name or f"rvcd-test-{uuid.uuid4().hex[:8]}"
        self.rate = rate
        self.period = period
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        mode = ["-R", "-P", "70"] if self.realtime else ["--no-realtime"]
        command = ["jackd", "-n", self.name, *mode, "-d", "dummy", "-r", str(self.rate)]
        self.log = tempfile.NamedTemporaryFile(prefix=f"{self.name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*command, "-p", str(self.period)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                jack.Client("probe", servername=self.name, no_start_server=True).close()
                return
            except jack.JackOpenError:
                time.sleep(0.05)
        raise RuntimeError(f"jackd {self.name} did not come up: {Path(self.log.name).read_text()[-2000:]}")

    def stop(self) -> None:
        # SIGTERM, not SIGKILL: a killed jackd leaves its entry in JACK's shared-memory
        # registry, and after a few of those no new server can start.
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None


class _Clients:
    """A player feeding `<target>:in_<channel>` and a recorder on `<target>:<output>_<channel>`
    for each of `outputs` (default: out; an entry with a ':' is a whole port name).
    Both start on the same JACK cycle and then count cycles, as rvcd does, so a
    recording stays aligned with what was played even when an xrun makes JACK's frame
    time jump."""

    def __init__(
        self, server: str | None, target: str, channel: int, outputs: tuple[str, ...] = ("out",)
    ) -> None:
        self.player = jack.Client("rig-player", servername=server, no_start_server=True)
        self.recorder = jack.Client("rig-recorder", servername=server, no_start_server=True)
        self.rate = self.player.samplerate
        self.play_port = self.player.outports.register("out")
        self.rec_ports = [self.recorder.inports.register(f"in_{i}") for i in range(len(outputs))]
        self.signal = np.zeros(0, dtype=np.float32)
        self.start_frame: int | None = None
        self.play_pos: int | None = None
        self.recording: list[list[np.ndarray]] | None = None
        self.player.set_process_callback(self._play)
        self.recorder.set_process_callback(self._record)
        self.player.activate()
        self.recorder.activate()
        self.player.connect(self.play_port, f"{target}:in_{channel}")
        for name, port in zip(outputs, self.rec_ports, strict=True):
            self.recorder.connect(name if ":" in name else f"{target}:{name}_{channel}", port)

    def _started(self, client: jack.Client) -> bool:
        start = self.start_frame
        return start is not None and client.last_frame_time >= start

    def _play(self, frames: int) -> None:
        buf = self.play_port.get_array()
        buf.fill(0.0)
        if self.play_pos is None:
            if not self._started(self.player):
                return
            self.play_pos = 0
        pos = self.play_pos
        chunk = self.signal[pos : pos + frames]
        buf[: len(chunk)] = chunk
        self.play_pos = pos + frames

    def _record(self, frames: int) -> None:
        if self.start_frame is None:
            return
        if self.recording is None:
            if not self._started(self.recorder):
                return
            self.recording = []
        self.recording.append([port.get_array().copy() for port in self.rec_ports])

    def play(self, signal: np.ndarray, tail_seconds: float) -> list[np.ndarray]:
        self.start_frame = None
        self.play_pos = None
        self.recording = None
        self.signal = np.asarray(signal, dtype=np.float32)
        self.start_frame = self.player.last_frame_time + 4 * self.player.blocksize
        total = len(signal) + int(tail_seconds * self.rate)
        time.sleep(total / self.rate + 0.3)
        self.start_frame = None
        chunks = self.recording or []
        takes = []
        for i in range(len(self.rec_ports)):
            out = np.zeros(total, dtype=np.float32)
            got = np.concatenate([c[i] for c in chunks])[:total] if chunks else out[:0]
            out[: len(got)] = got
            takes.append(out)
        return takes

    def close(self) -> None:
        for client in (self.player, self.recorder):
            try:
                client.deactivate()
                client.close()
            except jack.JackError:
                pass


def _serve_clients(
    conn: Connection, server: str | None, target: str, channel: int, outputs: tuple[str, ...]
) -> None:
    """The rig process: answer ("play", signal, tail_seconds) with the recordings."""
    try:
        clients = _Clients(server, target, channel, outputs)
    except jack.JackError as exc:
        conn.send(exc)
        return
    conn.send(clients.rate)
    try:
        while (request := conn.recv())[0] == "play":
            conn.send(clients.play(request[1], request[2]))
    finally:
        clients.close()


class Rig:
    """Plays signals into rvcd and records what comes back, from its own process: in the
    process under test its callbacks would wait for the GIL behind the daemon's worker
    and miss JACK cycles that rvcd does not miss, which shifts recordings."""

    def __init__(
        self,
        server: str | None,
        target: str = "rvcd",
        channel: int = 1,
        outputs: tuple[str, ...] = ("out",),
        env: dict[str, str] | None = None,
    ) -> None:
        """`env`: variables for the rig's process (e.g. PipeWire's JACK library path)."""
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve_clients, args=(child, server, target, channel, outputs), daemon=True
        )
        saved = os.environ.copy()
        os.environ.update(env or {})
        try:
            self._proc.start()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        reply = self._conn.recv()
        if isinstance(reply, Exception):
            self._proc.join(timeout=10)
            raise reply
        self.rate: int = reply

    def play(self, signal: np.ndarray, tail_seconds: float = 1.0) -> np.ndarray:
        """Play `signal`, wait for it and `tail_seconds` more; return what came back,
        sample i aligned with signal sample i (so a delay of d shows as a shift by d)."""
        return self.play_all(signal, tail_seconds)[0]

    def play_all(self, signal: np.ndarray, tail_seconds: float = 1.0) -> list[np.ndarray]:
        """`play`, returning what came back on each of the rig's `outputs`."""
        self._conn.send(("play", np.asarray(signal, dtype=np.float32), tail_seconds))
        return self._conn.recv()

    def close(self) -> None:
        if self._proc.is_alive():
            self._conn.send(("close",))
            self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.kill()
        self._conn.close()


def wait_until(done: Callable[[], object], timeout: float = 10.0) -> bool:
    """Poll `done()` every 0.1 s for up to `timeout` seconds (a loaded machine may take a
    while); whether it came true. Callers assert on the result or what follows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.1)
    return False


def _has_port(server: str, port: str) -> bool:
    try:
        probe = jack.Client("probe", servername=server, no_start_server=True)
    except jack.JackOpenError:
        return False
    try:
        return bool(probe.get_ports(port))
    finally:
        probe.close()


def port_appears(server: str, port: str, timeout: float = 30.0) -> bool:
    """Wait up to `timeout` seconds for JACK port `port` to exist; whether it did."""
    return wait_until(lambda: _has_port(server, port), timeout)


def delay_of(played: np.ndarray, recorded: np.ndarray, max_delay: int) -> int:
    """Lag (samples) at which `recorded` best matches `played` (cross-correlation)."""
    size = 2 * len(recorded)
    xc = np.fft.irfft(np.fft.rfft(recorded, size) * np.conj(np.fft.rfft(played, size)), size)
    return int(np.argmax(xc[: max_delay + 1]))
