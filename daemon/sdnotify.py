"""systemd notification protocol (sd_notify) over $NOTIFY_SOCKET, without a dependency.

Does nothing when the process is not run by systemd with Type=notify.
"""

from __future__ import annotations

import contextlib
import os
import socket


class Notifier:
    """Sends READY/STATUS/WATCHDOG/STOPPING datagrams to systemd."""

    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET")
        self._socket: socket.socket | None = None
        self._address = ""
        if address:
            if address.startswith("@"):
                address = "\0" + address[1:]
            self._address = address
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        usec = os.environ.get("WATCHDOG_USEC")
        self.watchdog_interval = int(usec) / 1e6 / 2 if usec and usec.isdigit() else None
        """Seconds between watchdog pings (half of systemd's WatchdogSec), None if off."""

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, *fields: str) -> None:
        if self._socket is None:
            return
        with contextlib.suppress(OSError):
            self._socket.sendto("\n".join(fields).encode(), self._address)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")
