"""NitroClient: the one place where ns-letsencrypt talks HTTP to a NetScaler.

Owns URL building, authentication (session cookie or per-request headers), TLS verification
(CA bundle, SHA-256 pin, or an explicit and logged ``insecure``), timeouts, bounded retries of
idempotent requests, re-login after an expired session, and turning every failure into a
typed :mod:`ns_letsencrypt.errors` exception. It knows nothing about certificates or
challenges. It never logs or raises a request body, so secrets cannot leak from here.

The HTTP layer (:mod:`ns_letsencrypt.httpconn`) is ``http.client`` and ``ssl`` rather than
requests: every hook call is a new, short-lived process, and importing requests measured
~60-75 ms more per process than the standard library pieces (issue 13's wall-time budget).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import socket
import ssl
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Optional, Protocol, Union

from .errors import NitroApiError, NitroAuthError, NitroConnectionError
from .httpconn import Connection, Response, TransportError

logger = logging.getLogger(__name__)

API_PREFIX = "/nitro/v1/config/"
SESSION_LOST_CODES = frozenset({444, 1027})
# "no usable credentials on this request": header auth disabled (1244), or not understood and
# the request treated as one without a session (444, 1027)
HEADER_REFUSED_CODES = frozenset({1244}) | SESSION_LOST_CODES
# answers meaning "this firmware does not know the bulk form": fall back to one call per object
BULK_UNSUPPORTED_CODES = frozenset({1240, 1090, 1233})
BULK_FAILED = 1243  # "Bulk operation failed", with per-item answers
INVALID_TIMEOUT = 1219  # the login's session timeout is outside what this appliance accepts
JsonObj = dict[str, Any]
Payload = Union[Mapping[str, Any], Sequence[Mapping[str, Any]]]


class SessionStore(Protocol):
    """Where a session shared with other processes is kept (see runstate.RunState)."""

    @property
    def login_timeout(self) -> int: ...

    def load_token(self) -> Optional[str]: ...

    def save_token(self, token: str) -> None: ...

    def forget_token(self) -> None: ...


class ReadCache(Protocol):
    """GET answers that other processes of the run already read (see runstate.RunState)."""

    def lookup(self, resource: str, key: str) -> Optional[list[JsonObj]]: ...

    def store(self, resource: str, key: str, items: list[JsonObj]) -> None: ...


def encode_kv(pairs: Mapping[str, Any]) -> str:
    """Render NITRO ``args``/``filter`` values: ``k:v,k:v`` with each value URL-encoded."""
    return ",".join(f"{k}:{urllib.parse.quote(str(v), safe='')}" for k, v in pairs.items())


def certificate_fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint as lower-case hex without separators (the pin format)."""
    return hashlib.sha256(der).hexdigest()


def fetch_server_fingerprint(url: str, timeout: float = 5.0) -> str:
    """SHA-256 fingerprint of the certificate an HTTPS server presents, read WITHOUT verifying.

    Only for showing an admin what to pin (``test --show-fingerprint``): the connection is
    closed right after the handshake, and nothing (least of all credentials) is sent over it.

    Raises:
        NitroConnectionError: the server could not be reached or the handshake failed.
    """
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we read the certificate to show it, never trust it
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ValueError) as exc:
        reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else str(exc)
        raise NitroConnectionError("TLS", f"{host}:{port}", reason,
                                   "check NS_URL (scheme, address and port)") from None
    if not der:
        raise NitroConnectionError("TLS", f"{host}:{port}", "the server sent no certificate")
    return certificate_fingerprint(der)


def _pin_for(url: str, pins: list[str], timeout: float) -> str:
    """Of several pins (one per HA node), the one this server presents; else the first.

    The certificate is only read here to choose; the connection that follows still accepts
    exactly the chosen fingerprint, and a server presenting none of them fails it.
    """
    if url.lower().startswith("https://"):
        try:
            presented = fetch_server_fingerprint(url, timeout)
        except NitroConnectionError:
            return pins[0]  # the real request reports the connection problem
        if presented in pins:
            return presented
    return pins[0]


class NitroClient:
    """A NITRO session. Use as a context manager: logs in on enter, out on exit.

    ``auth`` is ``session`` (POST login, then the session cookie), ``header`` (user and password
    in X-NITRO-USER/X-NITRO-PASS on every request, nothing to log in or out), or ``auto``: header
    authentication, switching to a session for the rest of the client's life when the appliance
    does not accept it. Short-lived processes use ``auto``: two requests fewer, and a process
    that is killed leaves no session behind on the appliance.

    With a ``store`` (the run's shared session), entering adopts the session another process
    of the run opened (logging in only when there is none), a new login replaces the kept one,
    and leaving keeps the session open for the next process; :meth:`end_session` logs out and
    forgets it. With a ``cache``, GETs of resources it holds are answered from it.

    Every public call returns decoded JSON or raises :class:`NitroConnectionError` (could not
    reach the appliance) or :class:`NitroApiError` and its subclasses (the appliance said no).
    """

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        auth: str = "session",
        ca_bundle: Optional[str] = None,
        pin: Optional[str] = None,
        insecure: bool = False,
        timeout: tuple[float, float] = (5.0, 60.0),
        retries: int = 2,
        store: Optional[SessionStore] = None,
        cache: Optional[ReadCache] = None,
    ) -> None:
        self.base_url = url.rstrip("/")
        parts = urllib.parse.urlsplit(self.base_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._base_path = parts.path  # NS_URL may name a path in front of /nitro/v1
        self._username = username
        self._password = password
        self.auth = auth
        self.timeout = timeout
        self.retries = retries
        self.insecure = insecure and not pin
        self.request_count = 0
        self._token: Optional[str] = None
        self._bulk_remove_ok = True
        self._store = store
        self._cache = cache
        if pin and "," in pin:
            pin = _pin_for(self.base_url, pin.split(","), timeout[0])
        # One kept-alive connection for the client's life. We carry the session token in our
        # own Cookie header; cookies the appliance sets (for its GUI) are never sent back.
        self._connection = Connection(self.base_url, timeout=timeout, ca_bundle=ca_bundle,
                                      pin=pin or None, verify=not self.insecure)
        if self.insecure:
            logger.warning(
                "TLS verification of %s is OFF (NS_TLS_VERIFY=insecure): anyone on the path "
                "can read the NITRO password; pin the certificate with NS_TLS_PIN instead",
                self.base_url,
            )

    @property
    def is_plain_http(self) -> bool:
        """True when requests travel unencrypted (private keys need an explicit opt-in)."""
        return self.base_url.lower().startswith("http://")

    # -- session lifecycle ------------------------------------------------------------

    def __enter__(self) -> NitroClient:
        kept = self._store.load_token() if self._store and not self._per_request_auth else None
        if kept:
            self._token = kept  # the run's session; a 444 on first use logs in again
        else:
            self.login()
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        try:
            self.logout()
        finally:
            self.close()

    def close(self) -> None:
        """Close the connection to the appliance (a later request opens a new one)."""
        self._connection.close()

    def __del__(self) -> None:
        connection = getattr(self, "_connection", None)  # absent when __init__ failed
        if connection is not None:
            connection.close()

    def login(self) -> None:
        """Open a session (no-op with header authentication).

        Raises:
            NitroAuthError: the appliance refused the credentials.
            NitroConnectionError: the appliance could not be reached.
        """
        if self._per_request_auth:
            return
        self._token = None
        body: JsonObj = {"username": self._username, "password": self._password}
        if self._store:
            body["timeout"] = self._store.login_timeout
        try:
            answer, response = self._send_login(body)
        except NitroApiError as exc:
            if exc.errorcode != INVALID_TIMEOUT or "timeout" not in body:
                raise
            del body["timeout"]  # the user's own limits apply; the appliance's default then
            answer, response = self._send_login(body)
        token = answer.get("sessionid") or _cookie(response, "NITRO_AUTH_TOKEN") or (
            urllib.parse.unquote(_cookie(response, "sessionid") or "")
        )
        if not token:
            raise NitroApiError(
                "POST", "login", response.status, -1,
                "login answered without a session id", hint="is this a NetScaler NITRO API?",
            )
        self._token = str(token)
        if self._store:
            self._store.save_token(self._token)

    def _send_login(self, body: JsonObj) -> tuple[JsonObj, Response]:
        # Not retried: a login whose answer was lost may have opened a session already.
        return self._send("POST", "login", None, {}, {"login": body}, retry=False)

    @property
    def _per_request_auth(self) -> bool:
        return self.auth in ("header", "auto")

    def logout(self) -> None:
        """Close the session; failures are logged, never raised (we are leaving anyway).

        A session shared with the run stays open for the next process (see end_session).
        """
        if self._store:
            self._token = None
            return
        self._end()

    def end_session(self) -> None:
        """Log out even from a shared session, and forget it; never raises."""
        if self._store and not self._token and not self._per_request_auth:
            self._token = self._store.load_token()
        self._end()
        if self._store:
            self._store.forget_token()

    def _end(self) -> None:
        if self._per_request_auth or not self._token:
            return
        try:
            self._send("POST", "logout", None, {}, {"logout": {}}, retry=False)
        except (NitroApiError, NitroConnectionError) as exc:
            logger.debug("logout failed (ignored): %s", exc)
        finally:
            self._token = None
            self.close()

    # -- resource operations ----------------------------------------------------------

    def get(
        self,
        resource: str,
        name: Optional[str] = None,
        *,
        args: Optional[Mapping[str, Any]] = None,
        filter: Optional[Mapping[str, Any]] = None,
        attrs: Optional[Sequence[str]] = None,
        bulkbindings: bool = False,
        fresh: bool = False,
    ) -> list[JsonObj]:
        """GET a collection or one object; always a list (empty when NITRO omits the key).

        ``bulkbindings``: a binding resource's rows of every bind point at once. ``fresh``:
        ask the appliance even when the run read it already (the HA role after a failover).
        """
        query: dict[str, str] = {}
        if bulkbindings:
            query["bulkbindings"] = "yes"
        if args:
            query["args"] = encode_kv(args)
        if filter:
            query["filter"] = encode_kv(filter)
        if attrs:
            query["attrs"] = ",".join(attrs)
        key = _label("GET", resource, name, query) + "?" + "&".join(
            f"{k}={v}" for k, v in sorted(query.items()))
        cached = self._cache.lookup(resource, key) if self._cache and not fresh else None
        if cached is not None:
            logger.debug("%s: read earlier in this run", key)
            return cached
        answer = self._call("GET", resource, name, query, None)
        value = answer.get(resource, [])
        if isinstance(value, dict):  # singletons come back as objects on some firmware
            items = [value]
        else:
            items = [item for item in value if isinstance(item, dict)] if isinstance(
                value, list) else []
        if self._cache:
            self._cache.store(resource, key, items)
        return items

    def get_one(self, resource: str, name: str, **kw: Any) -> Optional[JsonObj]:
        """GET one object by name, or None when the appliance says it does not exist."""
        from .errors import NitroNotFound

        try:
            items = self.get(resource, name, **kw)
        except NitroNotFound:
            return None
        return items[0] if items else None

    def add(self, resource: str, obj: Payload, *, onerror: Optional[str] = None) -> JsonObj:
        """POST a new object, or a list of objects as one bulk request."""
        return self._call("POST", resource, None, {}, {resource: _plain(obj)}, onerror=onerror)

    def update(self, resource: str, obj: Mapping[str, Any]) -> JsonObj:
        """PUT changed attributes of an existing object."""
        return self._call("PUT", resource, None, {}, {resource: dict(obj)})

    def action(
        self, resource: str, action: str, obj: Payload, *, onerror: Optional[str] = None
    ) -> JsonObj:
        """POST ``?action=<action>`` (update, link, unlink, save, enable, rm, unbind ...)."""
        body = {resource: _plain(obj)}
        return self._call("POST", resource, None, {"action": action}, body, onerror=onerror)

    def bind(self, resource: str, obj: Payload, *, onerror: Optional[str] = None) -> JsonObj:
        """PUT a binding (or a list of bindings as one bulk request)."""
        return self._call("PUT", resource, None, {}, {resource: _plain(obj)}, onerror=onerror)

    def delete(
        self, resource: str, name: Optional[str] = None, *, args: Optional[Mapping[str, Any]] = None
    ) -> JsonObj:
        """DELETE one object (or unbind, for binding resources, with ``args``)."""
        query = {"args": encode_kv(args)} if args else {}
        return self._call("DELETE", resource, name, query, None)

    def remove_many(
        self,
        resource: str,
        keys: Sequence[Mapping[str, Any]],
        *,
        action: str = "rm",
        name_key: Optional[str] = "name",
    ) -> None:
        """Remove (or unbind) many objects in one request, falling back to one DELETE each.

        The bulk form is not documented for every firmware, so whatever error the appliance
        answers it with, the documented ``DELETE resource/<name>?args=<rest>`` per object
        decides (it also finishes a bulk request that failed half-way). When the appliance
        plainly does not know the bulk form, we remember that for the rest of the session.
        Objects that are already gone are not an error.
        """
        from .errors import NitroNotFound

        if not keys:
            return
        if self._bulk_remove_ok and len(keys) > 1:
            try:
                self.action(resource, action, list(keys), onerror="continue")
                return
            except NitroApiError as exc:
                if _bulk_unsupported(exc):
                    self._bulk_remove_ok = False
                logger.debug("bulk %s on %s failed (%s); one DELETE each", action, resource, exc)
        for key in keys:
            name = str(key[name_key]) if name_key else None
            rest = {k: v for k, v in key.items() if k != name_key}
            try:
                self.delete(resource, name, args=rest or None)
            except NitroNotFound:
                logger.debug("%s %s already gone", resource, name or rest)

    # -- transport --------------------------------------------------------------------

    def _call(
        self,
        method: str,
        resource: str,
        name: Optional[str],
        query: Mapping[str, str],
        body: Optional[JsonObj],
        *,
        onerror: Optional[str] = None,
    ) -> JsonObj:
        retry = method in ("GET", "DELETE")
        try:
            return self._send(method, resource, name, query, body, retry=retry, onerror=onerror)[0]
        except NitroAuthError as exc:
            if self.auth == "auto" and exc.errorcode in HEADER_REFUSED_CODES:
                logger.info("the appliance does not accept header authentication (errorcode "
                            "%s); logging in with a session instead", exc.errorcode)
                self.auth = "session"
            elif exc.errorcode not in SESSION_LOST_CODES or self.auth == "header":
                raise
            else:
                logger.info("NITRO session expired (errorcode %s); logging in again",
                            exc.errorcode)
            self.login()
            return self._send(method, resource, name, query, body, retry=retry, onerror=onerror)[0]

    def _send(
        self,
        method: str,
        resource: str,
        name: Optional[str],
        query: Mapping[str, str],
        body: Optional[JsonObj],
        *,
        retry: bool,
        onerror: Optional[str] = None,
    ) -> tuple[JsonObj, Response]:
        target = self._target(resource, name, query)
        label = _label(method, resource, name, query)
        headers = self._headers(resource, onerror)
        data = json.dumps(body).encode() if body is not None else None
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(1, attempts + 1):
            try:
                response = self._transmit(method, target, headers, data)
                break
            except TransportError as exc:
                if attempt < attempts and exc.retryable:
                    logger.info("%s: %s; retrying (%d/%d)", label, exc.reason, attempt,
                                attempts - 1)
                    time.sleep(0.5 * attempt)
                    continue
                raise NitroConnectionError(method, label.split(" ", 1)[1], exc.reason,
                                           exc.hint) from None
        return _decode(method, label.split(" ", 1)[1], response), response

    def _transmit(
        self, method: str, target: str, headers: dict[str, str], data: Optional[bytes]
    ) -> Response:
        self.request_count += 1
        started = time.monotonic()
        response = self._connection.request(method, target, headers, data)
        # URLs never carry secrets (credentials travel in bodies or headers), so log it whole.
        logger.debug(
            "%s %s%s -> %s (%.0f ms)", method, self._origin, target, response.status,
            1000 * (time.monotonic() - started),
        )
        return response

    def _target(self, resource: str, name: Optional[str], query: Mapping[str, str]) -> str:
        """The request target: the path under NS_URL and the query."""
        url = self._base_path + API_PREFIX + resource
        if name is not None:
            url += "/" + urllib.parse.quote(name, safe="")
        if query:
            url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        return url

    def _headers(self, resource: str, onerror: Optional[str]) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if onerror:
            headers["X-NITRO-ONERROR"] = onerror
        if resource == "login":
            return headers
        if self._per_request_auth:
            headers["X-NITRO-USER"] = self._username
            headers["X-NITRO-PASS"] = self._password
        elif self._token:
            quoted = urllib.parse.quote(self._token, safe="")
            headers["Cookie"] = f"NITRO_AUTH_TOKEN={self._token}; sessionid={quoted}"
        return headers


def _plain(obj: Payload) -> Union[JsonObj, list[JsonObj]]:
    if isinstance(obj, Mapping):
        return dict(obj)
    return [dict(item) for item in obj]


def _bulk_unsupported(exc: NitroApiError) -> bool:
    return exc.errorcode in BULK_UNSUPPORTED_CODES or (
        exc.http_status in (400, 405, 501) and exc.errorcode not in (0, BULK_FAILED)
    )


def _label(method: str, resource: str, name: Optional[str], query: Mapping[str, str]) -> str:
    text = resource + (f"/{name}" if name is not None else "")
    if "action" in query:
        text += f"?action={query['action']}"
    return f"{method} {text}"


def _decode(method: str, resource: str, response: Response) -> JsonObj:
    """Turn a NITRO answer into its JSON body, or raise the matching NitroApiError."""
    status = response.status
    text = response.text
    if 300 <= status < 400:  # e.g. "secure access only" sends http:// to https://
        location = response.headers.get("Location") or "(no Location header)"
        raise NitroApiError(
            method, resource, status, -1, f"the appliance redirects to {location}",
            hint="set NS_URL to the scheme, address and port the appliance redirects to",
        )
    if 200 <= status < 300 and not text.strip() and method != "GET":
        return {}  # some write operations answer success with an empty body; a GET never does
    try:
        body = json.loads(text)
    except ValueError:
        raise NitroApiError(
            method, resource, status, -1,
            f"unexpected answer that is not NITRO JSON ({_content_kind(response)}): "
            f"{_snippet(text)}",
            hint="check NS_URL points at the NetScaler management address (NSIP)",
        ) from None
    if not isinstance(body, dict):
        raise NitroApiError(method, resource, status, -1, "unexpected JSON answer (not an object)")
    if status == 209 or str(body.get("severity", "")).upper() == "WARNING":
        logger.warning(
            "%s %s: appliance warning: %s", method, resource,
            response.headers.get("X-NITRO-WARNING") or body.get("message"),
        )
    code = _int(body.get("errorcode", 0))
    # 207 / 1243 means some items of a bulk request failed, whatever the severity says.
    failed = (status >= 300 or status == 207 or code == BULK_FAILED
              or (code != 0 and str(body.get("severity", "")).upper() == "ERROR"))
    if not failed:
        return body
    error = NitroApiError.from_body(method, resource, status, body)
    error.responses = [r for r in body.get("response", []) if isinstance(r, dict)]
    raise error


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _content_kind(response: Response) -> str:
    kind = response.headers.get("Content-Type", "no content type").split(";")[0].strip()
    return kind or "no content type"


def _snippet(text: str) -> str:
    flat = re.sub(r"<[^>]*>", " ", text)
    flat = " ".join(flat.split())
    return (flat[:120] + "...") if len(flat) > 120 else (flat or "(empty body)")


def _cookie(response: Response, name: str) -> Optional[str]:
    """The value of cookie ``name`` set by the answer, read from its Set-Cookie headers."""
    for header in response.headers.get_all("Set-Cookie") or []:
        key, _, value = header.split(";", 1)[0].partition("=")
        if key.strip() == name:
            return value.strip()
    return None
