"""The NITRO request pipeline, independent of sockets: one HTTP request in, one :class:`Reply` out.

Order: parse URL and body -> log -> injected faults -> login/logout -> authenticate -> HA check
-> find handler -> per item: command policy, handler -> envelope (errorcode/message/severity,
``?count=yes``, ``filter``/``attrs``, empty collections omitted, 207 for failed bulk items).
Handlers run while ``State.lock`` is held.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Optional

from tests.fakens import auth, cmdpolicy
from tests.fakens.core import HANDLERS, Call, Headers, NitroFault, Registration, State
from tests.fakens.faults import Fault, Reply

logger = logging.getLogger(__name__)

PREFIX = "/nitro/v1/config/"
DONE = {"errorcode": 0, "message": "Done", "severity": "NONE"}
SESSIONLESS = ("login", "logout")
# Writes to these do not change the saved configuration (files live outside ns.conf).
NOT_CONFIG = ("login", "logout", "nsconfig", "hafiles", "hasync", "systemfile")
BULK_REMOVAL = ("rm", "delete", "unbind")


@dataclass
class RequestRecord:
    """One NITRO request as the fake saw it (login passwords redacted)."""

    method: str
    path: str
    resource: Optional[str]
    name: Optional[str]
    action: Optional[str]
    query: dict[str, str]
    body: Any
    status: int = 0
    errorcode: Optional[int] = None
    user: Optional[str] = None


@dataclass
class Parsed:
    """The URL and body of a request, decoded."""

    resource: str
    name: Optional[str]
    action: Optional[str]
    args: dict[str, str]
    filter: dict[str, str]
    attrs: Optional[list[str]]
    query: dict[str, str]
    raw_query: dict[str, str]
    payload: Any  # the value under the resource key
    onerror: str
    warning: bool = False  # ?warning=yes or "params": {"warning": "YES"}


def parse_kv(raw: str) -> dict[str, str]:
    """``k:v,k:v`` with URL-encoded values (nitro-reference §1.3)."""
    pairs = {}
    for item in raw.split(","):
        key, _, value = item.partition(":")
        if key:
            pairs[urllib.parse.unquote(key)] = urllib.parse.unquote(value)
    return pairs


def parse_target(path: str, query_string: str) -> Parsed:
    """Split ``/nitro/v1/config/<resource>[/<name>]?<query>`` into its parts."""
    rest = path[len(PREFIX):]
    segments = rest.split("/", 1)
    resource = urllib.parse.unquote(segments[0])
    name = None
    if len(segments) > 1 and segments[1]:
        # Official clients encode names twice; decoding twice also accepts single encoding.
        name = urllib.parse.unquote(urllib.parse.unquote(segments[1]))
    raw: dict[str, str] = {}
    for part in query_string.split("&") if query_string else []:
        key, _, value = part.partition("=")
        raw[urllib.parse.unquote(key)] = value
    attrs = raw.get("attrs")
    return Parsed(
        resource=resource, name=name,
        action=urllib.parse.unquote(raw["action"]) if "action" in raw else None,
        args=parse_kv(raw.get("args", "")), filter=parse_kv(raw.get("filter", "")),
        attrs=[urllib.parse.unquote(a) for a in attrs.split(",")] if attrs else None,
        query={k: urllib.parse.unquote(v) for k, v in raw.items()
               if k not in ("action", "args", "filter", "attrs")},
        raw_query={k: urllib.parse.unquote(v) for k, v in raw.items()},
        payload=None, onerror="exit",
    )


def json_reply(status: int, body: dict[str, Any],
               headers: Optional[list[tuple[str, str]]] = None) -> Reply:
    return Reply(status, json.dumps(body).encode(), headers=headers or [])


def fault_reply(fault: NitroFault) -> Reply:
    return json_reply(fault.http_status, error_body(fault))


def error_body(fault: NitroFault) -> dict[str, Any]:
    return {"errorcode": fault.errorcode, "message": fault.message, "severity": "ERROR"}


def _matches(value: Any, wanted: str) -> bool:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if len(wanted) >= 2 and wanted.startswith("/") and wanted.endswith("/"):
        return re.search(wanted[1:-1], text) is not None
    return text == wanted


def select(objects: list[Any], call: Call) -> list[Any]:
    """Apply ``filter=`` and ``attrs=`` to the objects of a GET answer."""
    chosen = [o for o in objects if not isinstance(o, dict)
              or all(_matches(o.get(k), v) for k, v in call.filter.items())]
    if call.attrs is None:
        return chosen
    return [{k: v for k, v in o.items() if k in call.attrs} if isinstance(o, dict) else o
            for o in chosen]


def _redacted(resource: str, body: Any) -> Any:
    if resource == "login" and isinstance(body, dict) and isinstance(body.get("login"), dict):
        body = copy.deepcopy(body)
        if "password" in body["login"]:
            body["login"]["password"] = "<redacted>"
    return body


class NitroApi:
    """Serves NITRO requests against one :class:`State`; keeps the request log and faults."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.requests: list[RequestRecord] = []
        self.faults: list[Fault] = []
        self._log_lock = threading.Lock()

    # ------------------------------------------------------------ entry point

    def handle(self, method: str, target: str, headers: Headers,
               raw_body: bytes) -> Reply:
        """Answer one HTTP request."""
        split = urllib.parse.urlsplit(target)
        if not split.path.startswith(PREFIX):
            return json_reply(404, {"errorcode": 258, "message": "No such resource",
                                    "severity": "ERROR"})
        if self.state.latency:
            time.sleep(self.state.latency)  # outside the lock: like a slow link, not a busy box
        parsed = parse_target(split.path, split.query)
        record = RequestRecord(method, split.path, parsed.resource, parsed.name, parsed.action,
                               parsed.raw_query, None)
        with self._log_lock:
            self.requests.append(record)
        try:
            body = json.loads(raw_body) if raw_body.strip() else None
        except ValueError:
            body = None
            reply = fault_reply(NitroFault(400, 1233, "Invalid JSON input"))
        else:
            record.body = _redacted(parsed.resource, body)
            reply = self._faulted(method, parsed, headers, body, record)
        record.status = reply.status
        if record.errorcode is None and reply.body[:1] == b"{":
            try:
                record.errorcode = json.loads(reply.body).get("errorcode")
            except ValueError:
                pass
        return reply

    def _faulted(self, method: str, parsed: Parsed, headers: Headers, body: Any,
                 record: RequestRecord) -> Reply:
        fault = self._take_fault(method, parsed)
        if fault is not None and fault.kind == "expire":
            with self.state.lock:
                auth.kill_session(self.state, headers)
            fault = None
        if fault is not None and not fault.after:
            return fault.reply()
        reply = self._process(method, parsed, headers, body, record)
        if fault is not None:
            return fault.reply()
        return reply

    def _take_fault(self, method: str, parsed: Parsed) -> Optional[Fault]:
        with self.state.lock:
            chosen = None
            for fault in self.faults:
                # Every fault counts the request; only the first due one is applied.
                if fault.take(method, parsed.resource, parsed.action, parsed.name,
                              may_fire=chosen is None):
                    chosen = fault
            return chosen

    # ------------------------------------------------------------ processing

    def _process(self, method: str, parsed: Parsed, headers: Headers, body: Any,
                 record: RequestRecord) -> Reply:
        if isinstance(body, dict):
            parsed.payload = body.get(parsed.resource)
            params = body.get("params")
            if isinstance(params, dict) and params.get("onerror"):
                parsed.onerror = str(params["onerror"]).lower()
            if isinstance(params, dict) and str(params.get("warning", "")).upper() == "YES":
                parsed.warning = True
        if parsed.query.get("warning", "").lower() == "yes":
            parsed.warning = True
        parsed.onerror = headers.get("X-NITRO-ONERROR", parsed.onerror).lower()
        with self.state.lock:
            try:
                if parsed.resource in SESSIONLESS and method == "POST":
                    return self._session_call(parsed, headers, record)
                user = auth.authenticate(self.state, headers)
                record.user = user
                return self._dispatch(method, parsed, user)
            except NitroFault as fault:
                return fault_reply(fault)
            except Exception as exc:
                # A bug in the fake: answer visibly instead of dropping the connection.
                logger.exception("fake NetScaler failed on %s %s", method, parsed.resource)
                return json_reply(500, {"errorcode": -1, "severity": "ERROR",
                                        "message": f"fake NetScaler bug: {exc!r}"})

    def _session_call(self, parsed: Parsed, headers: Headers,
                      record: RequestRecord) -> Reply:
        if parsed.resource == "logout":
            record.user = auth.logout(self.state, headers)
            return json_reply(201, dict(DONE))
        session = auth.login(self.state, parsed.payload)
        record.user = session.user
        quoted = urllib.parse.quote(session.token, safe="")
        cookies = [("Set-Cookie", "SESSID=deleted; expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/"),
                   ("Set-Cookie", f"sessionid={quoted}; path=/nitro/v1"),
                   ("Set-Cookie", f"NITRO_AUTH_TOKEN={quoted}; path=/nitro/v1")]
        return json_reply(201, {**DONE, "sessionid": session.token}, cookies)

    def _dispatch(self, method: str, parsed: Parsed, user: str) -> Reply:
        ha = self.state.ext.get("ha")  # a node of an HA pair (tests/fakens/ha.py)
        if method != "GET" and ha is None and self.state.ha_state.lower() != "primary":
            raise NitroFault(599, 349, "Operation not permitted on secondary node")
        registration = self._registration(method, parsed)
        policies = self.state.cmdpolicies.get(user)
        items = parsed.payload if isinstance(parsed.payload, list) else None
        if items is None:
            call = self._call(method, parsed, parsed.payload, user)
            cmdpolicy.check(policies, registration.cli(call))
            extra = registration.func(self.state, call) or {}
            self._note_change(method, parsed.resource)
            if ha is not None and method != "GET":
                ha.after_write(call)
            if method == "GET":
                extra = self._shape_get(call, extra, parsed.query)
            return self._success(method, parsed, registration.status, extra)
        return self._bulk(method, parsed, user, registration, policies, items)

    def _success(self, method: str, parsed: Parsed, status: int,
                 extra: dict[str, Any]) -> Reply:
        """Done, or 209 + X-NITRO-WARNING when asked for warnings and responder is off."""
        if (parsed.warning and method != "GET" and "responder" in parsed.resource
                and not self.state.features.get("RESPONDER")):
            warning = "1067 - Feature(s) not enabled [RESPONDER]"
            body = {"errorcode": 1067, "message": "Feature(s) not enabled [RESPONDER]",
                    "severity": "WARNING", **extra}
            return json_reply(209, body, [("X-NITRO-WARNING", warning)])
        return json_reply(status, {**DONE, **extra})

    def _registration(self, method: str, parsed: Parsed) -> Registration:
        registration = HANDLERS.get((method, parsed.resource, parsed.action))
        if parsed.action in BULK_REMOVAL and not self.state.bulk_remove:
            registration = None
        if registration is not None:
            return registration
        if any(key[1] == parsed.resource for key in HANDLERS):
            raise NitroFault(400, 1240, "Invalid nitro action")
        raise NitroFault(404, 258, f"No such resource [resourcetype, {parsed.resource}]")

    def _call(self, method: str, parsed: Parsed, item: Any, user: str) -> Call:
        return Call(method=method, resource=parsed.resource, name=parsed.name,
                    action=parsed.action, args=dict(parsed.args), filter=dict(parsed.filter),
                    attrs=parsed.attrs, body=item, user=user, query=dict(parsed.query))

    def _bulk(self, method: str, parsed: Parsed, user: str, registration: Registration,
              policies: Optional[list[tuple[str, str]]], items: list[Any]) -> Reply:
        results: list[dict[str, Any]] = []
        failed = False
        for item in items:
            call = self._call(method, parsed, item, user)
            try:
                cmdpolicy.check(policies, registration.cli(call))
                registration.func(self.state, call)
            except NitroFault as fault:
                failed = True
                results.append(error_body(fault))
                if parsed.onerror != "continue":
                    break
                continue
            self._note_change(method, parsed.resource)
            if self.state.ext.get("ha") is not None:
                self.state.ext["ha"].after_write(call)
            results.append(dict(DONE))
        if not failed:
            return self._success(method, parsed, registration.status, {})
        return json_reply(207, {"errorcode": 1243, "message": "Bulk operation failed",
                                "severity": "ERROR", "response": results})

    def _note_change(self, method: str, resource: str) -> None:
        if method != "GET" and resource not in NOT_CONFIG:
            self.state.mark_changed()

    def _shape_get(self, call: Call, extra: dict[str, Any],
                   query: dict[str, str]) -> dict[str, Any]:
        shaped: dict[str, Any] = {}
        for key, value in extra.items():
            if isinstance(value, list):
                value = select(value, call)
                if not value:
                    continue  # the appliance omits empty collections
            shaped[key] = value
        if query.get("count", "").lower() == "yes":
            found = shaped.get(call.resource)
            count = len(found) if isinstance(found, list) else int(found is not None)
            shaped[call.resource] = [{"__count": count}]
        return shaped
