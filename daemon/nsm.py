"""A client of the NSM session-management protocol (New Session Manager, RaySession, Agordejo).

When `$NSM_URL` is set, `rvcd run` is started by a session manager and must follow its
protocol (new-session-manager.jackaudio.org/api, "Client to Server" and "Server to
Client"), all OSC over UDP:

    rvcd -> server  /nsm/server/announce  s:name s:capabilities s:executable i:1 i:1 i:pid
    server -> rvcd  /reply "/nsm/server/announce" s:message s:server_name s:capabilities
    server -> rvcd  /nsm/client/open  s:path s:display_name s:client_id
    rvcd -> server  /reply "/nsm/client/open" s:message   (once the JACK client is up)
    server -> rvcd  /nsm/client/save
    rvcd -> server  /reply "/nsm/client/save" s:message
    rvcd -> server  /nsm/client/is_dirty, /nsm/client/is_clean, /nsm/client/message i:level s:text

rvcd keeps a session's state in the directory `path`: `config.yaml` there (created from
the packaged default on first open, with OSC on any free port since a session may run
several instances), and registers its JACK client as `client_id`. Saving writes the
parameters set since (pitch, formant, ...) into that file. The server quits clients with
SIGTERM, which stops rvcd at once (`Daemon.handle_signals`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from rvcd.control.osc_wire import MalformedPacketError, split_messages

log = logging.getLogger("rvcd.nsm")
CAPABILITIES = ":switch:dirty:message:"
API_VERSION = (1, 1)
ERR_GENERAL = -1
"""NSM's generic error code (`/error address i:code s:message`)."""
ERR_NO_SUCH_FILE = -5


class NsmError(RuntimeError):
    """The session manager cannot be reached or refused rvcd."""


def _message(address: str, *args: Any) -> bytes:
    builder = OscMessageBuilder(address=address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


class NsmClient:
    """The OSC side of the protocol: a socket, the announce handshake, replies."""

    def __init__(self, url: str, executable: str = "rvcd") -> None:
        parsed = urlparse(url)
        if parsed.scheme != "osc.udp" or not parsed.hostname or not parsed.port:
            raise NsmError(f"NSM_URL {url!r} is not an osc.udp://host:port/ address")
        self.server = (parsed.hostname, parsed.port)
        self.executable = executable
        family = socket.getaddrinfo(parsed.hostname, parsed.port, type=socket.SOCK_DGRAM)[0][0]
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind(("", 0))
        self._stop = threading.Event()
        self._dirty = False

    def send(self, address: str, *args: Any) -> None:
        try:
            self.sock.sendto(_message(address, *args), self.server)
        except OSError as exc:
            log.warning("cannot reach the session manager at %s:%d: %s", *self.server, exc)

    def receive(self, timeout: float | None) -> tuple[str, list[Any]] | None:
        """The next well-formed message from the server, or None on timeout."""
        self.sock.settimeout(timeout)
        while True:
            try:
                data, sender = self.sock.recvfrom(65536)
            except TimeoutError:
                return None
            try:
                messages = split_messages(data)
            except MalformedPacketError as exc:
                log.warning("NSM: dropped a malformed datagram from %s: %s", sender[0], exc)
                continue
            if messages:
                msg = OscMessage(messages[0])
                return msg.address, list(msg.params)

    def announce(self, timeout: float = 10.0) -> tuple[str, str, str]:
        """Announce rvcd and wait for `/nsm/client/open`; returns (path, display name,
        client id). Raises NsmError if the server refuses or never opens a session."""
        major, minor = API_VERSION
        self.send("/nsm/server/announce", "rvcd", CAPABILITIES, self.executable, major, minor, os.getpid())
        while True:
            got = self.receive(timeout)
            if got is None:
                raise NsmError(f"no answer from the session manager at {self.server[0]}:{self.server[1]}")
            address, args = got
            if address == "/error" and args[:1] == ["/nsm/server/announce"]:
                raise NsmError(f"the session manager refused rvcd: {args[-1]}")
            if address == "/reply" and args[:1] == ["/nsm/server/announce"]:
                server = args[2] if len(args) > 2 else "?"
                log.info("NSM: announced to %s (%s)", server, args[1] if len(args) > 1 else "")
            elif address == "/nsm/client/open" and len(args) == 3:
                return str(args[0]), str(args[1]), str(args[2])

    def reply(self, address: str, message: str) -> None:
        self.send("/reply", address, message)

    def error(self, address: str, code: int, message: str) -> None:
        self.send("/error", address, code, message)

    def message(self, text: str, priority: int = 0) -> None:
        """A status line the session manager shows (`:message:` capability)."""
        self.send("/nsm/client/message", priority, text)

    def mark_dirty(self, dirty: bool) -> None:
        """Tell the server there are unsaved changes, or none (sent on change only)."""
        if dirty != self._dirty:
            self._dirty = dirty
            self.send("/nsm/client/is_dirty" if dirty else "/nsm/client/is_clean")

    def serve(self, save: Callable[[], str], switch: Callable[[str, str, str], str]) -> threading.Thread:
        """Answer save and open requests on a thread, until `stop()`. `save()` and
        `switch(path, display_name, client_id)` return the reply message or raise."""

        def loop() -> None:
            while not self._stop.is_set():
                got = self.receive(0.2)
                if got is None:
                    continue
                address, args = got
                try:
                    if address == "/nsm/client/save":
                        self.reply(address, save())
                        self.mark_dirty(False)
                    elif address == "/nsm/client/open" and len(args) == 3:
                        self.reply(address, switch(str(args[0]), str(args[1]), str(args[2])))
                        self.mark_dirty(False)
                    else:
                        log.debug("NSM: ignored %s %s", address, args)
                except Exception as exc:  # reported to the session manager, not fatal
                    log.error("NSM: %s failed: %s", address, exc)
                    self.error(address, ERR_GENERAL, str(exc))

        thread = threading.Thread(target=loop, name="rvcd-nsm", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def session_config(path: str | Path, default: Path) -> Path:
    """The configuration kept in a session directory, created from `default` (with OSC on
    any free port) the first time."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "config.yaml"
    if not config.exists():
        note = "  port: 0  # any free port (logged): a session may run several rvcd"
        text = default.read_text().replace("  port: 9000", note)
        config.write_text(text)
        log.info("NSM: new session state in %s", config)
    return config


class SessionLink:
    """Ties a running daemon to its session: open reply, dirty state, save and switch."""

    def __init__(self, client: NsmClient, daemon: Any, config: Path, default: Path) -> None:
        self.client = client
        self.daemon = daemon
        self.config = config
        self.default = default

    def opened(self) -> None:
        """Tell the server the session is open, then serve its requests."""
        d = self.daemon
        where = f"JACK client '{d.jack.name}'" if d.jack else "JACK not reachable yet"
        osc = f", OSC port {d.osc.port}" if d.osc else ""
        self.client.reply("/nsm/client/open", f"rvcd ready: {where}{osc}")
        self.client.message(f"{where}{osc}")
        d.store.subscribe(lambda _params: self.client.mark_dirty(True))
        self.client.serve(self.save, self.switch)

    def save(self) -> str:
        self.daemon.save_params(self.config)
        return f"saved to {self.config}"

    def switch(self, path: str, display_name: str, client_id: str) -> str:
        config = session_config(path, self.default)
        overrides = {**self.daemon.cfg.overrides, "jack.client_name": client_id}
        if not self.daemon.request_switch(config, overrides).result(timeout=120):
            raise NsmError(f"cannot switch to {config} (see the log)")
        self.config = config
        return f"switched to {display_name}"
