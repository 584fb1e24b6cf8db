"""The virtual microphone: a PipeWire `Audio/Source/Virtual` node fed by rvcd's outputs,
so that any application (a chat app, OBS, a browser) can pick the converted voice as its
microphone.

PipeWire's own tools do the work (no maintained Python binding for PipeWire installs
here): a `pw-cli` child process creates the node with the null-audio-sink adapter and
owns it, so the node lives exactly as long as that process, and the process is tied to
rvcd's life (PR_SET_PDEATHSIG): however rvcd ends, PipeWire removes the node. `pw-dump`
reads the graph (the node, its ports, our JACK client's ports, the links), `pw-link`
links `out_N` to the node's `input_*` ports. A node of the same name left by an earlier
rvcd that is no longer running is replaced; one made by somebody else is used as it is.

Thread: the main thread only (start, the serve loop, stop): the kernel sends the death
signal when the thread that started `pw-cli` ends, and the main thread lives as long as
the process.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from rvcd.daemon.config import VirtualMicConfig

log = logging.getLogger("rvcd.virtual_mic")
TOOLS = ("pw-cli", "pw-dump", "pw-link")
APPEAR_TIMEOUT_S = 3.0
"""How long to wait for a new node and its ports to show in the graph."""
COMMAND_TIMEOUT_S = 5.0
"""Longest a pw-dump or pw-link call may take."""
RETRY_S = (5.0, 60.0)
"""After a failure that may pass (PipeWire restarting), try again after the first, then
twice as long each time up to the second, seconds."""
PID_KEY = "rvcd.pid"
"""Node property naming the rvcd process that made it."""
_PR_SET_PDEATHSIG = 1


def positions(channels: int) -> list[str]:
    """PipeWire channel positions for `channels` outputs: MONO, FL FR, or AUX0...AUXn-1."""
    if channels == 1:
        return ["MONO"]
    if channels == 2:
        return ["FL", "FR"]
    return [f"AUX{i}" for i in range(channels)]


def _die_with_parent() -> None:
    """In the pw-cli child before exec: receive SIGTERM when rvcd's main thread ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    """Run one of PipeWire's tools, its output captured, within COMMAND_TIMEOUT_S."""
    return subprocess.run(list(command), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)


def _rvcd_running(pid: int) -> bool:
    """Whether process `pid` exists and is an rvcd."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"rvcd" in f.read()
    except OSError:
        return False


@dataclass
class Graph:
    """One snapshot of the PipeWire graph (pw-dump's objects)."""

    objects: list[dict[str, Any]]

    @classmethod
    def read(cls) -> Graph:
        out = _run("pw-dump", "--no-colors")
        out.check_returncode()
        return cls(json.loads(out.stdout or "[]"))

    def _of_type(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("type", "").endswith(f":{kind}")]

    @staticmethod
    def props(obj: dict[str, Any]) -> dict[str, Any]:
        return (obj.get("info") or {}).get("props") or {}

    def nodes_named(self, name: str) -> list[dict[str, Any]]:
        return [n for n in self._of_type("Node") if self.props(n).get("node.name") == name]

    def ports(self, node_id: int, direction: str) -> list[dict[str, Any]]:
        """The node's ports in `direction` ('in' or 'out'), in channel order."""
        ports = [
            p
            for p in self._of_type("Port")
            if self.props(p).get("node.id") == node_id and self.props(p).get("port.direction") == direction
        ]
        return sorted(ports, key=lambda p: int(self.props(p).get("port.id", 0)))

    def process_port(self, pid: int, port_name: str) -> dict[str, Any] | None:
        """The port named `port_name` of a node that process `pid` made (our JACK client)."""
        clients = {
            c["id"]
            for c in self._of_type("Client")
            if str(self.props(c).get("application.process.id", self.props(c).get("pipewire.sec.pid")))
            == str(pid)
        }
        nodes = {n["id"] for n in self._of_type("Node") if self.props(n).get("client.id") in clients}
        for port in self._of_type("Port"):
            props = self.props(port)
            if props.get("node.id") in nodes and props.get("port.name") == port_name:
                return port
        return None

    def users(self, node_id: int) -> list[str]:
        """Who records from the node: the application (or node) names at the other end of
        links from its ports, sorted."""
        outputs = {p["id"] for p in self.ports(node_id, "out")}
        port_node = {p["id"]: self.props(p).get("node.id") for p in self._of_type("Port")}
        nodes = {n["id"]: self.props(n) for n in self._of_type("Node")}
        names = set()
        for link in self._of_type("Link"):
            info = link.get("info") or {}
            if info.get("output-port-id") in outputs:
                props = nodes.get(port_node.get(info.get("input-port-id")), {})
                names.add(str(props.get("application.name") or props.get("node.name") or "?"))
        return sorted(names)

    def linked(self, out_port: int, in_port: int) -> bool:
        return any(
            (link.get("info") or {}).get("output-port-id") == out_port
            and (link.get("info") or {}).get("input-port-id") == in_port
            for link in self._of_type("Link")
        )


class VirtualMic:
    """The virtual source `cfg.name` with one channel per rvcd channel."""

    def __init__(self, cfg: VirtualMicConfig, channels: int) -> None:
        self.cfg = cfg
        self.channels = channels
        self.pid = os.getpid()
        self.node_id: int | None = None
        self.owned = False
        """Whether rvcd made the node (and removes it), or uses one made by somebody else."""
        self.state = "off"
        """What the log and status say about it: off, ready, or why there is none."""
        self.is_linked = False
        """Whether every out_N fed the node when the graph was last read."""
        self.users: list[str] = []
        """Who recorded from it when the graph was last read (application names)."""
        self._proc: subprocess.Popen[str] | None = None
        self._said: set[str] = set()
        self._retry_at: float | None = None
        self._retry_delay = RETRY_S[0]

    # -- main thread -----------------------------------------------------------------------

    def update(self, on_pipewire: bool) -> None:
        """After every (re)connection to JACK: make sure the node exists and that every
        `out_N` feeds it. Never raises: what goes wrong is logged and rvcd runs on."""
        if not on_pipewire:
            self._unavailable(
                "the JACK server is jackd, not PipeWire, and only PipeWire makes virtual devices: "
                "run rvcd where PipeWire runs (with pipewire-jack installed), or route rvcd:out_N "
                "with a patchbay",
                retry=False,
            )
            return
        missing = [tool for tool in TOOLS if shutil.which(tool) is None]
        if missing:
            self._unavailable(
                f"{', '.join(missing)} not found (install PipeWire's tools: pipewire-bin)", retry=False
            )
            return
        self._retry_at = None
        try:
            graph = Graph.read()
            node = self._find_or_make(graph)
            if node is not None:
                self._link(node)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            self._unavailable(f"PipeWire did not answer: {exc}")

    def check(self, on_pipewire: bool) -> None:
        """Periodically: make the node again if it went away (PipeWire restarted, or it
        was removed by hand), or try again after a failure that may have passed."""
        if self.node_id is None:
            if self._retry_at is not None and time.monotonic() >= self._retry_at:
                self.update(on_pipewire)
            return
        try:
            graph = Graph.read()
        except (OSError, subprocess.SubprocessError, ValueError):
            return
        if any(n["id"] == self.node_id for n in graph.nodes_named(self.cfg.name)):
            users = graph.users(self.node_id)
            if users != self.users:
                who = f"used by {', '.join(users)}" if users else "no longer used by any application"
                log.info("virtual microphone '%s' %s", self.cfg.description, who)
                self.users = users
            was, self.is_linked = self.is_linked, self._all_linked(graph, self.node_id)
            if was and not self.is_linked:
                log.warning(
                    "virtual microphone '%s' is no longer fed by all of rvcd's outputs (unlinked by "
                    "hand?): applications hear silence until it is linked again",
                    self.cfg.description,
                )
        else:
            log.warning("virtual microphone '%s' went away: making it again", self.cfg.name)
            self._forget()
            self.update(on_pipewire)

    def status(self) -> dict[str, Any]:
        """For /rvcd/status: the device's node name ('' when there is none), its
        description, whether rvcd's outputs fed it (1/0) and who recorded from it, as
        last looked at."""
        if self.node_id is None:
            return self.absent()
        return {
            "virtual_mic": self.cfg.name,
            "virtual_mic_description": self.cfg.description,
            "virtual_mic_linked": int(self.is_linked),
            "virtual_mic_users": ", ".join(self.users),
        }

    @staticmethod
    def absent() -> dict[str, Any]:
        """The status of no virtual microphone."""
        return {
            "virtual_mic": "",
            "virtual_mic_description": "",
            "virtual_mic_linked": 0,
            "virtual_mic_users": "",
        }

    def describe(self) -> str:
        """For the log's setup line."""
        if self.node_id is None:
            return f"virtual mic {self.state}"
        made = "" if self.owned else ", not made by rvcd"
        linked = "linked" if self.is_linked else "NOT linked"
        return f"virtual mic '{self.cfg.description}' ({self.cfg.name}{made}) {linked}"

    def close(self) -> None:
        """Remove the node rvcd made (its pw-cli quits, and PipeWire drops the node with
        its client), leave others alone."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                proc.stdin.write("quit\n")  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait(timeout=2)
            log.info("virtual microphone '%s' removed", self.cfg.name)
        self._forget()

    # -- internals -------------------------------------------------------------------------

    def _unavailable(self, why: str, retry: bool = True) -> None:
        """Say (once per reason) why there is no virtual microphone; if it may pass,
        schedule another try."""
        self.state = f"unavailable: {why}"
        if why not in self._said:
            self._said.add(why)
            log.warning("no virtual microphone: %s%s", why, " (will try again)" if retry else "")
        if retry:
            self._retry_at = time.monotonic() + self._retry_delay
            self._retry_delay = min(RETRY_S[1], 2 * self._retry_delay)

    def _forget(self) -> None:
        self.node_id = None
        self.is_linked = False
        self.users = []
        self.owned = False
        self.state = "off"
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None

    def _find_or_make(self, graph: Graph) -> dict[str, Any] | None:
        name = self.cfg.name
        for node in graph.nodes_named(name):
            owner = Graph.props(node).get(PID_KEY)
            if owner is None:
                if not self.owned:
                    log.info(
                        "virtual microphone: using the existing PipeWire node '%s' (not made by rvcd)", name
                    )
                self.node_id, self.owned, self.state = node["id"], False, "ready"
                return node
            owner = int(owner)
            if owner == self.pid and self._proc is not None and self._proc.poll() is None:
                self.node_id, self.owned, self.state = node["id"], True, "ready"
                return node
            if owner != self.pid and _rvcd_running(owner):
                self._unavailable(
                    f"'{name}' belongs to another running rvcd (pid {owner}): give this one its own "
                    "virtual_mic.name"
                )
                return None
            log.info(
                "virtual microphone: replacing '%s' (node %d) left by rvcd pid %d", name, node["id"], owner
            )
            _run("pw-cli", "destroy", str(node["id"]))
        return self._make()

    def _make(self) -> dict[str, Any] | None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=2)
        cfg = self.cfg
        props = " ".join(
            [
                "factory.name=support.null-audio-sink",
                f'node.name="{cfg.name}"',
                f'node.description="{cfg.description}"',
                "media.class=Audio/Source/Virtual",
                f"audio.position=[{' '.join(positions(self.channels))}]",
                f"{PID_KEY}={self.pid}",
            ]
        )
        self._proc = subprocess.Popen(
            ["pw-cli"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (ctypes prctl only, no locks)
        )
        self._proc.stdin.write(f"create-node adapter {{ {props} }}\n")  # type: ignore[union-attr]
        self._proc.stdin.flush()  # type: ignore[union-attr]
        deadline = time.monotonic() + APPEAR_TIMEOUT_S
        why = f"pw-cli could not make the node '{cfg.name}' within {APPEAR_TIMEOUT_S:g} s"
        while time.monotonic() < deadline:
            graph = Graph.read()
            for node in graph.nodes_named(cfg.name):
                if str(Graph.props(node).get(PID_KEY)) != str(self.pid):
                    continue
                why = (
                    f"the node '{cfg.name}' was made but got no ports: is a session manager "
                    "(wireplumber) running?"
                )
                if len(graph.ports(node["id"], "in")) == self.channels:
                    self._retry_delay = RETRY_S[0]
                    self.node_id, self.owned, self.state = node["id"], True, "ready"
                    log.info(
                        "virtual microphone '%s' (%s, Audio/Source/Virtual, %d channel(s)) is up: "
                        "applications can pick it as their microphone",
                        cfg.description,
                        cfg.name,
                        self.channels,
                    )
                    return node
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        self._proc.kill()
        self._proc.wait(timeout=2)
        self._proc = None
        self._unavailable(why)
        return None

    def _pairs(self, graph: Graph, node_id: int) -> list[tuple[str, dict[str, Any] | None, dict[str, Any]]]:
        """(out_N, our port, the node's input port) for every channel the node has."""
        inputs = graph.ports(node_id, "in")
        return [
            (f"out_{i + 1}", graph.process_port(self.pid, f"out_{i + 1}"), port)
            for i, port in enumerate(inputs[: self.channels])
        ]

    def _all_linked(self, graph: Graph, node_id: int) -> bool:
        pairs = self._pairs(graph, node_id)
        return bool(pairs) and all(
            ours is not None and graph.linked(ours["id"], mic["id"]) for _, ours, mic in pairs
        )

    def _link(self, node: dict[str, Any]) -> None:
        graph = Graph.read()
        done, failed = [], []
        for name, ours, mic in self._pairs(graph, node["id"]):
            mic_name = Graph.props(mic).get("port.name", mic["id"])
            if ours is None:
                failed.append(f"{name} (rvcd's port is not in the PipeWire graph)")
                continue
            if graph.linked(ours["id"], mic["id"]):
                continue
            result = _run("pw-link", str(ours["id"]), str(mic["id"]))
            if result.returncode == 0:
                done.append(f"{name} -> {self.cfg.description}:{mic_name}")
            else:
                failed.append(f"{name} ({result.stderr.strip() or result.returncode})")
        self.is_linked = self._all_linked(Graph.read(), node["id"])
        if done:
            log.info("virtual microphone linked: %s", ", ".join(done))
        if failed:
            log.warning("virtual microphone: could not link %s", ", ".join(failed))
