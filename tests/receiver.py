"""A loopback HTTP server that keeps every JSON body POSTed to it (apprise's json:// target)."""

from __future__ import annotations

import http.server
import json
from typing import Any

from tests.loopback import LoopbackServer


class JsonReceiver(LoopbackServer):
    """``messages``: the JSON objects received, in order. Use as a context manager."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.messages.append(json.loads(self.rfile.read(length) or b"{}"))
                receiver.headers.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler)
