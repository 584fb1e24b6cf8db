"""OSCQuery: rvcd's address space as an HTTP JSON tree, advertised over mDNS.

Implements the Vidvox OSCQuery proposal's server side: `GET /` (or any node's path)
gives the node with FULL_PATH, CONTENTS, TYPE, ACCESS, RANGE, VALUE and DESCRIPTION;
`GET /path?VALUE` (or another attribute) gives that attribute alone; `GET /?HOST_INFO`
gives NAME, OSC_IP, OSC_PORT, OSC_TRANSPORT and the EXTENSIONS served. The service is
advertised as `_oscjson._tcp` (the HTTP port) and `_osc._udp` (the OSC port) with
zeroconf, so Open Stage Control, ossia score and similar tools find rvcd.

python-oscquery (0.4.0, MIT) was evaluated first and not used: it binds its HTTP server
on every interface (hard-coded), where rvcd must bind like its OSC socket (loopback by
default, the allowed-senders rule applies), and it needs `requests` for a client rvcd
does not use. The tree is built from `osc_addresses.ADDRESSES`, the one table.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from rvcd.control.osc_addresses import ADDRESSES, OscAddress

log = logging.getLogger("rvcd.oscquery")
STOP_WAIT_S = 0.5
"""How long stopping waits for mDNS goodbyes."""
EXTENSIONS = {
    "ACCESS": True,
    "VALUE": True,
    "RANGE": True,
    "DESCRIPTION": True,
    "TYPE": True,
    "FULL_PATH": True,
    "CONTENTS": True,
    "TAGS": False,
    "CLIPMODE": False,
    "UNIT": False,
    "CRITICAL": False,
    "LISTEN": False,
    "PATH_CHANGED": False,
}


def _leaf(address: OscAddress, value: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "FULL_PATH": address.path,
        "ACCESS": address.access,
        "DESCRIPTION": address.description,
    }
    if address.types:
        node["TYPE"] = address.types
    if address.values is not None:
        node["RANGE"] = [{"VALS": list(address.values)}]
    elif address.range is not None:
        node["RANGE"] = [{"MIN": address.range[0], "MAX": address.range[1]}]
    if value is not None:
        node["VALUE"] = [value]
    return node


def build_tree(values: dict[str, Any]) -> dict[str, Any]:
    """The whole address space as an OSCQuery node tree; `values` maps paths to their
    current values (only readable addresses have one)."""
    root: dict[str, Any] = {"FULL_PATH": "/", "ACCESS": 0, "CONTENTS": {}}
    for address in ADDRESSES:
        node = root
        parts = address.path.strip("/").split("/")
        for depth, part in enumerate(parts[:-1]):
            path = "/" + "/".join(parts[: depth + 1])
            contents = node.setdefault("CONTENTS", {})
            node = contents.setdefault(part, {"FULL_PATH": path, "ACCESS": 0, "CONTENTS": {}})
        leaf = _leaf(address, values.get(address.path))
        existing = node.setdefault("CONTENTS", {}).get(parts[-1])
        if existing is not None and "CONTENTS" in existing:
            leaf["CONTENTS"] = existing["CONTENTS"]  # /rvcd/pitch also holds /rvcd/pitch/norm
        node["CONTENTS"][parts[-1]] = leaf
    return root


def find(tree: dict[str, Any], path: str) -> dict[str, Any] | None:
    node = tree
    for part in [p for p in path.strip("/").split("/") if p]:
        node = node.get("CONTENTS", {}).get(part)
        if node is None:
            return None
    return node


class OscQueryServer:
    """The HTTP side; `values()` gives the current value of every readable address."""

    def __init__(
        self, bind: str, port: int, osc_port: int, values: Any, allowed: tuple[str, ...] = ()
    ) -> None:
        self.values = values
        self.allowed = allowed
        self.osc_port = osc_port
        self.bind = bind
        self._zeroconf: Any = None
        self._stopped = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                outer._get(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug("HTTP %s: " + format, self.client_address[0], *args)

        family = socket.getaddrinfo(bind, port, type=socket.SOCK_STREAM)[0][0]
        ThreadingHTTPServer.address_family = family
        self.http = ThreadingHTTPServer((bind, port), Handler)
        self.http.daemon_threads = True
        self.port = self.http.server_address[1]
        self._thread = threading.Thread(target=self.http.serve_forever, name="rvcd-oscquery", daemon=True)

    def host_info(self) -> dict[str, Any]:
        return {
            "NAME": "rvcd",
            "OSC_IP": self.bind,
            "OSC_PORT": self.osc_port,
            "OSC_TRANSPORT": "UDP",
            "EXTENSIONS": EXTENSIONS,
        }

    def _get(self, request: BaseHTTPRequestHandler) -> None:
        host = request.client_address[0].removeprefix("::ffff:")
        if self.allowed and host not in self.allowed:
            self._send(request, HTTPStatus.FORBIDDEN, {"error": "sender not in osc.allowed_senders"})
            return
        url = urlsplit(request.path)
        if url.query == "HOST_INFO":
            self._send(request, HTTPStatus.OK, self.host_info())
            return
        node = find(build_tree(self.values()), unquote(url.path))
        if node is None:
            self._send(request, HTTPStatus.NOT_FOUND, {"error": f"no address {url.path}"})
        elif url.query:
            if url.query not in node:
                self._send(request, HTTPStatus.NO_CONTENT, None)
            else:
                self._send(request, HTTPStatus.OK, {url.query: node[url.query]})
        else:
            self._send(request, HTTPStatus.OK, node)

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: HTTPStatus, body: Any) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def start(self) -> None:
        self._thread.start()
        log.info("OSCQuery on http://%s:%d/ (OSC port %d)", self.bind, self.port, self.osc_port)
        # Registering announces and waits on the network (about a second): not on the
        # path to READY.
        threading.Thread(target=self._advertise, name="rvcd-mdns", daemon=True).start()

    def _advertise(self) -> None:
        """Register `_oscjson._tcp` and `_osc._udp` with mDNS; a machine without
        multicast on that interface only loses discovery (logged)."""
        try:
            from zeroconf import ServiceInfo, Zeroconf

            address = socket.getaddrinfo(self.bind, None)[0][4][0]
            zc = Zeroconf(interfaces=[address])
            name = f"rvcd-{self.osc_port}"
            for kind, port in (("_oscjson._tcp.local.", self.port), ("_osc._udp.local.", self.osc_port)):
                zc.register_service(
                    ServiceInfo(
                        kind,
                        f"{name}.{kind}",
                        port=port,
                        properties={"txtvers": "1"},
                        server=f"{name}.local.",
                        parsed_addresses=[address],
                    )
                )
            self._zeroconf = zc
            if self._stopped.is_set():  # stopped while registering
                self._close_zeroconf()
        except Exception as exc:  # discovery is a convenience: never fatal
            log.warning("OSCQuery: mDNS advertisement unavailable on %s: %s", self.bind, exc)

    def _close_zeroconf(self) -> None:
        zc, self._zeroconf = self._zeroconf, None
        if zc is not None:  # goodbye packets take a moment: sent without holding up a stop
            closing = threading.Thread(target=lambda: (zc.unregister_all_services(), zc.close()), daemon=True)
            closing.start()
            closing.join(timeout=STOP_WAIT_S)

    def stop(self) -> None:
        self._stopped.set()
        self._close_zeroconf()
        if self._thread.ident is not None:  # shutdown() would wait forever for a loop never started
            self.http.shutdown()
        self.http.server_close()
