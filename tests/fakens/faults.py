"""Fault injection: make the N-th matching NITRO request fail in a chosen way.

Kinds: "error" (NITRO error body), "reset" (close the socket without answering), "timeout"
(wait ``delay`` seconds, then close), "expire" (kill the caller's session first -> 401/444),
"html" (502 text/html page), "empty" (status with an empty body), "badjson" (200 with a
truncated JSON body), "error200" (HTTP 200 carrying errorcode != 0). With ``after=True`` the
request is processed first and only its answer is replaced (the write happened, the client
does not learn it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

ANY = "*"
KINDS = ("error", "reset", "timeout", "expire", "html", "empty", "badjson", "error200")
HTML_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
DEFAULT_STATUS = {"error": 599, "html": 502, "empty": 200, "badjson": 200, "error200": 200}


@dataclass
class Reply:
    """What the listener sends: a status and body, or a dropped connection."""

    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: Optional[str] = None  # "reset" or "timeout"
    delay: float = 0.0


@dataclass
class Fault:
    """One injected fault; ``fired`` counts how often it has been applied."""

    method: Optional[str]
    resource: str
    action: Optional[str]
    name: Optional[str]
    nth: int
    times: int
    kind: str
    status: int
    errorcode: int
    message: str
    delay: float
    after: bool
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, resource: str, action: Optional[str],
                name: Optional[str]) -> bool:
        return ((self.method is None or self.method.upper() == method)
                and self.resource in (ANY, resource)
                and (self.action == ANY or self.action == action)
                and (self.name is None or self.name == name))

    def take(self, method: str, resource: str, action: Optional[str],
             name: Optional[str], may_fire: bool = True) -> bool:
        """Count a matching request; True when this one must fail (and ``may_fire``)."""
        if not self.matches(method, resource, action, name):
            return False
        self.seen += 1
        if may_fire and self.seen >= self.nth and self.fired < self.times:
            self.fired += 1
            return True
        return False

    def reply(self) -> Reply:
        """The answer this fault produces (not used for "expire")."""
        if self.kind in ("reset", "timeout"):
            return Reply(0, drop=self.kind, delay=self.delay)
        if self.kind == "html":
            return Reply(self.status, HTML_PAGE, "text/html", delay=self.delay)
        if self.kind == "empty":
            return Reply(self.status, b"", delay=self.delay)
        if self.kind == "badjson":
            return Reply(self.status, b'{"errorcode": 0, "message": "Do', delay=self.delay)
        error = {"errorcode": self.errorcode, "message": self.message, "severity": "ERROR"}
        return Reply(self.status, json.dumps(error).encode(), delay=self.delay)


def new_fault(method: Optional[str], resource: str, action: Optional[str], name: Optional[str],
              nth: int, times: int, kind: str, status: Optional[int], errorcode: int,
              message: str, delay: float, after: bool) -> Fault:
    """Validate the arguments of ``FakeNetScaler.inject`` and build the fault."""
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(KINDS)}")
    if nth < 1 or times < 1:
        raise ValueError("nth and times count from 1")
    return Fault(method, resource, action, name, nth, times, kind,
                 status if status is not None else DEFAULT_STATUS.get(kind, 599),
                 errorcode, message, delay, after)
