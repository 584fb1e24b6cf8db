"""The OSC control surface: a python-osc UDP server in its own thread.

Parameters are written to the `ParamStore` (the worker reads them at block boundaries);
nothing here touches audio or inference. Every request is answered: the value after a
set or with no argument (read-back), `/rvcd/warning` when a value was clamped, and
`/rvcd/error` (address, reason) for unknown addresses, wrong types and wrong arity, which
change nothing. Replies go to the sender, or to `reply_port` on the sender's host.
Malformed, oversized and excess packets (a token bucket) are dropped and counted.
"""

from __future__ import annotations

import logging
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pythonosc import osc_packet
from pythonosc.osc_message_builder import OscMessageBuilder

from rvcd.control.model_names import INDEX_SUFFIXES, MODEL_SUFFIXES, ModelNameError, resolve_in
from rvcd.control.osc_values import OscTypeError, to_bool, to_float, to_int, to_str
from rvcd.control.param_store import ParamStore
from rvcd.dsp.pitch import methods as f0_methods
from rvcd.dsp.stream_params import RANGES

log = logging.getLogger("rvcd.osc")
PREFIX = "/rvcd"
MAX_PACKET_BYTES = 8192
"""Larger datagrams are dropped unread (no control message comes near this)."""
BURST_PACKETS = 200
PACKETS_PER_SECOND = 1000.0
SUBSCRIPTION_TTL_S = 60.0
"""A subscription lapses unless renewed with another /rvcd/subscribe within this time."""
FLOAT_PARAMS = ("pitch", "formant", "index_rate", "gate", "rms_mix")

Reply = Callable[[str, list[Any]], None]


class ControlTarget(Protocol):
    """What the OSC surface needs from the daemon."""

    store: ParamStore

    def status(self) -> dict[str, Any]: ...

    def meters(self) -> dict[str, float]: ...

    def n_speakers(self) -> int | None: ...

    def model_name(self) -> str: ...

    def request_model(self, model: Path, index: Path | None, label: str, reply: Reply) -> None: ...


@dataclass(frozen=True)
class OscSettings:
    bind: str = "127.0.0.1"
    port: int = 9000
    allowed_senders: tuple[str, ...] = ()
    reply_port: int | None = None
    meter_rate: float = 10.0
    models_dir: Path | None = None


@dataclass
class OscCounters:
    received: int = 0
    """Datagrams read from the socket (the kernel may drop more under a flood)."""
    accepted: int = 0
    """Datagrams parsed and dispatched."""
    handled: int = 0
    """Messages dispatched (a bundle holds several)."""
    malformed: int = 0
    oversized: int = 0
    flooded: int = 0
    refused_senders: int = 0
    errors_replied: int = 0


@dataclass
class _Subscription:
    address: tuple[str, int]
    expires: float = field(default=0.0)


def _message(address: str, args: list[Any]) -> bytes:
    builder = OscMessageBuilder(address=address)
    for arg in args:
        if isinstance(arg, bool):
            builder.add_arg(int(arg), "i")
        elif isinstance(arg, int):
            builder.add_arg(arg, "i")
        elif isinstance(arg, float):
            builder.add_arg(arg, "f")
        else:
            builder.add_arg(str(arg), "s")
    return builder.build().dgram


class OscServer:
    """Serves the `/rvcd/*` address space for one daemon."""

    def __init__(self, settings: OscSettings, target: ControlTarget) -> None:
        self.settings = settings
        self.target = target
        self.counters = OscCounters()
        self.subscriptions: dict[tuple[str, int], _Subscription] = {}
        self._tokens = float(BURST_PACKETS)
        self._refill_at = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        handler = self._make_handler()
        socketserver.UDPServer.allow_reuse_address = True
        self.server = socketserver.UDPServer((settings.bind, settings.port), handler)
        self.server.max_packet_size = 65536
        self.port = self.server.server_address[1]
        self._threads = [
            threading.Thread(
                target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, name="rvcd-osc"
            ),
            threading.Thread(target=self._meter_loop, name="rvcd-osc-meters"),
        ]

    def start(self) -> None:
        for t in self._threads:
            t.daemon = True
            t.start()
        log.info("OSC listening on %s:%d", self.settings.bind, self.port)

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        for t in self._threads:
            t.join(timeout=5)

    # -- transport ------------------------------------------------------------------------

    def _make_handler(self) -> type[socketserver.BaseRequestHandler]:
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, _sock = self.request
                outer._datagram(data, self.client_address)

        return Handler

    def _send(self, address: tuple[str, int], osc_address: str, args: list[Any]) -> None:
        try:
            self.server.socket.sendto(_message(osc_address, args), address)
        except OSError as exc:
            log.debug("cannot reply to %s: %s", address, exc)

    def _reply_address(self, sender: tuple[str, int]) -> tuple[str, int]:
        port = self.settings.reply_port
        return (sender[0], port) if port else sender

    def _allow(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(BURST_PACKETS, self._tokens + (now - self._refill_at) * PACKETS_PER_SECOND)
            self._refill_at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True

    def _datagram(self, data: bytes, sender: tuple[str, int]) -> None:
        c = self.counters
        c.received += 1
        if self.settings.allowed_senders and sender[0] not in self.settings.allowed_senders:
            c.refused_senders += 1
            return
        if len(data) > MAX_PACKET_BYTES:
            c.oversized += 1
            return
        if not self._allow():
            c.flooded += 1
            return
        reply_to = self._reply_address(sender)

        def reply(address: str, args: list[Any]) -> None:
            self._send(reply_to, address, args)

        try:
            packet = osc_packet.OscPacket(data)
        except osc_packet.ParseError as exc:
            c.malformed += 1
            self._error(reply, "", f"malformed OSC packet: {exc}")
            return
        c.accepted += 1
        for timed in packet.messages:
            msg = timed.message
            self.dispatch(msg.address, list(msg.params), reply, sender)
            c.handled += 1

    def _error(self, reply: Reply, address: str, reason: str) -> None:
        self.counters.errors_replied += 1
        reply(f"{PREFIX}/error", [address, reason])

    # -- address space --------------------------------------------------------------------

    def dispatch(self, address: str, args: list[Any], reply: Reply, sender: tuple[str, int]) -> None:
        """Handle one message; every outcome is answered through `reply`."""
        if not address.startswith(PREFIX + "/"):
            self._error(reply, address, "unknown address")
            return
        parts = address[len(PREFIX) + 1 :].split("/")
        name = parts[0]
        norm = len(parts) == 2 and parts[1] == "norm"
        try:
            if len(parts) > 2 or (len(parts) == 2 and not norm):
                raise LookupError
            if norm and name not in FLOAT_PARAMS:
                raise LookupError
            if name in FLOAT_PARAMS:
                self._float_param(name, args, reply, norm)
            elif name == "speaker":
                self._speaker(args, reply)
            elif name == "bypass":
                self._bypass(args, reply)
            elif name == "f0_method":
                self._f0_method(args, reply)
            elif name == "model":
                self._model(args, reply)
            elif name == "status":
                self._arity(address, args, 0, 0)
                self._status(reply)
            elif name == "subscribe":
                self._subscribe(args, reply, sender)
            elif name == "unsubscribe":
                self._arity(address, args, 0, 1)
                self._unsubscribe(args, reply, sender)
            else:
                raise LookupError
        except LookupError:
            self._error(reply, address, "unknown address")
        except (OscTypeError, ValueError) as exc:
            self._error(reply, address, str(exc))

    @staticmethod
    def _arity(address: str, args: list[Any], low: int, high: int) -> None:
        if not low <= len(args) <= high:
            want = str(low) if low == high else f"{low}..{high}"
            raise ValueError(f"expected {want} argument(s), got {len(args)}")

    def _float_param(self, name: str, args: list[Any], reply: Reply, norm: bool) -> None:
        address = f"{PREFIX}/{name}" + ("/norm" if norm else "")
        self._arity(address, args, 0, 1)
        lo, hi = RANGES[name]
        if args:
            value = to_float(args[0])
            if norm:
                value = lo + min(max(value, 0.0), 1.0) * (hi - lo)
            stored, clamped = self.target.store.set(name, value)
            if clamped:
                reply(
                    f"{PREFIX}/warning", [address, f"{name} {value:g} clamped to {stored:g} ({lo:g}..{hi:g})"]
                )
        current = float(getattr(self.target.store.snapshot(), name))
        reply(address, [(current - lo) / (hi - lo) if norm else current])

    def _speaker(self, args: list[Any], reply: Reply) -> None:
        address = f"{PREFIX}/speaker"
        self._arity(address, args, 0, 1)
        if args:
            value = to_int(args[0])
            n = self.target.n_speakers()
            clamped = value
            if n is not None:
                clamped = min(max(value, 0), n - 1)
            elif value < 0:
                clamped = 0
            if clamped != value:
                reply(f"{PREFIX}/warning", [address, f"speaker {value} clamped to {clamped}"])
            self.target.store.set("speaker", clamped)
        reply(address, [int(self.target.store.snapshot().speaker)])

    def _bypass(self, args: list[Any], reply: Reply) -> None:
        address = f"{PREFIX}/bypass"
        self._arity(address, args, 0, 1)
        if args:
            self.target.store.set("bypass", to_bool(args[0]))
        reply(address, [int(self.target.store.snapshot().bypass)])

    def _f0_method(self, args: list[Any], reply: Reply) -> None:
        address = f"{PREFIX}/f0_method"
        self._arity(address, args, 0, 1)
        if args:
            method = to_str(args[0])
            if method not in f0_methods():
                raise ValueError(f"unknown f0 method {method!r}; choose one of {', '.join(f0_methods())}")
            self.target.store.set("f0_method", method)
        reply(address, [self.target.store.snapshot().f0_method])

    def _model(self, args: list[Any], reply: Reply) -> None:
        address = f"{PREFIX}/model"
        self._arity(address, args, 0, 2)
        if not args:
            reply(address, [self.target.model_name()])
            return
        name = to_str(args[0])
        index_name = to_str(args[1]) if len(args) > 1 else None
        try:
            model = resolve_in(self.settings.models_dir, name, MODEL_SUFFIXES)
            index = resolve_in(self.settings.models_dir, index_name, INDEX_SUFFIXES) if index_name else None
        except ModelNameError as exc:
            raise ValueError(str(exc)) from None
        reply(f"{PREFIX}/model/loading", [name])
        self.target.request_model(model, index, name, reply)

    def _status(self, reply: Reply) -> None:
        status = self.target.status()
        params = status.pop("params")
        args: list[Any] = []
        for key in ("pitch", "formant", "index_rate", "f0_method", "speaker", "gate", "rms_mix", "bypass"):
            args += [key, getattr(params, key)]
        for key, value in status.items():
            args += [key, value if isinstance(value, int | float | str) else str(value)]
        reply(f"{PREFIX}/status", args)

    def _subscribe(self, args: list[Any], reply: Reply, sender: tuple[str, int]) -> None:
        self._arity(f"{PREFIX}/subscribe", args, 0, 1)
        port = to_int(args[0]) if args else None
        if port is not None and not 1 <= port <= 65535:
            raise ValueError(f"port {port} outside 1..65535")
        target = (sender[0], port) if port else self._reply_address(sender)
        with self._lock:
            self.subscriptions[target] = _Subscription(target, time.monotonic() + SUBSCRIPTION_TTL_S)
        reply(f"{PREFIX}/subscribe", [self.settings.meter_rate, SUBSCRIPTION_TTL_S])

    def _unsubscribe(self, args: list[Any], reply: Reply, sender: tuple[str, int]) -> None:
        port = to_int(args[0]) if args else None
        target = (sender[0], port) if port else self._reply_address(sender)
        with self._lock:
            found = self.subscriptions.pop(target, None) is not None
        reply(f"{PREFIX}/unsubscribe", [int(found)])

    def _meter_loop(self) -> None:
        period = 1.0 / self.settings.meter_rate
        while not self._stop.wait(period):
            now = time.monotonic()
            with self._lock:
                for key in [k for k, s in self.subscriptions.items() if s.expires < now]:
                    del self.subscriptions[key]
                targets = list(self.subscriptions)
            if not targets:
                continue
            m = self.target.meters()
            args = [m["in_db"], m["out_db"], m["latency_ms"], m["load"]]
            for target in targets:
                self._send(target, f"{PREFIX}/meters", args)
