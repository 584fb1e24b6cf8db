"""Running under PipeWire's JACK library when the virtual microphone needs it.

Only PipeWire makes virtual devices, and rvcd reaches PipeWire through the JACK library
it loads. Distributions that ship PipeWire's libjack as the system's (Fedora; Arch with
pipewire-jack) load it anyway; others (Debian, Ubuntu) load jackd's unless the process
starts under `pw-jack`, which puts PipeWire's library first in LD_LIBRARY_PATH. The
dynamic loader reads that variable only when a process starts, so rvcd, asked for a
virtual microphone while PipeWire runs and holding jackd's library, starts itself again
under `pw-jack` (same process id: systemd's notify socket and watchdog still apply).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

log = logging.getLogger("rvcd")
MARK = "RVCD_UNDER_PW_JACK"
"""Set in the environment of the new start, so it never starts again a second time."""


def pipewire_socket() -> Path | None:
    """The socket of the PipeWire this process would talk to, if it exists
    ($PIPEWIRE_REMOTE, in $PIPEWIRE_RUNTIME_DIR or $XDG_RUNTIME_DIR)."""
    remote = os.environ.get("PIPEWIRE_REMOTE") or "pipewire-0"
    base = os.environ.get("PIPEWIRE_RUNTIME_DIR") or os.environ.get("XDG_RUNTIME_DIR")
    path = Path(remote) if remote.startswith("/") else Path(base or "/nonexistent") / remote
    return path if path.is_socket() else None


def pipewire_jack_loaded() -> bool:
    """Whether the JACK library this process loaded is PipeWire's."""
    import jack  # the library the process loaded decides: import it only when asked

    return "PipeWire" in jack.version_string()


def start_again_under_pw_jack() -> None:
    """If PipeWire runs but this process loaded another JACK library, replace this
    process with the same command under `pw-jack` (does not return); otherwise log why
    not, where that matters, and return."""
    if pipewire_jack_loaded() or pipewire_socket() is None:
        return
    if os.environ.get(MARK):
        log.warning("started under pw-jack, but the JACK library loaded is still not PipeWire's")
        return
    pw_jack = shutil.which("pw-jack")
    if pw_jack is None:
        log.warning(
            "PipeWire runs but this process has jackd's JACK library and pw-jack is not "
            "installed (pipewire-jack): the virtual microphone needs PipeWire's"
        )
        return
    log.info("the virtual microphone needs PipeWire's JACK library: starting again under pw-jack")
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.execve(pw_jack, [pw_jack, sys.executable, *sys.orig_argv[1:]], {**os.environ, MARK: "1"})
