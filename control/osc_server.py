"""The OSC control surface: a python-osc UDP server in its own thread.

Parameters are written to the `ParamStore` (the worker reads them at block boundaries);
nothing here touches audio or inference. Every request is answered: the value after a
set or with no argument (read-back), `/rvcd/warning` when a value was clamped, and
`/rvcd/error` (address, reason) for unknown addresses, wrong types and wrong arity, which
change nothing. Replies go to the sender, or to `reply_port` on the sender's host.
Datagrams are checked before python-osc parses them (`osc_wire`); malformed, oversized,
unwanted and excess ones (a token bucket per sender, counted in messages) are dropped,
counted, and summed up in one log line per kind every `REPORT_EVERY_S`. The socket is
bound exclusively: a second process cannot take the control port over.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from rvcd.control.model_names import INDEX_SUFFIXES, MODEL_SUFFIXES, ModelNameError, resolve_in
from rvcd.control.osc_addresses import ADDRESSES
from rvcd.control.osc_values import OscTypeError, to_bool, to_float, to_int, to_str
from rvcd.control.osc_wire import MalformedPacketError, split_messages
from rvcd.control.oscquery import OscQueryServer
from rvcd.control.param_store import ParamStore
from rvcd.control.presets import (
    MAX_LISTED,
    list_presets,
    model_preset_path,
    preset_path,
    read_preset,
    write_preset,
)
from rvcd.control.rate_limit import SenderBuckets
from rvcd.control.subscribers import TTL_S, Subscribers
from rvcd.dsp.pitch import methods as f0_methods
from rvcd.dsp.stream_params import MAX_SPEAKER, RANGES

log = logging.getLogger("rvcd.osc")
PREFIX = "/rvcd"
MAX_PACKET_BYTES = 8192
"""Larger datagrams are dropped unread (no control message comes near this)."""
BURST_MESSAGES = 100
"""Messages a quiet sender may send at once."""
MESSAGES_PER_SECOND = 200.0
"""Messages per second each sender may send, sustained (a fader sends about 60)."""
REPORT_EVERY_S = 10.0
"""Dropped datagrams are summed up in the log at most this often."""
POLL_S = 0.2
"""The OSC thread wakes at least this often (stop requests, reports, its heartbeat)."""
CHANGES_EVERY_S = 1.0
"""Parameter changes made over OSC are logged, coalesced, at most this often."""
FLOAT_PARAMS = ("pitch", "formant", "index_rate", "gate", "rms_mix", "gain")
MONITOR_PARAMS = {"mix": "monitor_mix", "gain": "monitor_gain", "mute": "monitor_mute"}
"""`/rvcd/monitor/<key>` -> the parameter it sets."""
FEEDBACK_PARAMS = (*FLOAT_PARAMS, "speaker", "f0_method", "bypass", *MONITOR_PARAMS.values())
"""Parameters sent to subscribers when they subscribe and whenever they change."""


def param_address(name: str) -> str:
    """The OSC address of parameter `name` (`monitor_mix` is `/rvcd/monitor/mix`)."""
    for key, param in MONITOR_PARAMS.items():
        if param == name:
            return f"{PREFIX}/monitor/{key}"
    return f"{PREFIX}/{name}"


Reply = Callable[[str, list[Any]], None]


class ControlTarget(Protocol):
    """What the OSC surface needs from the daemon."""

    store: ParamStore

    def status(self) -> dict[str, Any]: ...

    def meters(self) -> dict[str, float]: ...

    def n_speakers(self) -> int | None: ...

    def model_name(self) -> str: ...

    def no_effect(self, name: str, value: Any) -> str | None:
        """Why setting parameter `name` to `value` changes nothing now, or None."""
        ...

    def request_model(
        self, model: Path, index: Path | None, label: str, reply: Reply, params: dict[str, Any] | None = None
    ) -> None:
        """Load `model` in the background; `params` (a preset's values) apply at the same
        block boundary as the new voice."""
        ...


@dataclass(frozen=True)
class OscSettings:
    bind: str = "127.0.0.1"
    port: int = 9000
    allowed_senders: tuple[str, ...] = ()
    reply_port: int | None = None
    meter_rate: float = 10.0
    models_dir: Path | None = None
    presets_dir: Path | None = None
    query_port: int | None = 0
    """OSCQuery HTTP port (0 = any free one, advertised over mDNS; None = no OSCQuery)."""


@dataclass
class OscCounters:
    received: int = 0
    """Datagrams read from the socket (the kernel may drop more under a flood)."""
    accepted: int = 0
    """Datagrams checked, parsed and dispatched."""
    handled: int = 0
    """Messages dispatched (a bundle holds several)."""
    malformed: int = 0
    oversized: int = 0
    flooded: int = 0
    """Datagrams dropped because their sender was over its message rate."""
    refused_senders: int = 0
    errors_replied: int = 0
    internal_errors: int = 0
    """Messages whose handling raised unexpectedly (answered with /rvcd/error)."""
    subscriptions_evicted: int = 0
    malformed_kinds: Counter[str] = field(default_factory=Counter)
    """Malformed datagrams by defect (`osc_wire.MalformedPacketError.kind`)."""
    refused: Counter[str] = field(default_factory=Counter)
    """Requests answered with /rvcd/error, by address and reason."""

    def dropped(self) -> dict[str, int]:
        """Every drop and refusal by kind (for status and logs)."""
        return {
            "osc_malformed": self.malformed,
            "osc_oversized": self.oversized,
            "osc_flooded": self.flooded,
            "osc_refused": self.refused_senders,
            "osc_internal_errors": self.internal_errors,
            "osc_subscriptions_evicted": self.subscriptions_evicted,
        }


def _osc_int(value: int) -> tuple[Any, str]:
    """An int as OSC sends it: 32-bit if it fits, else 64-bit, else its decimal string."""
    if -(2**31) <= value < 2**31:
        return value, "i"
    if -(2**63) <= value < 2**63:
        return value, "h"
    return str(value), "s"


def _message(address: str, args: list[Any]) -> bytes:
    builder = OscMessageBuilder(address=address)
    for arg in args:
        if isinstance(arg, bool):
            builder.add_arg(int(arg), "i")
        elif isinstance(arg, int):
            builder.add_arg(*_osc_int(arg))
        elif isinstance(arg, float):
            builder.add_arg(arg, "f")
        else:
            builder.add_arg(str(arg), "s")
    return builder.build().dgram


def resolve_senders(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The addresses of `osc.allowed_senders` (IP addresses or host names); raises
    ValueError naming the first name that does not resolve."""
    out: list[str] = []
    for name in names:
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_DGRAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise ValueError(f"{name!r} does not resolve to an address ({exc})") from None
        out += [_host(info[4][0]) for info in infos if _host(info[4][0]) not in out]
    return tuple(out)


def _host(address: str) -> str:
    """A sender's host as `resolve_senders` gives it (IPv4 seen through IPv6 unwrapped)."""
    return address.removeprefix("::ffff:").split("%", 1)[0]


class OscBindError(OSError):
    """The control port cannot be bound; the message names it and how to change it."""


def bind_socket(bind: str, port: int) -> socket.socket:
    """A UDP socket bound exclusively to `bind`:`port` (IPv4 or IPv6; port 0 = any free).

    No SO_REUSEADDR: on Linux two UDP sockets share a port only if both ask for it, so
    no other process can bind rvcd's port and take its traffic (nor can rvcd take
    another's)."""
    try:
        family, _, _, _, address = socket.getaddrinfo(bind, port, type=socket.SOCK_DGRAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise OscBindError(f"osc.bind: {bind!r} is not an address of this host ({exc})") from None
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OscBindError(
            f"cannot listen for OSC on {bind} port {port}: {exc.strerror} (another rvcd or another "
            "program holds it?); choose another with osc.port in the configuration (0 = any free port)"
        ) from None
    sock.settimeout(POLL_S)
    return sock


class OscServer:
    """Serves the `/rvcd/*` address space for one daemon."""

    def __init__(self, settings: OscSettings, target: ControlTarget) -> None:
        self.settings = settings
        self.target = target
        self.counters = OscCounters()
        self.subscribers = Subscribers()
        self._sent = target.store.snapshot()
        """The state the subscribers were last told (feedback sends only what changed)."""
        self._feedback_lock = threading.Lock()
        target.store.subscribe(self._feedback)
        self.heartbeat = time.monotonic()
        """When the OSC thread last went round its loop (monotonic s; the watchdog reads it)."""
        self._buckets = SenderBuckets(MESSAGES_PER_SECOND, BURST_MESSAGES)
        self._stop = threading.Event()
        self.sock = bind_socket(settings.bind, settings.port)
        self.port = self.sock.getsockname()[1]
        self.query = self._make_query(settings)
        self._reported = OscCounters()
        self._reported_at = time.monotonic()
        self._changes: dict[str, tuple[Any, Any]] = {}
        self._changed_by: set[str] = set()
        self._changes_at = time.monotonic()
        self._threads = [
            threading.Thread(target=self._serve, name="rvcd-osc"),
            threading.Thread(target=self._meter_loop, name="rvcd-osc-meters"),
        ]

    def start(self) -> None:
        for t in self._threads:
            t.daemon = True
            t.start()
        log.info("OSC listening on %s port %d", self.settings.bind, self.port)
        if self.query is not None:
            self.query.start()

    def stop(self) -> None:
        self.target.store.unsubscribe(self._feedback)
        if self.query is not None:
            self.query.stop()
        self._stop.set()
        for t in self._threads:
            if t.ident is not None:
                t.join(timeout=2)
        self.sock.close()

    def apply(self, settings: OscSettings) -> list[str]:
        """Take new settings while serving (configuration reload); returns what changed.
        A new bind address or port is bound first: if that fails (OscBindError) nothing
        changes."""
        names = [f.name for f in fields(OscSettings)]
        changed = [n for n in names if getattr(settings, n) != getattr(self.settings, n)]
        if "bind" in changed or "port" in changed:
            sock = bind_socket(settings.bind, settings.port)
            old, self.sock = self.sock, sock
            self.port = sock.getsockname()[1]
            old.close()
            log.info("OSC now listening on %s port %d", settings.bind, self.port)
        if {"bind", "port", "query_port", "allowed_senders"} & set(changed):
            if self.query is not None:
                self.query.stop()
            self.query = self._make_query(settings)
            if self.query is not None:
                self.query.start()
        self.settings = settings
        return changed

    def _make_query(self, settings: OscSettings) -> OscQueryServer | None:
        if settings.query_port is None:
            return None
        try:
            return OscQueryServer(
                settings.bind, settings.query_port, self.port, self._values, settings.allowed_senders
            )
        except OSError as exc:
            raise OscBindError(
                f"cannot serve OSCQuery on {settings.bind} port {settings.query_port}: {exc.strerror}; "
                "choose another with osc.query_port (0 = any free port, null = no OSCQuery)"
            ) from None

    def _values(self) -> dict[str, Any]:
        """The current value of every readable address (OSCQuery VALUE)."""
        params = self.target.store.snapshot()
        out: dict[str, Any] = {"/rvcd/model": self.target.model_name()}
        for address in ADDRESSES:
            if address.param is None:
                continue
            value = getattr(params, address.param)
            if address.path.endswith("/norm"):
                lo, hi = RANGES[address.param]
                value = (float(value) - lo) / (hi - lo)
            out[address.path] = int(value) if isinstance(value, bool) else value
        return out

    # -- transport ------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            self.heartbeat = now = time.monotonic()
            if now - self._reported_at >= REPORT_EVERY_S:
                self._report_drops(now)
            if self._changes and now - self._changes_at >= CHANGES_EVERY_S:
                self._log_changes(now)
            sock = self.sock
            try:
                data, sender = sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                if sock is self.sock and not self._stop.is_set():
                    time.sleep(POLL_S)
                continue
            try:
                self._datagram(data, (_host(sender[0]), sender[1]))
            except Exception:  # the loop must survive anything a datagram causes
                self.counters.internal_errors += 1
                if self.counters.internal_errors == 1:
                    log.exception("OSC: a datagram from %s raised (later ones are counted)", sender[0])

    def _report_drops(self, now: float) -> None:
        """One log line per kind of drop since the last report."""
        c, r = self.counters, self._reported
        interval = now - self._reported_at
        refused = c.refused - r.refused
        if refused:
            detail = ", ".join(f"{what} x{n}" for what, n in refused.most_common(5))
            log.warning("OSC: %d requests refused in %.0f s: %s", refused.total(), interval, detail)
        kinds = c.malformed_kinds - r.malformed_kinds
        if c.malformed > r.malformed:
            detail = ", ".join(f"{kind} {n}" for kind, n in kinds.most_common())
            n = c.malformed - r.malformed
            log.warning("OSC: %d malformed datagrams in %.0f s (%s)", n, interval, detail)
        for name, what in (
            ("flooded", "over a sender's rate limit"),
            ("oversized", f"over {MAX_PACKET_BYTES} bytes"),
            ("refused_senders", "from senders not in osc.allowed_senders"),
            ("internal_errors", "that raised while handled"),
            ("subscriptions_evicted", "meter subscriptions evicted (too many subscribers)"),
        ):
            n = getattr(c, name) - getattr(r, name)
            if n:
                log.warning("OSC: %d %s in %.0f s", n, what, interval)
        self._reported = OscCounters(
            **{**vars(c), "malformed_kinds": Counter(c.malformed_kinds), "refused": Counter(c.refused)}
        )
        self._reported_at = now

    def _set(self, name: str, value: Any, sender: tuple[str, int]) -> tuple[Any, bool]:
        """Set a parameter for `sender` and note the change for the log."""
        before = getattr(self.target.store.snapshot(), name)
        stored, clamped = self.target.store.set(name, value)
        if stored != before:
            first = self._changes.get(name, (before, None))[0]
            self._changes[name] = (first, stored)
            self._changed_by.add(f"{sender[0]}:{sender[1]}")
            log.debug("OSC %s:%d: %s = %s", sender[0], sender[1], name, stored)
        return stored, clamped

    def _log_changes(self, now: float) -> None:
        """One info line for the changes since the last one (a fader sends dozens)."""

        def show(v: Any) -> str:
            if isinstance(v, bool):
                return "on" if v else "off"
            return f"{v:g}" if isinstance(v, float) else str(v)

        changes = ", ".join(f"{k} {show(a)} -> {show(b)}" for k, (a, b) in self._changes.items() if a != b)
        if changes:
            log.info("OSC from %s: %s", ", ".join(sorted(self._changed_by)), changes)
        self._changes, self._changed_by, self._changes_at = {}, set(), now

    def _send(self, address: tuple[str, int], osc_address: str, args: list[Any]) -> None:
        try:
            self.sock.sendto(_message(osc_address, args), address)
        except (OSError, struct.error, ValueError) as exc:
            log.debug("cannot reply to %s: %s", address, exc)

    def _reply_address(self, sender: tuple[str, int]) -> tuple[str, int]:
        port = self.settings.reply_port
        return (sender[0], port) if port else sender

    def _datagram(self, data: bytes, sender: tuple[str, int]) -> None:
        c = self.counters
        c.received += 1
        allowed = self.settings.allowed_senders
        if allowed and sender[0] not in allowed:
            c.refused_senders += 1
            return
        if len(data) > MAX_PACKET_BYTES:
            c.oversized += 1
            return
        reply_to = self._reply_address(sender)

        def reply(address: str, args: list[Any]) -> None:
            self._send(reply_to, address, args)

        try:
            messages = split_messages(data)
        except MalformedPacketError as exc:
            # Malformed datagrams cost a token too, so a flood of them stays cheap.
            if not self._buckets.take(sender):
                c.flooded += 1
                return
            c.malformed += 1
            c.malformed_kinds[exc.kind] += 1
            self._error(reply, "", f"malformed OSC packet: {exc}")
            return
        if not self._buckets.take(sender, max(1, len(messages))):
            c.flooded += 1
            return
        c.accepted += 1
        for raw in messages:
            msg = OscMessage(raw)
            try:
                self.dispatch(msg.address, list(msg.params), reply, sender)
            except Exception:
                c.internal_errors += 1
                if c.internal_errors == 1:
                    log.exception("OSC: %s raised (later errors are counted)", msg.address)
                self._error(reply, msg.address, "internal error (logged)")
            c.handled += 1

    def _error(self, reply: Reply, address: str, reason: str) -> None:
        self.counters.errors_replied += 1
        if address:
            self.counters.refused[f"{address}: {reason}"] += 1
            log.debug("OSC: refused %s: %s", address, reason)
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
            if name == "preset" and len(parts) == 2 and parts[1] in PRESET_ACTIONS:
                PRESET_ACTIONS[parts[1]](self, args, reply, sender)
                return
            if name == "monitor" and len(parts) == 2 and parts[1] in MONITOR_PARAMS:
                param = MONITOR_PARAMS[parts[1]]
                if param == "monitor_mute":
                    self._switch(param, args, reply, sender)
                else:
                    self._float_param(param, args, reply, False, sender)
                return
            if len(parts) > 2 or (len(parts) == 2 and not norm):
                raise LookupError
            if norm and name not in FLOAT_PARAMS:
                raise LookupError
            if name in FLOAT_PARAMS:
                self._float_param(name, args, reply, norm, sender)
            elif name == "speaker":
                self._speaker(args, reply, sender)
            elif name == "bypass":
                self._switch("bypass", args, reply, sender)
            elif name == "f0_method":
                self._f0_method(args, reply, sender)
            elif name == "model":
                self._model(args, reply)
            elif name == "models":
                self._arity(address, args, 0, 0)
                threading.Thread(
                    target=self._models, args=(reply,), name="rvcd-osc-models", daemon=True
                ).start()
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
        except (OscTypeError, ValueError) as exc:  # PresetError and ModelNameError too
            self._error(reply, address, str(exc))

    @staticmethod
    def _arity(address: str, args: list[Any], low: int, high: int) -> None:
        if not low <= len(args) <= high:
            want = str(low) if low == high else f"{low}..{high}"
            raise ValueError(f"expected {want} argument(s), got {len(args)}")

    def _warn_if_idle(self, address: str, name: str, value: Any, reply: Reply) -> None:
        """Tell the sender when the value it set changes nothing with the engine running."""
        reason = self.target.no_effect(name, value)
        if reason:
            reply(f"{PREFIX}/warning", [address, reason])

    def _float_param(
        self, name: str, args: list[Any], reply: Reply, norm: bool, sender: tuple[str, int]
    ) -> None:
        address = param_address(name) + ("/norm" if norm else "")
        self._arity(address, args, 0, 1)
        lo, hi = RANGES[name]
        if args:
            value = to_float(args[0])
            if norm:
                self.subscribers.uses_norm(sender[0], name)
                unit = min(max(value, 0.0), 1.0)
                if unit != value:
                    reply(f"{PREFIX}/warning", [address, f"{value:g} clamped to {unit:g} (0..1)"])
                value = lo + unit * (hi - lo)
            stored, clamped = self._set(name, value, sender)
            if clamped:
                reply(
                    f"{PREFIX}/warning", [address, f"{name} {value:g} clamped to {stored:g} ({lo:g}..{hi:g})"]
                )
            self._warn_if_idle(address, name, stored, reply)
        current = float(getattr(self.target.store.snapshot(), name))
        reply(address, [(current - lo) / (hi - lo) if norm else current])

    def _speaker(self, args: list[Any], reply: Reply, sender: tuple[str, int]) -> None:
        address = f"{PREFIX}/speaker"
        self._arity(address, args, 0, 1)
        if args:
            value = to_int(args[0])
            n = self.target.n_speakers()
            clamped = min(max(value, 0), (n - 1) if n is not None else MAX_SPEAKER)
            if clamped != value:
                reply(f"{PREFIX}/warning", [address, f"speaker {value} clamped to {clamped}"])
            self._set("speaker", clamped, sender)
            self._warn_if_idle(address, "speaker", clamped, reply)
        reply(address, [int(self.target.store.snapshot().speaker)])

    def _switch(self, name: str, args: list[Any], reply: Reply, sender: tuple[str, int]) -> None:
        """An on/off parameter (bypass, monitor mute): set and read back as 0/1."""
        address = param_address(name)
        self._arity(address, args, 0, 1)
        if args:
            self._set(name, to_bool(args[0]), sender)
        reply(address, [int(getattr(self.target.store.snapshot(), name))])

    def _f0_method(self, args: list[Any], reply: Reply, sender: tuple[str, int]) -> None:
        address = f"{PREFIX}/f0_method"
        self._arity(address, args, 0, 1)
        if args:
            choices = f0_methods()
            if isinstance(args[0], int | float) and not isinstance(args[0], bool):
                # Radio buttons send their index: the documented order (README, OSCQuery).
                i = to_int(args[0])
                if not 0 <= i < len(choices):
                    raise ValueError(
                        f"f0 method index {i} outside 0..{len(choices) - 1} ({', '.join(choices)})"
                    )
                method = choices[i]
            else:
                method = to_str(args[0])
            if method not in choices:
                raise ValueError(f"unknown f0 method {method!r}; choose one of {', '.join(choices)}")
            self._set("f0_method", method, sender)
            self._warn_if_idle(address, "f0_method", method, reply)
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
        for key in FEEDBACK_PARAMS:
            args += [key, getattr(params, key)]
        for key, value in status.items():
            args += [key, value if isinstance(value, int | float | str) else str(value)]
        reply(f"{PREFIX}/status", args)

    def _subscribe(self, args: list[Any], reply: Reply, sender: tuple[str, int]) -> None:
        """Subscribe, then send the subscriber every value so its controls fill at once."""
        self._arity(f"{PREFIX}/subscribe", args, 0, 1)
        port = to_int(args[0]) if args else None
        if port is not None and not 1 <= port <= 65535:
            raise ValueError(f"port {port} outside 1..65535")
        target = (sender[0], port) if port else self._reply_address(sender)
        self.subscribers.add(target)
        self.counters.subscriptions_evicted = self.subscribers.evicted
        reply(f"{PREFIX}/subscribe", [self.settings.meter_rate, TTL_S])
        for address, values in self._state_messages(self.target.store.snapshot(), target[0]):
            self._send(target, address, values)
        self._send(target, f"{PREFIX}/model", [self.target.model_name()])

    def _unsubscribe(self, args: list[Any], reply: Reply, sender: tuple[str, int]) -> None:
        port = to_int(args[0]) if args else None
        target = (sender[0], port) if port else self._reply_address(sender)
        reply(f"{PREFIX}/unsubscribe", [int(self.subscribers.remove(target))])

    # -- models and presets ----------------------------------------------------------------

    def _models(self, reply: Reply) -> None:
        """Own thread (reading models takes time): `/rvcd/models name version rate f0
        has_index` per voice model in models_dir, then `/rvcd/models/end count`."""
        from rvcd.dsp.voice_model import read_voice_checkpoint

        root = self.settings.models_dir
        models = sorted(root.glob("*.pth"))[:MAX_LISTED] if root is not None and root.is_dir() else []
        indexes = [p.stem for p in root.glob("*.index")] if models else []
        for path in models:
            has_index = int(any(path.stem in stem for stem in indexes))
            try:
                meta = read_voice_checkpoint(resolve_in(root, path.name, MODEL_SUFFIXES))[1]
                reply(
                    f"{PREFIX}/models", [path.name, meta.version, meta.sample_rate, int(meta.f0), has_index]
                )
            except Exception as exc:  # listed, with why it cannot load
                reply(f"{PREFIX}/models", [path.name, "unreadable", 0, 0, 0, str(exc)[:200]])
        reply(f"{PREFIX}/models/end", [len(models)])

    def _preset_save(self, args: list[Any], reply: Reply, sender: tuple[str, int]) -> None:
        """`/rvcd/preset/save name [model|default]`: the parameters; with `model` also the
        running model; with `default` as the running model's own preset."""
        address = f"{PREFIX}/preset/save"
        self._arity(address, args, 1, 2)
        name, mode = to_str(args[0]), to_str(args[1]) if len(args) > 1 else ""
        if mode not in ("", "model", "default"):
            raise ValueError(f"{mode!r}: the second argument is 'model' or 'default'")
        params = self.target.store.snapshot()
        model = self.target.model_name()
        if mode == "default":
            path = model_preset_path(resolve_in(self.settings.models_dir, model, MODEL_SUFFIXES))
        else:
            path = preset_path(self.settings.presets_dir, name)
        write_preset(path, params, model if mode == "model" else None)
        log.info("OSC %s:%d: saved preset %s to %s", sender[0], sender[1], name, path)
        reply(address, [name])

    def _preset_load(self, args: list[Any], reply: Reply, sender: tuple[str, int]) -> None:
        """`/rvcd/preset/load name`: apply it; with a model, at the swap's block boundary."""
        address = f"{PREFIX}/preset/load"
        self._arity(address, args, 1, 1)
        name = to_str(args[0])
        preset = read_preset(preset_path(self.settings.presets_dir, name))
        if preset.model:
            model = resolve_in(self.settings.models_dir, preset.model, MODEL_SUFFIXES)
            reply(f"{PREFIX}/model/loading", [preset.model])
            self.target.request_model(model, None, preset.model, reply, params=preset.values)
        else:
            for key, value in preset.values.items():
                self._set(key, value, sender)
        reply(address, [name])

    def _preset_list(self, args: list[Any], reply: Reply, sender: tuple[str, int]) -> None:
        self._arity(f"{PREFIX}/preset/list", args, 0, 0)
        reply(f"{PREFIX}/preset/list", list_presets(self.settings.presets_dir))

    # -- feedback -------------------------------------------------------------------------

    def _state_messages(self, params: Any, host: str, names: Any = None) -> list[tuple[str, list[Any]]]:
        """The messages that tell a client on `host` the value of each parameter (all, or
        `names`), in the forms it uses."""
        out: list[tuple[str, list[Any]]] = []
        for name in names or FEEDBACK_PARAMS:
            value = getattr(params, name)
            value = int(value) if isinstance(value, bool) else value
            out.append((param_address(name), [value]))
            if name in FLOAT_PARAMS and self.subscribers.wants_norm(host, name):
                lo, hi = RANGES[name]
                out.append((f"{PREFIX}/{name}/norm", [(float(value) - lo) / (hi - lo)]))
        return out

    def _feedback(self, params: Any) -> None:
        """ParamStore listener (any thread): tell every subscriber what changed."""
        with self._feedback_lock:
            changed = [n for n in FEEDBACK_PARAMS if getattr(params, n) != getattr(self._sent, n)]
            self._sent = params
        if changed:
            for target in self.subscribers.targets():
                for address, values in self._state_messages(params, target[0], changed):
                    self._send(target, address, values)

    def broadcast(self, address: str, args: list[Any]) -> None:
        """Send one message to every subscriber (e.g. `/rvcd/model name` after a swap)."""
        for target in self.subscribers.targets():
            self._send(target, address, args)

    def _meter_loop(self) -> None:
        period = 1.0 / self.settings.meter_rate
        while not self._stop.wait(period):
            targets = self.subscribers.targets()
            if not targets:
                continue
            m = self.target.meters()
            args = [m["in_db"], m["out_db"], m["latency_ms"], m["load"]]
            for target in targets:
                self._send(target, f"{PREFIX}/meters", args)


PRESET_ACTIONS: dict[str, Callable[[OscServer, list[Any], Reply, tuple[str, int]], None]] = {
    "save": OscServer._preset_save,
    "load": OscServer._preset_load,
    "list": OscServer._preset_list,
}
"""`/rvcd/preset/<action>` handlers."""
