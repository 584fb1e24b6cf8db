"""JACK port latency reporting, which JACK-Client does not wrap.

JACK-Client 0.5 has no binding for `jack_set_latency_callback` and the latency-range
functions, so these four are declared here with cffi (which JACK-Client itself uses)
and called on the client's and ports' C pointers. Without them DAWs could not compensate
the delay rvcd adds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cffi
import jack

_ffi = cffi.FFI()
_ffi.cdef(
    """
    typedef struct { uint32_t min; uint32_t max; } jack_latency_range_t;
    typedef enum { JackCaptureLatency, JackPlaybackLatency } jack_latency_callback_mode_t;
    typedef void (*JackLatencyCallback)(jack_latency_callback_mode_t mode, void *arg);
    int jack_set_latency_callback(void *client, JackLatencyCallback cb, void *arg);
    void jack_port_get_latency_range(void *port, jack_latency_callback_mode_t mode,
                                     jack_latency_range_t *range);
    void jack_port_set_latency_range(void *port, jack_latency_callback_mode_t mode,
                                     jack_latency_range_t *range);
    int jack_recompute_total_latencies(void *client);
    """
)
_lib = _ffi.dlopen("libjack.so.0")
CAPTURE = 0
PLAYBACK = 1


def _ptr(obj: jack.Client | jack.Port) -> object:
    return _ffi.cast("void *", int(jack._ffi.cast("uintptr_t", obj._ptr)))


def get_range(port: jack.Port, mode: int) -> tuple[int, int]:
    r = _ffi.new("jack_latency_range_t *")
    _lib.jack_port_get_latency_range(_ptr(port), mode, r)
    return int(r.min), int(r.max)


def set_range(port: jack.Port, mode: int, low: int, high: int) -> None:
    r = _ffi.new("jack_latency_range_t *")
    r.min, r.max = low, high
    _lib.jack_port_set_latency_range(_ptr(port), mode, r)


class LatencyReporter:
    """Declares `added()` samples between each in_N and out_N, in both directions."""

    def __init__(
        self,
        client: jack.Client,
        inputs: Sequence[jack.Port],
        outputs: Sequence[jack.Port],
        added: Callable[[], int],
    ) -> None:
        self._client = client
        self._inputs = inputs
        self._outputs = outputs
        self._added = added
        self._callback = _ffi.callback("JackLatencyCallback", self._on_latency)
        _lib.jack_set_latency_callback(_ptr(client), self._callback, _ffi.NULL)

    def _on_latency(self, mode: int, _arg: object) -> None:
        extra = self._added()
        for src, dst in zip(self._inputs, self._outputs, strict=True):
            if mode == CAPTURE:
                low, high = get_range(src, CAPTURE)
                set_range(dst, CAPTURE, low + extra, high + extra)
            else:
                low, high = get_range(dst, PLAYBACK)
                set_range(src, PLAYBACK, low + extra, high + extra)

    def recompute(self) -> None:
        """Ask JACK to recompute latencies after `added()` changed."""
        _lib.jack_recompute_total_latencies(_ptr(self._client))
