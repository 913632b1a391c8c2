"""One keep-alive HTTP(S) connection to the appliance, on the standard library alone.

Owns the socket of a :class:`~ns_letsencrypt.nitro.NitroClient`: connecting lazily, the TLS
context (CA bundle, SHA-256 pin checked before anything is sent, or no verification), the
(connect, read) timeouts, noticing that the appliance closed an idle connection, and turning
socket, TLS and HTTP failures into one :class:`TransportError` with a reason and a hint. It knows
nothing about NITRO. Built on ``http.client`` rather than requests because every hook call is a
fresh, short-lived process: importing requests (and urllib3, http.cookiejar) cost ~60-75 ms more
per process than ``http.client`` and ``ssl``, measured against issue 13's wall-time budget.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import select
import socket
import ssl
import urllib.parse
from typing import NamedTuple, Optional, Union

logger = logging.getLogger(__name__)

# Failures while writing a request on a reused connection: the appliance had closed its end,
# so no byte of the request was processed and sending it again on a new connection is safe.
# (ssl.SSLEOFError is how a TLS socket reports a peer that is gone.)
_CLOSED_WHILE_SENDING = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
                         ssl.SSLEOFError)
_TIMEOUTS = (socket.timeout, TimeoutError)  # the same class from Python 3.10 on
VERIFY_HINT = ("set NS_CA_BUNDLE to the CA that signed the management certificate, or pin it "
               "with NS_TLS_PIN (see 'ns-letsencrypt test --show-fingerprint')")


class Response(NamedTuple):
    """A whole answer: status, headers (case-insensitive ``get``/``get_all``), decoded body."""

    status: int
    headers: http.client.HTTPMessage
    text: str


class TransportError(Exception):
    """The request got no answer. ``retryable``: trying again may help (not for TLS problems)."""

    def __init__(self, reason: str, hint: Optional[str] = None, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint
        self.retryable = retryable


class Connection:
    """A lazily opened keep-alive connection to ``base_url`` (scheme, host and port are used).

    ``pin`` (SHA-256 hex of the server certificate) replaces CA verification; ``verify=False``
    turns verification off; otherwise ``ca_bundle`` (a file or directory), else the
    ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` environment variables (as requests honoured
    them), else OpenSSL's default store (which honours ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: tuple[float, float],
        ca_bundle: Optional[str] = None,
        pin: Optional[str] = None,
        verify: bool = True,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.tls = parts.scheme.lower() == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        self.timeout = timeout
        self._ca_bundle = ca_bundle
        self._pin = pin.lower() if pin else None
        self._verify = verify
        self._context: Optional[ssl.SSLContext] = None
        self._conn: Optional[http.client.HTTPConnection] = None

    def request(
        self, method: str, target: str, headers: dict[str, str], body: Optional[bytes]
    ) -> Response:
        """Send one request and read its whole answer; no redirect is followed.

        Raises:
            TransportError: no answer (the connection is closed then; the next call reconnects).
        """
        try:
            return self._exchange(method, target, headers, body)
        except TransportError:
            self.close()
            raise
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise _describe(exc, connecting=False) from None
        except ValueError:
            # http.client refuses header values with line breaks or non-Latin-1 characters;
            # its message would quote the value, which may be the password.
            self.close()
            raise TransportError(
                "a request header holds a character HTTP cannot carry",
                "check NS_USER and NS_PASSWORD for line breaks or unusual characters",
                retryable=False,
            ) from None

    def close(self) -> None:
        """Close the connection if one is open; the next request opens a new one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _exchange(
        self, method: str, target: str, headers: dict[str, str], body: Optional[bytes]
    ) -> Response:
        reused = self._ready()
        conn = self._conn
        assert conn is not None  # _ready opened it
        try:
            conn.request(method, target, body=body, headers=headers)
        except _CLOSED_WHILE_SENDING:
            if not reused:
                raise
            logger.debug("the appliance closed the kept-alive connection; sending again")
            self.close()
            self._ready()
            conn = self._conn
            assert conn is not None
            conn.request(method, target, body=body, headers=headers)
        answer = conn.getresponse()
        raw = answer.read()
        # http.client closes the socket itself when the answer says "Connection: close".
        return Response(answer.status, answer.msg, raw.decode(_charset(answer.msg), "replace"))

    def _ready(self) -> bool:
        """Make sure a usable connection is open; True when an existing one is reused."""
        conn = self._conn
        if conn is not None and conn.sock is not None and not _closed_by_peer(conn.sock):
            return True
        if conn is not None:
            if conn.sock is not None:
                logger.debug("the appliance closed the idle connection; reconnecting")
            self.close()
        self._conn = self._connect()
        return False

    def _connect(self) -> http.client.HTTPConnection:
        connect_timeout, read_timeout = self.timeout
        conn: http.client.HTTPConnection
        if self.tls:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=connect_timeout,
                                               context=self._tls_context())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=connect_timeout)
        try:
            conn.connect()  # TCP connect and TLS handshake, both under the connect timeout
            assert conn.sock is not None
            if self.tls and self._pin:
                _check_pin(conn.sock, self._pin)
            conn.sock.settimeout(read_timeout)
        except TransportError:
            conn.close()
            raise
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise _describe(exc, connecting=True) from None
        return conn

    def _tls_context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = self._new_context()
        return self._context

    def _new_context(self) -> ssl.SSLContext:
        if self._pin or not self._verify:
            # The pin alone decides (or nothing does): no CA store is loaded for nothing.
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        bundle = (self._ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE")
                  or os.environ.get("CURL_CA_BUNDLE") or None)
        if bundle and os.path.isdir(bundle):
            return ssl.create_default_context(capath=bundle)
        return ssl.create_default_context(cafile=bundle)


def _check_pin(sock: socket.socket, pin: str) -> None:
    """Compare the presented certificate with the pin, before a single byte is sent."""
    der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
    presented = hashlib.sha256(der).hexdigest() if der else "(no certificate)"
    if presented != pin:
        raise TransportError(
            f"TLS certificate pin mismatch: the appliance presented SHA-256 {presented}, "
            f"the configured NS_TLS_PIN is {pin}",
            "if the management certificate was replaced on purpose, update NS_TLS_PIN",
            retryable=False,
        )


def _closed_by_peer(sock: socket.socket) -> bool:
    """True when an idle kept-alive socket was closed by the appliance (or is unusable).

    An idle connection has nothing to read, so a readable one is at EOF, reset, or carries
    stray bytes: either way it must not carry the next request. A TLS socket can also be
    readable for a session ticket the server sent after the handshake, which is no reason to
    reconnect: a non-blocking read then processes it and finds no application data.
    """
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    if not poller.poll(0):
        return False
    if not isinstance(sock, ssl.SSLSocket):
        return True
    timeout = sock.gettimeout()
    try:
        sock.setblocking(False)
        sock.recv(1)  # b"" (EOF) or a stray byte: closed or unusable either way
    except ssl.SSLWantReadError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)
    return True


def _charset(headers: http.client.HTTPMessage) -> str:
    charset = headers.get_content_charset() or "utf-8"
    try:
        "".encode(charset)
    except LookupError:
        return "utf-8"
    return charset


def _describe(
    exc: Union[OSError, http.client.HTTPException], *, connecting: bool
) -> TransportError:
    """The reason and hint for a failed connection or exchange."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TransportError("TLS certificate verification failed", VERIFY_HINT, retryable=False)
    if isinstance(exc, ssl.SSLError) and (connecting or not isinstance(exc, ssl.SSLEOFError)):
        return TransportError(f"TLS handshake failed: {_short(exc)}", retryable=False)
    if isinstance(exc, _TIMEOUTS):
        if connecting:
            return TransportError("connection timed out",
                                  "check NS_URL, routing and firewalls to the NSIP")
        return TransportError("no answer within the read timeout",
                              "raise NS_TIMEOUT if the appliance is busy")
    if isinstance(exc, ConnectionRefusedError):
        return TransportError("connection refused", "check NS_URL (scheme, address and port)")
    if isinstance(exc, socket.gaierror):
        return TransportError("the host name does not resolve", "check NS_URL")
    return TransportError(f"connection failed: {_short(exc)}", "check NS_URL and the network path")


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."
