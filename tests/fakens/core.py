"""Framework shared by the fake NetScaler's modules: errors, parsed calls, state, handler registry.

Plugin modules (responder, ssl, files, ...) register NITRO handlers here at import time with
``@handler(method, resource, action)``; the server dispatches every request through ``HANDLERS``
while holding ``State.lock``, so handlers never lock themselves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol


class NitroFault(Exception):
    """A NITRO error answer: HTTP status, errorcode and message as the appliance sends them."""

    def __init__(self, http_status: int, errorcode: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.errorcode = errorcode
        self.message = message


@dataclass
class Call:
    """One parsed NITRO request, or one item of a bulk request."""

    method: str
    resource: str
    name: Optional[str]
    action: Optional[str]
    args: dict[str, str]
    filter: dict[str, str]
    attrs: Optional[list[str]]
    body: Any
    user: str
    query: dict[str, str] = field(default_factory=dict)  # every other query parameter, decoded


class Headers(Protocol):
    """Request headers with case-insensitive lookup (``email.message.Message`` or a dict)."""

    def get(self, name: str, default: Any = None, /) -> Any: ...


@dataclass
class Session:
    """A logged-in NITRO session."""

    token: str
    user: str
    expires_at: float
    timeout: int


@dataclass
class VServer:
    """An lb or cs vserver as the appliance reports it."""

    name: str
    servicetype: str
    port: int
    ipv46: str
    state: str  # "UP" or "DOWN"


@dataclass
class Binding:
    """One responder policy bound to a bind point (vserver or global type)."""

    policyname: str
    priority: int
    gotopriorityexpression: str
    invoke: bool = False
    labeltype: Optional[str] = None
    labelname: Optional[str] = None


@dataclass
class State:
    """Every piece of appliance state. Mutate only while holding ``lock``."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    ext: dict[str, Any] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    # user -> ordered (ALLOW|DENY, regex) rules; a user without an entry is a superuser.
    cmdpolicies: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    session_timeout: int = 1800
    header_auth: bool = True
    latency: float = 0.0  # seconds added before every NITRO answer (benchmarks: a WAN link)
    bulk_remove: bool = True
    ha_state: str = "Primary"  # state of node 0 (the node we talk to)
    ha_peer: bool = False  # True: an HA pair (node 1 listed, systemtype "HA"); False: standalone
    version: str = "NetScaler NS14.1: Build 25.56.nc, Date: Jun 10 2024, 07:22:43   (64-bit)"
    hostname: str = "fakens"
    features: dict[str, bool] = field(default_factory=lambda: {"RESPONDER": True, "SSL": True,
                                                                "LB": True, "CS": True})
    config_changed: bool = False
    last_save: str = "Thu Jan  1 00:00:00 2025"
    lbvservers: dict[str, VServer] = field(default_factory=dict)
    csvservers: dict[str, VServer] = field(default_factory=dict)
    responderactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    responderpolicies: dict[str, dict[str, Any]] = field(default_factory=dict)
    # bind point -> bindings; keys "lb:<vs>", "cs:<vs>", "global:REQ_OVERRIDE", ...
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    dataplane_vserver: Optional[str] = None  # "lb:<name>" or "cs:<name>"

    def mark_changed(self) -> None:
        """Record an unsaved configuration change (every state-changing call does)."""
        self.config_changed = True


Handler = Callable[[State, Call], Optional[dict[str, Any]]]


def _no_cli(call: Call) -> str:
    """Fallback CLI rendering: verb + resource, good enough for policies matching `.*`."""
    verb = {"GET": "show", "POST": "add", "PUT": "set", "DELETE": "rm"}[call.method]
    if call.action:
        verb = call.action
    return " ".join(p for p in (verb, call.resource, call.name or "") if p)


@dataclass
class Registration:
    """A registered handler with its success status and CLI renderer."""

    func: Handler
    status: int
    cli: Callable[[Call], str]


HANDLERS: dict[tuple[str, str, Optional[str]], Registration] = {}


def handler(method: str, resource: str, action: Optional[str] = None, *, status: int = 200,
            cli: Callable[[Call], str] = _no_cli) -> Callable[[Handler], Handler]:
    """Register into HANDLERS[(method, resource, action)].

    `status` is the HTTP status on success (201 for adds). `cli(call)` renders the NetScaler CLI
    command (nitro-reference §8.2) matched against command policies; for bulk requests it is
    called per item.
    """

    def register(func: Handler) -> Handler:
        HANDLERS[(method.upper(), resource, action)] = Registration(func, status, cli)
        return func

    return register
