"""The fake appliance's SSL data plane: a TLS listener that serves what NITRO configured.

One listener per SSL vserver (``vserver``), plus the historic ``tls_port`` one that follows the
data-plane SSL vserver (``vserver=None``). Every new connection gets an ``ssl.SSLContext`` built
from the current state: the default server certkey bound to the vserver (see
``tests.fakens.ssl.served_chain``) plus the CA certkeys reached by following
``linkcertkeyname``, in link order — exactly what a NetScaler sends. When the client sends a
server name and the vserver has SNI enabled, the SNI callback switches to the SNI-bound
certificate matching that name. An update through NITRO therefore shows on the next
connection. Without a default server certkey the connection is closed before any handshake.
After a handshake the listener answers one HTTP request with ``200 ok`` so that curl and
browsers get a response.

Contexts are cached by their PEM material; the PEM files ``load_cert_chain`` needs exist only
for the moment of loading, in a private temporary directory removed on stop.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import socketserver
import ssl
import tempfile
import threading
from typing import Optional

from cryptography.hazmat.primitives import serialization

from tests.fakens import ssl as sslconf
from tests.fakens.core import State

READ_TIMEOUT = 2.0
MAX_REQUEST_HEAD = 65536
MAX_CACHED_CONTEXTS = 8
_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
             b"Connection: close\r\n\r\nok\n")


class TlsPlane:
    """A threaded TLS listener on ``host``; ``port`` is known after ``start()``."""

    def __init__(self, state: State, host: str = "127.0.0.1", port: int = 0,
                 vserver: Optional[str] = None) -> None:
        self.state = state
        self.vserver = vserver
        self._address = (host, port)
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._tmpdir: Optional[str] = None
        self._cache: dict[bytes, ssl.SSLContext] = {}
        self._cache_lock = threading.Lock()
        self._open: set[socket.socket] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("TLS data plane not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._tmpdir = tempfile.mkdtemp(prefix="fakens-tls-")
        self._server = _Server(self._address, self)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, name="fakens-tls",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, cut open connections, join every thread, remove temporary files."""
        if self._server is not None:
            self._server.shutdown()
            with self._cache_lock:
                for sock in list(self._open):
                    with contextlib.suppress(OSError):
                        # the base-class call: SSLSocket.shutdown races with the reading thread
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        self._cache.clear()

    def context(self, server_name: Optional[str] = None) -> Optional[ssl.SSLContext]:
        """A server context for what is bound right now, or None when nothing is."""
        with self.state.lock:
            served = sslconf.served_chain(self.state, self.vserver, server_name)
        if served is None:
            return None
        key, chain = served
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
        fingerprint = hashlib.sha256(key_pem + chain_pem).digest()
        with self._cache_lock:
            cached = self._cache.get(fingerprint)
            if cached is None:
                cached = self._load(chain_pem, key_pem)
                if len(self._cache) >= MAX_CACHED_CONTEXTS:
                    self._cache.clear()
                self._cache[fingerprint] = cached
            return cached

    def _load(self, chain_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
        if self._tmpdir is None:
            raise RuntimeError("TLS data plane not started")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.sni_callback = self._pick_by_name
        chain_file = os.path.join(self._tmpdir, "chain.pem")
        key_file = os.path.join(self._tmpdir, "key.pem")
        try:
            _write_private(chain_file, chain_pem)
            _write_private(key_file, key_pem)
            context.load_cert_chain(chain_file, key_file)
        finally:
            for path in (chain_file, key_file):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        return context

    def _pick_by_name(self, tls: ssl.SSLObject, server_name: Optional[str],
                      _context: ssl.SSLContext) -> None:
        """SNI: serve what the vserver binds for this name (its default when nothing matches)."""
        if server_name:
            chosen = self.context(server_name)
            if chosen is not None:
                tls.context = chosen

    def track(self, sock: socket.socket, is_open: bool) -> None:
        with self._cache_lock:
            if is_open:
                self._open.add(sock)
            else:
                self._open.discard(sock)


def _write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], plane: TlsPlane) -> None:
        self.plane = plane
        super().__init__(address, _Handler)


class _Handler(socketserver.BaseRequestHandler):
    """One connection: handshake with the current certkey, then answer one request."""

    server: _Server

    def handle(self) -> None:
        plane = self.server.plane
        raw: socket.socket = self.request
        context = plane.context()
        if context is None:
            return  # nothing bound: socketserver closes the connection without a handshake
        raw.settimeout(READ_TIMEOUT)
        plane.track(raw, True)
        try:
            with context.wrap_socket(raw, server_side=True) as tls:
                plane.track(tls, True)
                try:
                    _answer(tls)
                finally:
                    plane.track(tls, False)
        except (OSError, ssl.SSLError):
            pass  # the client hung up, failed verification or timed out: nothing to report
        finally:
            plane.track(raw, False)


def _answer(tls: ssl.SSLSocket) -> None:
    head = b""
    while b"\r\n\r\n" not in head and len(head) < MAX_REQUEST_HEAD:
        chunk = tls.recv(4096)
        if not chunk:
            return
        head += chunk
    tls.sendall(_RESPONSE)
