"""A loopback HTTP/1.1 server answering NITRO requests with fixed bodies, for the answer shapes
and headers the fake NetScaler does not produce; it keeps every request it received.

GET ``<resource>`` answers ``bodies[resource]`` (plus errorcode 0); POST ``login`` opens a
session ``token-<n>`` (in the body, or only in cookies with ``token_in_body=False``) and sets
``cookies`` too; every other request answers "Done".
"""

from __future__ import annotations

import http.server
import json
from typing import Any, NamedTuple

from tests.loopback import LoopbackServer

DONE = {"errorcode": 0, "message": "Done", "severity": "NONE"}


class Received(NamedTuple):
    method: str
    resource: str
    headers: dict[str, str]


class CannedNitro(LoopbackServer):
    """Use as a context manager; ``url`` is the server's http:// address."""

    def __init__(self, bodies: dict[str, Any], *, cookies: tuple[str, ...] = (),
                 token_in_body: bool = True) -> None:
        self.received: list[Received] = []
        canned = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.answer("GET")

            def do_POST(self) -> None:
                self.answer("POST")

            def answer(self, method: str) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                resource = self.path.split("?")[0].rsplit("/", 1)[-1]
                canned.received.append(Received(method, resource, dict(self.headers)))
                status, body, headers = 200, {**DONE, **bodies.get(resource, {})}, []
                if method == "POST" and resource == "login":
                    token = f"token-{sum(r.resource == 'login' for r in canned.received)}"
                    status, body = 201, {**DONE, "sessionid": token} if token_in_body else DONE
                    headers = [*cookies, f"NITRO_AUTH_TOKEN={token}; path=/nitro/v1"]
                raw = json.dumps(body).encode()
                self.send_response(status)
                for header in headers:
                    self.send_header("Set-Cookie", header)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler)
        self.url = f"http://127.0.0.1:{self.port}"
