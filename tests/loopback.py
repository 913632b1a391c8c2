"""A ThreadingHTTPServer on 127.0.0.1 (a free port), served from a daemon thread while its
context is open: the lifecycle the tests' small HTTP servers share (canned NITRO answers, the
ARI responder, the notification receiver)."""

from __future__ import annotations

import http.server
import ssl
import threading
from typing import Optional, TypeVar

Server = TypeVar("Server", bound="LoopbackServer")


class LoopbackServer:
    """``port`` is bound at construction; ``tls`` wraps the listening socket server-side."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler],
                 tls: Optional[ssl.SSLContext] = None) -> None:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self: Server) -> Server:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
