"""A small ACME Renewal Information (RFC 9773) responder for the tests (pebble 2.4.0 has none).

It serves, over TLS on 127.0.0.1 with the certificate it is given (the stack uses pebble's, so
dehydrated's ``--cacert`` trusts both):

- ``GET /dir``: pebble's directory (fetched from ``upstream`` at each request) plus
  ``renewalInfo`` pointing here, or, without ``upstream``, a minimal directory; with
  ``offer_ari = False`` the directory has no ``renewalInfo``;
- ``GET /renewal-info/<identifier>``: whatever ``answer(identifier)`` returns as
  ``(status, headers, body)``; by default 404. Every identifier asked for is kept in ``asked``.

dehydrated follows the directory's URLs, so pointing CA at ``/dir`` changes nothing for it.
"""

from __future__ import annotations

import datetime
import http.server
import json
import ssl
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional

from tests.loopback import LoopbackServer

Answer = tuple[int, dict[str, str], bytes]


def window(start_days: float, end_days: float, explanation: Optional[str] = None,
           retry_after: Optional[str] = None) -> Answer:
    """A 200 answer whose window runs from now + ``start_days`` to now + ``end_days``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    body: dict[str, Any] = {"suggestedWindow": {
        "start": (now + datetime.timedelta(days=start_days)).isoformat().replace("+00:00", "Z"),
        "end": (now + datetime.timedelta(days=end_days)).isoformat().replace("+00:00", "Z")}}
    if explanation:
        body["explanationURL"] = explanation
    headers = {"Content-Type": "application/json"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return 200, headers, json.dumps(body).encode()


class AriResponder(LoopbackServer):
    """See the module docstring; use as a context manager."""

    def __init__(self, tls_cert: Path, tls_key: Path, upstream: Optional[str] = None) -> None:
        self.tls_cert = tls_cert
        self.upstream = upstream
        self.offer_ari = True
        self.meta: dict[str, Any] = {}  # the directory's meta without upstream
        self.answer: Callable[[str], Answer] = lambda _id: (404, {}, b"")
        self.asked: list[str] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls_cert), str(tls_key))
        super().__init__(self._handler(), tls=context)
        self.base = f"https://127.0.0.1:{self.port}"
        self.directory = f"{self.base}/dir"

    def _directory(self) -> dict[str, Any]:
        if self.upstream:
            context = ssl.create_default_context(cafile=str(self.tls_cert))
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                 urllib.request.HTTPSHandler(context=context))
            with opener.open(self.upstream, timeout=5) as answer:
                directory: dict[str, Any] = json.loads(answer.read())
        else:
            directory = {"newNonce": f"{self.base}/nonce", "meta": self.meta}
        if self.offer_ari:
            directory["renewalInfo"] = f"{self.base}/renewal-info"
        return directory

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        responder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/dir":
                    status, headers, body = 200, {"Content-Type": "application/json"}, \
                        json.dumps(responder._directory()).encode()
                elif self.path.startswith("/renewal-info/"):
                    identifier = self.path[len("/renewal-info/"):]
                    responder.asked.append(identifier)
                    status, headers, body = responder.answer(identifier)
                else:
                    status, headers, body = 404, {}, b""
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
