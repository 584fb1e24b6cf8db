"""Checking an OSC datagram's structure before python-osc parses it.

python-osc trusts the sizes it reads: a bundle element of negative size makes its bundle
parser loop forever without advancing, nested bundles recurse until `RecursionError`,
invalid UTF-8 raises outside its `ParseError`, and an unknown type tag logs a warning per
argument. So every datagram is walked here first (OSC 1.0: bundles of size-prefixed
elements, messages of address, type tags and 4-byte-aligned arguments), with bounds on
nesting, message count and argument count; only datagrams that pass are handed to
python-osc, one message at a time.
"""

from __future__ import annotations

import struct

BUNDLE_TAG = b"#bundle\x00"
MAX_DEPTH = 2
"""A bundle may hold bundles, which may not hold bundles again."""
MAX_MESSAGES = 32
"""Messages in one datagram; nothing in rvcd's address space needs more."""
MAX_ARGS = 16
"""Arguments of one message (rvcd's addresses take at most 2)."""
_FIXED_SIZES = {"i": 4, "f": 4, "r": 4, "m": 4, "h": 8, "d": 8, "t": 8, "T": 0, "F": 0, "N": 0}
"""Type tags python-osc parses, with their argument sizes in bytes (plus 's' and 'b')."""


class MalformedPacketError(ValueError):
    """The datagram is not well-formed OSC; `kind` names the defect (counted and logged)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def _padded(n: int) -> int:
    return (n + 3) & ~3


def _string(data: bytes, start: int, what: str) -> tuple[str, int]:
    """An OSC-string at `start`: (text, offset after its padding)."""
    end = data.find(b"\x00", start)
    if end < 0:
        raise MalformedPacketError("unterminated string", f"{what} at byte {start} has no terminating zero")
    after = _padded(end + 1)
    if after > len(data):
        raise MalformedPacketError("truncated", f"{what} at byte {start} is not padded to 4 bytes")
    try:
        return data[start:end].decode("utf-8"), after
    except UnicodeDecodeError:
        raise MalformedPacketError("bad string", f"{what} at byte {start} is not UTF-8") from None


def _check_message(data: bytes) -> None:
    address, offset = _string(data, 0, "address")
    if not address.startswith("/"):
        raise MalformedPacketError("bad address", f"{address[:40]!r} does not start with '/'")
    if offset == len(data):
        return
    tags, offset = _string(data, offset, "type tags")
    if not tags.startswith(","):
        raise MalformedPacketError("bad type tags", f"{tags[:40]!r} does not start with ','")
    if len(tags) - 1 > MAX_ARGS:
        raise MalformedPacketError("too many arguments", f"{len(tags) - 1} arguments (at most {MAX_ARGS})")
    for tag in tags[1:]:
        if tag in _FIXED_SIZES:
            offset += _FIXED_SIZES[tag]
        elif tag == "s":
            _, offset = _string(data, offset, "string argument")
        elif tag == "b":
            if offset + 4 > len(data):
                raise MalformedPacketError("truncated", f"blob size at byte {offset} is cut off")
            (size,) = struct.unpack_from(">i", data, offset)
            if size < 0:
                raise MalformedPacketError("bad blob size", f"blob of {size} bytes")
            offset += 4 + _padded(size)
        else:
            raise MalformedPacketError("unsupported type tag", f"type tag {tag!r}")
        if offset > len(data):
            need = f"arguments need {offset} bytes, the message has {len(data)}"
            raise MalformedPacketError("truncated", need)
    if offset != len(data):
        raise MalformedPacketError("trailing bytes", f"{len(data) - offset} bytes after the last argument")


def _walk(data: bytes, depth: int, out: list[bytes]) -> None:
    if data.startswith(b"#"):
        if not data.startswith(BUNDLE_TAG):
            raise MalformedPacketError("bad address", "starts with '#' but is not '#bundle'")
        if depth >= MAX_DEPTH:
            raise MalformedPacketError("nested too deep", f"bundles nested more than {MAX_DEPTH} deep")
        if len(data) < 16:
            raise MalformedPacketError("truncated", f"bundle of {len(data)} bytes has no time tag")
        offset = 16
        while offset < len(data):
            if offset + 4 > len(data):
                raise MalformedPacketError("truncated", f"element size at byte {offset} is cut off")
            (size,) = struct.unpack_from(">i", data, offset)
            offset += 4
            if size <= 0 or size % 4 or offset + size > len(data):
                raise MalformedPacketError(
                    "bad element size", f"element of {size} bytes at byte {offset} ({len(data)} in all)"
                )
            _walk(data[offset : offset + size], depth + 1, out)
            offset += size
        return
    if len(out) >= MAX_MESSAGES:
        raise MalformedPacketError("too many messages", f"more than {MAX_MESSAGES} messages in one datagram")
    if len(data) % 4:
        raise MalformedPacketError("truncated", f"message of {len(data)} bytes is not a multiple of 4")
    _check_message(data)
    out.append(data)


def split_messages(data: bytes) -> list[bytes]:
    """The messages of a datagram (one, or those of a bundle in order), each checked to be
    well-formed; raises `MalformedPacketError` otherwise. A bundle's time tag is not honoured: its
    messages run on arrival."""
    if not data:
        raise MalformedPacketError("empty", "an empty datagram")
    out: list[bytes] = []
    _walk(data, 0, out)
    return out
