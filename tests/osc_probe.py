"""A python-osc client on loopback that also receives the daemon's replies."""

from __future__ import annotations

import socket
import time
from typing import Any

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder


def build(address: str, *args: Any) -> OscMessage:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build()


class OscProbe:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.1)

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(build(address, *args).dgram, self.target)

    def send_bundle(self, *messages: tuple[Any, ...]) -> None:
        bundle = OscBundleBuilder(IMMEDIATELY)
        for address, *args in messages:
            bundle.add_content(build(address, *args))
        self.sock.sendto(bundle.build().dgram, self.target)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def replies(self, timeout: float = 1.0, until: tuple[str, ...] = ()) -> list[tuple[str, list[Any]]]:
        """Collect replies for `timeout` seconds, or until one whose address is in `until`."""
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            msg = OscMessage(data)
            out.append((msg.address, list(msg.params)))
            if msg.address in until:
                break
        return out

    def ask(self, address: str, *args: Any, timeout: float = 1.0) -> list[tuple[str, list[Any]]]:
        self.drain()
        self.send(address, *args)
        return self.replies(timeout, until=(address, "/rvcd/error"))

    def drain(self) -> None:
        self.replies(0.05)

    def close(self) -> None:
        self.sock.close()
