"""The OSC address space in one table: what OSCQuery serves, the layouts use and the
README documents (tests check all three against it)."""

from __future__ import annotations

from dataclasses import dataclass

from rvcd.dsp.pitch import METHOD_NAMES
from rvcd.dsp.stream_params import RANGES

READ, WRITE = 1, 2
"""OSCQuery ACCESS bits."""


@dataclass(frozen=True)
class OscAddress:
    path: str
    types: str
    """OSC type tags of the arguments a set takes ("" for none)."""
    access: int
    description: str
    range: tuple[float, float] | None = None
    values: tuple[str, ...] | None = None
    """The allowed strings, in the order radio buttons send their index."""
    param: str | None = None
    """The StreamParams field whose value the address reads back."""


def _float(name: str, what: str) -> list[OscAddress]:
    lo, hi = RANGES[name]
    return [
        OscAddress(f"/rvcd/{name}", "f", READ | WRITE, what, (lo, hi), param=name),
        OscAddress(
            f"/rvcd/{name}/norm", "f", READ | WRITE, f"{what}, mapped onto 0..1", (0.0, 1.0), param=name
        ),
    ]


ADDRESSES: tuple[OscAddress, ...] = (
    *_float("pitch", "pitch shift, semitones"),
    *_float("formant", "formant shift, semitones"),
    *_float("index_rate", "retrieval blend"),
    *_float("gate", "input gate threshold, dBFS (-120 = off)"),
    *_float("rms_mix", "loudness envelope: 0 = the input's, 1 = the voice's own"),
    *_float("gain", "output level, dB"),
    OscAddress("/rvcd/speaker", "i", READ | WRITE, "speaker id, clamped to the model's", param="speaker"),
    OscAddress(
        "/rvcd/f0_method",
        "s",
        READ | WRITE,
        "pitch estimator (a name, or its index in this list)",
        values=METHOD_NAMES,
        param="f0_method",
    ),
    OscAddress(
        "/rvcd/bypass", "i", READ | WRITE, "dry signal, delayed by the latency", (0, 1), param="bypass"
    ),
    OscAddress(
        "/rvcd/monitor/mix",
        "f",
        READ | WRITE,
        "monitor ports: 0 = the dry input, 1 = the converted voice",
        RANGES["monitor_mix"],
        param="monitor_mix",
    ),
    OscAddress(
        "/rvcd/monitor/gain",
        "f",
        READ | WRITE,
        "monitor level, dB",
        RANGES["monitor_gain"],
        param="monitor_gain",
    ),
    OscAddress(
        "/rvcd/monitor/mute", "i", READ | WRITE, "silence the monitor ports", (0, 1), param="monitor_mute"
    ),
    OscAddress("/rvcd/model", "s", READ | WRITE, "voice model in models_dir: loads in the background"),
    OscAddress("/rvcd/models", "", WRITE, "list the voice models in models_dir"),
    OscAddress("/rvcd/status", "", WRITE, "every parameter and counter as key value pairs"),
    OscAddress("/rvcd/subscribe", "i", WRITE, "meters and state feedback for 60 s (optional reply port)"),
    OscAddress("/rvcd/unsubscribe", "i", WRITE, "stop meters and feedback"),
    OscAddress("/rvcd/preset/save", "s", WRITE, "save a preset (second argument: model or default)"),
    OscAddress("/rvcd/preset/load", "s", WRITE, "apply a preset (and its model)"),
    OscAddress("/rvcd/preset/list", "", WRITE, "the presets in presets_dir"),
)
"""Every address rvcd answers, in the README's order."""
REPLIES = ("/rvcd/warning", "/rvcd/error", "/rvcd/meters", "/rvcd/model/loading", "/rvcd/model/loaded")
"""Addresses rvcd only sends."""


def paths() -> set[str]:
    return {a.path for a in ADDRESSES}
