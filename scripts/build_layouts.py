"""Write the control-surface layouts in control/layouts/ from one description.

    .venv/bin/python scripts/build_layouts.py

- `rvcd.json`: an Open Stage Control session (its JSON session format: a root widget
  holding panels of widgets, each with an OSC `address`).
- `rvcd.tosc`: a TouchOSC layout (TouchOSC's `.tosc` format: zlib-compressed XML, a
  tree of nodes whose OSC messages have a constant path and value-scaled arguments).

Both subscribe on load and renew every 30 s (a subscription lapses after 60 s), show
the meters, and send every address only as `control/osc_addresses.py` defines it
(tests/test_layouts.py checks that).
"""

from __future__ import annotations

import json
import uuid
import zlib
from pathlib import Path
from xml.etree import ElementTree as ET

from rvcd.dsp.pitch import METHOD_NAMES
from rvcd.dsp.stream_params import RANGES

OUT = Path(__file__).resolve().parent.parent / "control" / "layouts"
FADERS = [
    (name, label, *RANGES[name], 0)
    for name, label in (("pitch", "Pitch"), ("formant", "Formant"), ("index_rate", "Index"))
]
F0_METHODS = list(METHOD_NAMES)
PRESETS = ["1", "2", "3", "4"]
"""Preset buttons; a preset saved with its model (`/rvcd/preset/save NAME model`) is a
one-press voice switch."""
RENEW_MS = 30000


def open_stage_control() -> dict:
    faders = [
        {
            "type": "fader",
            "id": name,
            "label": label,
            "address": f"/rvcd/{name}",
            "range": {"min": lo, "max": hi},
            "default": default,
            "doubleTap": True,
            "width": 90,
            "height": 320,
        }
        for name, label, lo, hi, default in FADERS
    ]
    controls = [
        {"type": "toggle", "id": "bypass", "label": "Bypass", "address": "/rvcd/bypass", "on": 1, "off": 0},
        {
            "type": "switch",
            "id": "f0_method",
            "label": "Pitch estimator",
            "address": "/rvcd/f0_method",
            "values": F0_METHODS,
        },
        {"type": "input", "id": "model", "label": "Model (file in models_dir)", "address": "/rvcd/model"},
        {
            "type": "switch",
            "id": "preset",
            "label": "Preset",
            "address": "/rvcd/preset/load",
            "values": PRESETS,
        },
    ]
    meters = [
        {
            "type": "fader",
            "id": "meter_in",
            "label": "In dB",
            "range": {"min": -60, "max": 0},
            "interaction": False,
        },
        {
            "type": "fader",
            "id": "meter_out",
            "label": "Out dB",
            "range": {"min": -60, "max": 0},
            "interaction": False,
        },
        {
            "type": "script",
            "id": "meters",
            "address": "/rvcd/meters",
            "script": "set('meter_in', value[0]); set('meter_out', value[1])",
        },
        {
            "type": "script",
            "id": "subscribe",
            "event": "once",
            "script": (f"send('/rvcd/subscribe'); setInterval(() => send('/rvcd/subscribe'), {RENEW_MS})"),
        },
    ]
    return {
        "createdWith": "Open Stage Control",
        "version": "1.26.2",
        "type": "session",
        "content": {
            "type": "root",
            "id": "root",
            "widgets": [
                {"type": "panel", "id": "shift", "layout": "horizontal", "widgets": faders},
                {"type": "panel", "id": "controls", "layout": "vertical", "widgets": controls},
                {"type": "panel", "id": "levels", "layout": "horizontal", "widgets": meters},
            ],
        },
    }


def _property(parent: ET.Element, kind: str, key: str, value: object) -> None:
    prop = ET.SubElement(parent, "property", type=kind)
    ET.SubElement(prop, "key").text = key
    ET.SubElement(prop, "value").text = str(value)


def _partial(
    parent: ET.Element, kind: str, conversion: str, value: str, lo: float = 0, hi: float = 1
) -> None:
    partial = ET.SubElement(parent, "partial")
    for tag, text in (
        ("type", kind),
        ("conversion", conversion),
        ("value", value),
        ("scaleMin", lo),
        ("scaleMax", hi),
    ):
        ET.SubElement(partial, tag).text = str(text)


def _node(parent: ET.Element, kind: str, name: str, frame: tuple[int, int, int, int]) -> ET.Element:
    node = ET.SubElement(parent, "node", ID=str(uuid.uuid5(uuid.NAMESPACE_URL, f"rvcd/{name}")), type=kind)
    props = ET.SubElement(node, "properties")
    _property(props, "s", "name", name)
    frame_prop = ET.SubElement(props, "property", type="r")
    ET.SubElement(frame_prop, "key").text = "frame"
    value = ET.SubElement(frame_prop, "value")
    for tag, v in zip(("x", "y", "w", "h"), frame, strict=True):
        ET.SubElement(value, tag).text = str(v)
    return node


def _osc(node: ET.Element, path: str, argument: tuple[str, str, str, float, float] | None) -> None:
    messages = node.find("messages")
    if messages is None:
        messages = ET.SubElement(node, "messages")
    osc = ET.SubElement(messages, "osc")
    for tag, text in (("enabled", 1), ("send", 1), ("receive", 1), ("feedback", 0), ("connections", "00001")):
        ET.SubElement(osc, tag).text = str(text)
    trigger = ET.SubElement(ET.SubElement(osc, "triggers"), "trigger")
    ET.SubElement(trigger, "var").text = "x"
    ET.SubElement(trigger, "condition").text = "RISE" if argument and argument[0] == "CONSTANT" else "ANY"
    _partial(ET.SubElement(osc, "path"), "CONSTANT", "STRING", path)
    arguments = ET.SubElement(osc, "arguments")
    if argument is not None:
        _partial(arguments, *argument)


def touchosc() -> bytes:
    root = ET.Element("lexml", version="3")
    group = _node(root, "GROUP", "rvcd", (0, 0, 1024, 768))
    _property(
        group.find("properties"),
        "s",
        "script",
        (
            "local last = 0\n"
            "function init() sendOSC('/rvcd/subscribe') last = getMillis() end\n"
            f"function update() if getMillis() - last > {RENEW_MS} then sendOSC('/rvcd/subscribe') "
            "last = getMillis() end end\n"
        ),
    )
    children = ET.SubElement(group, "children")
    for i, (name, _label, lo, hi, _default) in enumerate(FADERS):
        fader = _node(children, "FADER", name, (20 + 110 * i, 20, 90, 400))
        _osc(fader, f"/rvcd/{name}", ("VALUE", "FLOAT", "x", lo, hi))
    bypass = _node(children, "BUTTON", "bypass", (360, 20, 120, 80))
    _osc(bypass, "/rvcd/bypass", ("VALUE", "INTEGER", "x", 0, 1))
    f0 = _node(children, "RADIO", "f0_method", (360, 120, 600, 60))
    _property(f0.find("properties"), "i", "steps", len(F0_METHODS))
    _osc(f0, "/rvcd/f0_method", ("VALUE", "INTEGER", "x", 0, 1))
    for i, preset in enumerate(PRESETS):
        button = _node(children, "BUTTON", f"preset {preset}", (360 + 130 * i, 200, 120, 80))
        _osc(button, "/rvcd/preset/load", ("CONSTANT", "STRING", preset, 0, 1))
    for i, which in enumerate(("in", "out")):
        meter = _node(children, "FADER", f"meter {which}", (360 + 130 * i, 300, 60, 300))
        _property(meter.find("properties"), "b", "interactive", 0)
        _osc(meter, "/rvcd/meters", ("VALUE", "FLOAT", "x", -60, 0))
    xml = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
    return zlib.compress(xml)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "rvcd.json").write_text(json.dumps(open_stage_control(), indent=2) + "\n")
    (OUT / "rvcd.tosc").write_bytes(touchosc())
    print(f"wrote {OUT / 'rvcd.json'} and {OUT / 'rvcd.tosc'}")


if __name__ == "__main__":
    main()
