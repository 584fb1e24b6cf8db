"""Who receives meters and state feedback: subscriptions with a lifetime and a cap.

A client subscribes (`/rvcd/subscribe [port]`) to get meters at `osc.meter_rate` and
every change of state, from whatever caused it (another client, a reload, a model swap,
a preset), in the address form it uses: `/rvcd/pitch 3.0`, and also `/rvcd/pitch/norm
0.5625` to a host that has set that parameter through its `/norm` address. A
subscription lapses after `TTL_S` unless renewed. Subscribers are capped per host and in
all; a new one beyond either cap evicts the oldest.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

TTL_S = 60.0
"""A subscription lapses unless renewed with another /rvcd/subscribe within this time."""
MAX_PER_HOST = 8
MAX_TOTAL = 32
"""Subscribers per host and in all."""

Address = tuple[str, int]


@dataclass
class _Subscription:
    expires: float


@dataclass
class Subscribers:
    """Thread-safe: the OSC thread adds and removes, any thread reads the targets."""

    evicted: int = 0
    """Subscriptions evicted by the caps."""
    _subs: dict[Address, _Subscription] = field(default_factory=dict)
    _norm: dict[str, set[str]] = field(default_factory=dict)
    """Per host, the parameters it sets through their /norm address."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, target: Address, now: float | None = None) -> None:
        """Subscribe `target` (or renew it), evicting the oldest beyond the caps."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._subs.pop(target, None)
            same_host = [k for k in self._subs if k[0] == target[0]]
            for old in same_host[: max(0, len(same_host) - MAX_PER_HOST + 1)]:
                del self._subs[old]
                self.evicted += 1
            while len(self._subs) >= MAX_TOTAL:
                del self._subs[next(iter(self._subs))]
                self.evicted += 1
            self._subs[target] = _Subscription(now + TTL_S)

    def remove(self, target: Address) -> bool:
        with self._lock:
            return self._subs.pop(target, None) is not None

    def targets(self, now: float | None = None) -> list[Address]:
        """The live subscribers (lapsed ones are dropped)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for key in [k for k, s in self._subs.items() if s.expires < now]:
                del self._subs[key]
            return list(self._subs)

    def uses_norm(self, host: str, name: str) -> None:
        """Note that `host` sets parameter `name` through its /norm address."""
        with self._lock:
            self._norm.setdefault(host, set()).add(name)

    def wants_norm(self, host: str, name: str) -> bool:
        with self._lock:
            return name in self._norm.get(host, ())
