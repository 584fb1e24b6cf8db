"""The OSC datagram check: what python-osc must never see is named and refused."""

from __future__ import annotations

import struct

import pytest
from osc_probe import build

from rvcd.control.osc_wire import MAX_MESSAGES, MalformedPacketError, split_messages


def _bundle(*elements: bytes) -> bytes:
    out = b"#bundle\x00" + struct.pack(">Q", 1)
    for e in elements:
        out += struct.pack(">i", len(e)) + e
    return out


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", "empty"),
        (b"/rvcd/pitch!", "unterminated string"),
        (b"/rvcd/pitch\x00,f\x00\x00", "truncated"),
        (b"/rvcd/pitch\x00,X\x00\x00", "unsupported type tag"),
        (b"/rvcd/pitch\x00,[]\x00", "unsupported type tag"),
        (b"/rvcd/\xff\xfe\x00\x00\x00\x00,f\x00\x00\x00\x00\x00\x00", "bad string"),
        (b"rvcd/p\x00\x00,f\x00\x00\x00\x00\x00\x00", "bad address"),
        (b"/a\x00\x00p\x00\x00\x00", "bad type tags"),
        (b"/a\x00\x00,b\x00\x00\xff\xff\xff\xf0", "bad blob size"),
        (b"/a\x00\x00,i\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00", "trailing bytes"),
        (b"#bundle\x00\x00\x00", "truncated"),
        (_bundle(*[build("/rvcd/status").dgram] * (MAX_MESSAGES + 1)), "too many messages"),
        (b"/a\x00\x00," + b"i" * 40 + b"\x00\x00\x00", "too many arguments"),
    ],
)
def test_malformed_datagrams_are_named(data, kind):
    with pytest.raises(MalformedPacketError) as info:
        split_messages(data)
    assert info.value.kind == kind


def test_well_formed_datagrams_pass_unchanged():
    msg = build("/rvcd/pitch", 2.5).dgram
    assert split_messages(msg) == [msg]
    blob = build("/rvcd/x", b"\x01\x02\x03", "s", 7, True).dgram
    assert split_messages(_bundle(msg, blob)) == [msg, blob]
