"""The parameter store shared by the control surface (writers) and the worker (reader).

The worker reads one immutable `StreamParams` snapshot per block: a single attribute
read, so it never waits. Writers replace the snapshot under a lock and are told what
the value became (after clamping) and whether it was clamped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rvcd.dsp.stream_params import RANGES, StreamParams, clamp


class ParamStore:
    """Thread-safe holder of the current parameters."""

    def __init__(self, initial: StreamParams) -> None:
        self._params = initial
        self._lock = threading.Lock()
        self._listeners: list[Callable[[StreamParams], None]] = []

    def snapshot(self) -> StreamParams:
        """The current parameters (lock-free; called by the worker once per block)."""
        return self._params

    def set(self, name: str, value: Any) -> tuple[Any, bool]:
        """Set one parameter; numbers are clamped to their range. Returns (stored value,
        was_clamped). Raises ValueError for an unknown name."""
        clamped = False
        if name in RANGES:
            value, clamped = clamp(name, value)
        with self._lock:
            if not hasattr(self._params, name):
                raise ValueError(f"unknown parameter {name!r}")
            self._params = self._params.with_changes(**{name: value})
            params = self._params
        for listener in list(self._listeners):
            listener(params)
        return value, clamped

    def replace(self, params: StreamParams) -> None:
        """Replace every parameter at once (configuration reload)."""
        with self._lock:
            self._params = params
        for listener in list(self._listeners):
            listener(params)

    def subscribe(self, listener: Callable[[StreamParams], None]) -> None:
        """Call `listener(params)` after every change, on the thread that made it."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[StreamParams], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)
