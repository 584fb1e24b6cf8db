"""The JACK client: ports, the process callback, connections, latency, server events.

The process callback hands the port buffers to the current `Pipeline.io` (or writes
silence while there is none, e.g. during a reconfiguration); server events (shutdown,
sample-rate and buffer-size changes, xruns) only set flags and counters for the service
loop to act on. Connections to rvcd's ports, made by anyone (a patchbay, jack_connect,
the configuration), are followed as they change, so that a new client (after a
reconfiguration or a server restart) can restore them.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable

import jack

from rvcd.daemon.config import PHYSICAL_PORTS, JackConfig
from rvcd.daemon.jack_latency import LatencyReporter
from rvcd.daemon.pipeline import Pipeline
from rvcd.daemon.pw_jack import pipewire_jack_loaded

log = logging.getLogger("rvcd.jack")
# libjack prints its own diagnostics (e.g. every failed connection attempt) to stderr;
# route them through logging at debug level instead.
jack.set_error_function(lambda msg: log.debug("libjack: %s", msg))
jack.set_info_function(lambda msg: log.debug("libjack: %s", msg))
_DEAD_CLIENTS: list[jack.Client] = []
"""Clients whose server died, kept (never closed) for as long as the process lives: see
`JackIO._leave_dead_client`."""


class JackUnavailableError(RuntimeError):
    """No JACK server could be reached."""


class JackLostError(JackUnavailableError):
    """The server was reached but went away while rvcd was setting up its client."""


class JackIO:
    """One JACK client with `channels` inputs and outputs."""

    def __init__(self, cfg: JackConfig, latency: Callable[[], int]) -> None:
        self.cfg = cfg
        self.pipeline: Pipeline | None = None
        self.xruns = 0
        self.cycles = 0
        """Process callbacks so far: the serve loop watches it move."""
        self.stalled = False
        """Set with `server_gone` when the server stopped running the client without
        saying so (PipeWire restarting): such a client is closed as usual."""
        self._closed = False
        self.not_physical: tuple[str, ...] = ()
        """Clients whose ports @physical never picks (rvcd's own virtual microphone, whose
        input ports PipeWire marks as physical), as 'name:' prefixes."""
        self.server_gone = threading.Event()
        self.reconfigure = threading.Event()
        self._latency = latency
        self._patch: set[tuple[str, str]] = set()
        self._patch_lock = threading.Lock()
        try:
            self.client = jack.Client(cfg.client_name, servername=cfg.server_name, no_start_server=True)
        except jack.JackOpenError as exc:
            where = f"server '{cfg.server_name}'" if cfg.server_name else "the default server"
            raise JackUnavailableError(
                f"cannot connect to JACK ({where}): is jackd or PipeWire running?"
            ) from exc
        self._name: str = self.client.name
        if self._name != cfg.client_name:
            log.warning(
                "the JACK client name '%s' is taken (another rvcd?): this one is '%s'; "
                "set jack.client_name to tell them apart",
                cfg.client_name,
                self._name,
            )
        try:
            self.inputs = [self.client.inports.register(f"in_{i + 1}") for i in range(cfg.channels)]
            self.outputs = [self.client.outports.register(f"out_{i + 1}") for i in range(cfg.channels)]
            self.monitors = (
                [self.client.outports.register(f"monitor_{i + 1}") for i in range(cfg.channels)]
                if cfg.monitor
                else []
            )
        except jack.JackError as exc:
            self._abandon()
            raise JackLostError(f"the JACK server went away while registering ports: {exc}") from exc
        self.rate = self.client.samplerate
        self.period = self.client.blocksize
        self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(self._xrun)
        self.client.set_shutdown_callback(self._shutdown)
        self.client.set_samplerate_callback(self._samplerate)
        self.client.set_blocksize_callback(self._blocksize)
        self.client.set_port_connect_callback(self._port_connect)
        # The monitor ports carry the same delay as the outputs: declared alike.
        self._latency_reporter = LatencyReporter(
            self.client, self.inputs * (1 + bool(self.monitors)), self.outputs + self.monitors, latency
        )

    @property
    def name(self) -> str:
        """The client's name (as JACK gave it, read once: safe after closing)."""
        return self._name

    def _process(self, frames: int) -> None:
        self.cycles += 1
        pipeline = self.pipeline
        if pipeline is None or frames != pipeline.period:
            for port in self.outputs + self.monitors:
                port.get_array().fill(0.0)
            return
        pipeline.io(
            [p.get_array() for p in self.inputs],
            [p.get_array() for p in self.outputs],
            frames,
            [p.get_array() for p in self.monitors],
        )

    def _port_connect(self, a: jack.Port, b: jack.Port, connected: bool) -> None:
        """JACK's notification thread: note a connection to or from one of our ports."""
        prefix = self._name + ":"
        try:
            names = (a.name, b.name)
        except jack.JackError:
            return
        for own, other in (names, names[::-1]):
            if own.startswith(prefix) and not other.startswith(prefix):
                entry = (own[len(prefix) :], other)
                with self._patch_lock:
                    if connected:
                        self._patch.add(entry)
                    else:
                        self._patch.discard(entry)

    def patch(self) -> set[tuple[str, str]]:
        """The connections of our ports: (our port's short name, the other port's full name)."""
        with self._patch_lock:
            return set(self._patch)

    def restore(self, patch: set[tuple[str, str]]) -> None:
        """Connect again what `patch` (from an earlier client) held; log what came back and
        what could not (a port that no longer exists)."""
        restored, missing = [], []
        ours = {p.shortname: p for p in self.inputs + self.outputs + self.monitors}
        for own, other in sorted(patch):
            port = ours.get(own)
            try:
                target = self.client.get_port_by_name(other) if port is not None else None
            except jack.JackError:
                target = None
            if port is None or target is None:
                missing.append(f"{own} - {other}")
                continue
            try:
                if port.is_input:
                    self.client.connect(target, port)
                else:
                    self.client.connect(port, target)
            except jack.JackError as exc:
                if "already exists" not in str(exc):
                    missing.append(f"{own} - {other} ({exc})")
                    continue
            restored.append(f"{port.name} {'<-' if port.is_input else '->'} {other}")
        if restored:
            log.info("restored %d connection(s): %s", len(restored), ", ".join(restored))
        if missing:
            log.warning("could not restore %d connection(s): %s", len(missing), ", ".join(missing))

    def _xrun(self, delay: float) -> None:
        self.xruns += 1

    def _shutdown(self, status: jack.Status, reason: str) -> None:
        self.server_gone.set()

    def _samplerate(self, rate: int) -> None:
        if self.rate != rate:
            self.rate = rate
            self.reconfigure.set()

    def _blocksize(self, blocksize: int) -> None:
        if self.period != blocksize:
            self.period = blocksize
            self.reconfigure.set()

    def activate(self) -> None:
        """Start the process callback and make the configured connections; raises
        JackLostError (and leaves the server) if the server is gone."""
        try:
            self.client.activate()
        except jack.JackError as exc:
            self._abandon()
            raise JackLostError(f"the JACK server went away before rvcd was active: {exc}") from exc
        self._connect(self.cfg.connect_inputs, self.inputs, outgoing=False)
        self._connect(self.cfg.connect_outputs, self.outputs, outgoing=True)
        self._connect(self.cfg.connect_monitor, self.monitors, outgoing=True)

    def _connect(self, patterns: list[str], ports: list[jack.Port], outgoing: bool) -> None:
        for i, (pattern, port) in enumerate(zip(patterns, ports, strict=False)):
            try:
                if pattern == PHYSICAL_PORTS:
                    matches = self._physical(i, outgoing, len(ports))
                else:
                    matches = self.client.get_ports(
                        pattern, is_audio=True, is_input=outgoing, is_output=not outgoing
                    )
            except re.error as exc:
                log.warning("connect pattern %r is not a valid regular expression: %s", pattern, exc)
                continue
            if not matches and pattern == PHYSICAL_PORTS:
                log.warning("no hardware port for %s (%s): connect it by hand", port.name, pattern)
            elif not matches:
                log.warning("no JACK port matches %r for %s", pattern, port.name)
            for other in matches:
                try:
                    if outgoing:
                        self.client.connect(port, other)
                    else:
                        self.client.connect(other, port)
                    log.info("connected %s %s %s", port.name, "->" if outgoing else "<-", other.name)
                except jack.JackError as exc:
                    log.warning("cannot connect %s and %s: %s", port.name, other.name, exc)

    def _physical(self, i: int, outgoing: bool, channels: int) -> list[jack.Port]:
        """The hardware port(s) for channel i: the i-th one; a single output channel
        goes to the first two playback ports (both ears)."""
        ports = [
            port
            for port in self.client.get_ports(
                is_audio=True, is_physical=True, is_input=outgoing, is_output=not outgoing
            )
            if not port.name.startswith(self.not_physical)
        ]
        if outgoing and channels == 1:
            return ports[:2]
        return ports[i : i + 1]

    @property
    def on_pipewire(self) -> bool:
        """Whether the JACK library in use is PipeWire's (so the server is PipeWire)."""
        return pipewire_jack_loaded()

    def update_latency(self) -> None:
        self._latency_reporter.recompute()

    def _leave_dead_client(self) -> None:
        """Leave a client whose server died without jack_client_close. Closing it makes
        libjack (jackd2) cancel its threads with pthread_cancel, and a thread cancelled
        while it waits for Python's GIL (to run a callback: the shutdown notice, an error
        message) exits holding the GIL's lock, which hangs the whole process (seen when
        the server vanished during start-up). So the client is kept, and its pointer
        cleared so that nothing, not even garbage collection, closes it: what is left
        behind is its memory and blocked threads, once per server outage."""
        _DEAD_CLIENTS.append(self.client)
        self.client._ptr = jack._ffi.NULL  # noqa: SLF001 (JACK-Client has no "forget" call)

    def stall(self) -> None:
        """The server stopped running this client without saying so: treat it as gone,
        but close the client as usual (see `stalled`)."""
        self.stalled = True
        self.server_gone.set()

    def _abandon(self) -> None:
        self.server_gone.set()
        self.close()

    def close(self) -> None:
        """Deactivate, unregister the ports and leave the server (safe to call twice); a
        client whose server died is left instead (`_leave_dead_client`)."""
        if self._closed:
            return
        self._closed = True
        if self.server_gone.is_set() and not self.stalled:
            self._leave_dead_client()
            return
        try:
            if not self.server_gone.is_set():
                self.client.deactivate()
                for port in self.inputs + self.outputs + self.monitors:
                    port.unregister()
            self.client.close()
        except jack.JackError as exc:
            log.debug("closing the JACK client: %s", exc)
