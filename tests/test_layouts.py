"""The shipped layouts and the README use only addresses the code serves."""

from __future__ import annotations

import importlib.util
import json
import re
import zlib
from pathlib import Path
from xml.etree import ElementTree as ET

from rvcd.control.osc_addresses import ADDRESSES, REPLIES, paths
from rvcd.dsp.pitch import METHOD_NAMES

ROOT = Path(__file__).resolve().parent.parent
LAYOUTS = ROOT / "control" / "layouts"
SENT = re.compile(r"send(?:OSC)?\('(/[^']*)'")


def _builder():
    spec = importlib.util.spec_from_file_location("build_layouts", ROOT / "scripts" / "build_layouts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _widgets(node: dict):
    yield node
    for child in node.get("widgets", []):
        yield from _widgets(child)


NEEDED = {
    "/rvcd/pitch",
    "/rvcd/formant",
    "/rvcd/index_rate",
    "/rvcd/bypass",
    "/rvcd/f0_method",
    "/rvcd/preset/load",
    "/rvcd/meters",
    "/rvcd/subscribe",
}
"""What a layout must offer: pitch, formant, index, bypass, estimator, presets, meters."""


def _assert_served(used: set[str]) -> None:
    assert used <= paths() | set(REPLIES), used - paths() - set(REPLIES)
    assert used >= NEEDED, NEEDED - used


def test_the_open_stage_control_session_uses_served_addresses():
    session = json.loads((LAYOUTS / "rvcd.json").read_text())
    assert session["type"] == "session" and session["content"]["type"] == "root"
    widgets = list(_widgets(session["content"]))
    used = {w["address"] for w in widgets if "address" in w}
    used |= {m for w in widgets for m in SENT.findall(w.get("script", ""))}
    _assert_served(used)
    f0 = next(w for w in widgets if w.get("address") == "/rvcd/f0_method")
    assert f0["values"] == list(METHOD_NAMES)


def test_the_touchosc_layout_uses_served_addresses():
    tree = ET.fromstring(zlib.decompress((LAYOUTS / "rvcd.tosc").read_bytes()))
    assert tree.tag == "lexml"
    used = {
        partial.findtext("value")
        for path in tree.iter("path")
        for partial in path.iter("partial")
        if partial.findtext("type") == "CONSTANT"
    }
    scripts = [p.findtext("value") for p in tree.iter("property") if p.findtext("key") == "script"]
    used |= {m for script in scripts for m in SENT.findall(script)}
    _assert_served(used)


def test_the_layouts_are_what_the_builder_writes():
    builder = _builder()
    assert json.loads((LAYOUTS / "rvcd.json").read_text()) == builder.open_stage_control()
    assert zlib.decompress((LAYOUTS / "rvcd.tosc").read_bytes()) == zlib.decompress(builder.touchosc())


def test_the_readme_table_is_the_code_table():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `(/rvcd/[^`]*)` \|", readme, flags=re.MULTILINE))
    norm = "/rvcd/<param>/norm"
    assert norm in documented
    documented = (documented - {norm}) | {a.path for a in ADDRESSES if a.path.endswith("/norm")}
    assert documented == paths()
