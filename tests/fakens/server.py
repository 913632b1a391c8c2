"""Listeners: threaded HTTP/HTTPS servers with clean shutdown, and the management certificate.

``ThreadedServer`` wraps TLS per connection in the worker thread (a slow or failing handshake
never blocks the accept loop), tracks open connections and closes all of them in ``stop()`` so
no socket outlives the fake. ``NitroHandler`` hands every request to :class:`NitroApi`.
"""

from __future__ import annotations

import datetime
import hashlib
import http.server
import ipaddress
import socket
import ssl
import struct
import threading
import time
from pathlib import Path
from typing import Any, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fakens.api import NitroApi
from tests.fakens.faults import Reply

REASONS = {207: "Multi-Status", 209: "Warning", 599: "NetScaler specific error"}
STOP_GRACE = 3.0


class ThreadedServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server on 127.0.0.1 that can serve TLS and stops without leaks."""

    daemon_threads = True

    def __init__(self, port: int, handler: type[http.server.BaseHTTPRequestHandler],
                 ssl_context: Optional[ssl.SSLContext] = None, host: str = "127.0.0.1") -> None:
        self.ssl_context = ssl_context
        self.stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        super().__init__((host, port), handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"fakens-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close every open connection, wait for the workers to finish."""
        self.stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
        with self._open_lock:
            for conn in self._open:
                try:
                    # The base-class call: SSLSocket.shutdown would race with a reading thread.
                    socket.socket.shutdown(conn, socket.SHUT_RDWR)
                except OSError:
                    pass
        deadline = time.monotonic() + STOP_GRACE
        while self._open and time.monotonic() < deadline:
            time.sleep(0.01)
        self.server_close()

    def close_connections(self, how: str = "close") -> None:
        """Close the open connections from the server's side and wait until they are gone.

        ``how="reset"`` makes the kernel end them with RST (SO_LINGER 0) instead of FIN.
        """
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            try:
                if how == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + STOP_GRACE
        while any(conn in self._open for conn in conns) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # the worker closes the socket right after it stops tracking it

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        conn: socket.socket = request
        self._track(conn, True)
        try:
            if self.ssl_context is not None:
                conn.settimeout(10)
                self._track(conn, False)
                conn = self.ssl_context.wrap_socket(request, server_side=True)
                self._track(conn, True)
                conn.settimeout(None)
            self.finish_request(conn, client_address)
        except (OSError, ssl.SSLError):
            pass  # the client went away or failed the handshake
        except Exception:
            self.handle_error(conn, client_address)
        finally:
            self._track(conn, False)
            conn.close()
            self.shutdown_request(request)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._open_lock:
            if add:
                self._open.add(conn)
            else:
                self._open.discard(conn)


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """Base for the fake's handlers: HTTP/1.1 keep-alive, no stderr logging."""

    protocol_version = "HTTP/1.1"
    server_version = "Apache"
    sys_version = ""
    timeout = 30
    # Headers and body go out in separate writes; with Nagle + delayed ACK each answer would
    # wait ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send_reply(self, reply: Reply) -> None:
        self.send_response(reply.status, REASONS.get(reply.status))
        for key, value in reply.headers:
            self.send_header(key, value)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def drop_connection(self, how: str) -> None:
        """Close without answering; "reset" makes the kernel send RST instead of FIN."""
        if how == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        self.close_connection = True


class NitroHandler(QuietHandler):
    """Passes each request to the server's :class:`NitroApi`."""

    server: NitroServer

    def do_GET(self) -> None:
        self.serve("GET")

    def do_POST(self) -> None:
        self.serve("POST")

    def do_PUT(self) -> None:
        self.serve("PUT")

    def do_DELETE(self) -> None:
        self.serve("DELETE")

    def serve(self, method: str) -> None:
        body = self.read_body()
        reply = self.server.api.handle(method, self.path, self.headers, body)
        if reply.delay:
            self.server.stopping.wait(reply.delay)
        if reply.drop:
            self.drop_connection(reply.drop)
            return
        self.send_reply(reply)


class NitroServer(ThreadedServer):
    """The management listener (one for HTTP, one for HTTPS)."""

    def __init__(self, api: NitroApi, port: int = 0,
                 ssl_context: Optional[ssl.SSLContext] = None, host: str = "127.0.0.1") -> None:
        self.api = api
        super().__init__(port, NitroHandler, ssl_context, host)


def make_management_cert(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path, str]:
    """Write a self-signed EC certificate for ``host``/localhost; return cert, key, sha256."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fake NetScaler")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]),
            critical=False)
        # CA:TRUE + keyCertSign + key identifiers: usable as its own trust anchor even under
        # OpenSSL's strict verification.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False),
                       critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "ns-server.cert", directory / "ns-server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return cert_file, key_file, fingerprint


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A TLS server context for the management listener."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_file), str(key_file))
    return context
