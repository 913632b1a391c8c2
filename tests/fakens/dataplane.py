"""The HTTP data plane: answers port-80 traffic like the vserver that receives it.

Evaluation order (responder): global REQ_OVERRIDE bindings by ascending priority, then the
vserver's own bindings, then global REQ_DEFAULT. The first policy whose rule is true fires its
action; ``respondwith`` sends the evaluated target as the raw HTTP response, ``redirect`` sends a
302, ``noop`` sends nothing and evaluation stops (goto END) or continues (NEXT). Nothing fired
-> the "backend" answers 404. Policies are only evaluated when the RESPONDER feature is on; a
vserver that is DOWN (or missing) answers 503.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

from tests.fakens.core import Binding, State, VServer
from tests.fakens.expr import Request, parse_rule, parse_text
from tests.fakens.server import QuietHandler, ThreadedServer

STATUS_LINE = re.compile(rb"^HTTP/\d\.\d (\d{3})")


@dataclass
class DataplaneRecord:
    """One request the data plane answered."""

    host: str
    path: str
    status: int  # 0 when the connection was reset or dropped


@dataclass
class Outcome:
    """What to send: raw bytes (respondwith), or a status with headers and body."""

    status: int
    raw: Optional[bytes] = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    drop: bool = False


BACKEND = Outcome(404, body=b"Not Found (backend)\n")
UNAVAILABLE = Outcome(503, body=b"Service Unavailable\n")


@functools.lru_cache(maxsize=1024)
def compiled_rule(source: str) -> Callable[[Request], bool]:
    return parse_rule(source)


@functools.lru_cache(maxsize=1024)
def compiled_text(source: str) -> Callable[[Request], str]:
    return parse_text(source)


def receiving_vserver(state: State) -> Optional[VServer]:
    """The vserver named by ``state.dataplane_vserver`` ("lb:<name>" or "cs:<name>")."""
    if not state.dataplane_vserver:
        return None
    kind, _, name = state.dataplane_vserver.partition(":")
    table = state.lbvservers if kind == "lb" else state.csvservers
    return table.get(name)


def policy_chain(state: State, vserver: VServer) -> list[tuple[Binding, dict[str, Any],
                                                               dict[str, Any]]]:
    """(binding, policy, action) in evaluation order, copied so evaluation needs no lock."""
    kind = "lb" if state.dataplane_vserver and state.dataplane_vserver.startswith("lb:") else "cs"
    chain = []
    for point in ("global:REQ_OVERRIDE", f"{kind}:{vserver.name}", "global:REQ_DEFAULT"):
        for binding in sorted(state.bindings.get(point, []), key=lambda b: b.priority):
            policy = state.responderpolicies.get(binding.policyname)
            if policy is None:
                continue
            action = state.responderactions.get(policy["action"], {"type": policy["action"]})
            chain.append((binding, dict(policy), dict(action)))
    return chain


def fire(action: dict[str, Any], request: Request) -> Optional[Outcome]:
    """Run an action; None when it sends nothing (noop)."""
    kind = str(action.get("type", "")).lower()
    if kind == "respondwith":
        raw = compiled_text(str(action["target"]))(request).encode("utf-8")
        status = STATUS_LINE.match(raw)
        return Outcome(int(status.group(1)) if status else 0, raw=raw)
    if kind == "redirect":
        location = compiled_text(str(action["target"]))(request)
        return Outcome(302, headers=(("Location", location),))
    if kind in ("reset", "drop", "resetconnection", "dropconnection"):
        return Outcome(0, drop=True)
    return None


def evaluate(state: State, request: Request) -> Outcome:
    """Decide the answer to one request from what is configured right now."""
    with state.lock:
        vserver = receiving_vserver(state)
        if vserver is None or vserver.state != "UP":
            return UNAVAILABLE
        if not state.features.get("RESPONDER"):
            return BACKEND
        chain = policy_chain(state, vserver)
    for binding, policy, action in chain:
        if not compiled_rule(str(policy["rule"]))(request):
            continue
        outcome = fire(action, request)
        if outcome is not None:
            return outcome
        if binding.gotopriorityexpression == "END":
            break
    return BACKEND


class DataplaneHandler(QuietHandler):
    """Answers every method the same way: through :func:`evaluate`."""

    server: DataplaneServer

    def do_GET(self) -> None:
        self.serve()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def serve(self) -> None:
        self.read_body()
        host = self.headers.get("Host", "")
        request = Request(url=self.path, host=host)
        outcome = evaluate(self.server.state, request)
        self.server.log(DataplaneRecord(request.host.rsplit(":", 1)[0] if host else "",
                                        self.path, outcome.status))
        self.close_connection = True
        if outcome.drop:
            self.drop_connection("reset")
        elif outcome.raw is not None:
            self.wfile.write(outcome.raw)
        else:
            self.send_response(outcome.status)
            for key, value in outcome.headers:
                self.send_header(key, value)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(outcome.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(outcome.body)


class DataplaneServer(ThreadedServer):
    """The port-80 listener of the fake appliance."""

    def __init__(self, state: State, port: int = 0, host: str = "127.0.0.1") -> None:
        self.state = state
        self.requests: list[DataplaneRecord] = []
        self._log_lock = threading.Lock()
        super().__init__(port, DataplaneHandler, host=host)

    def log(self, record: DataplaneRecord) -> None:
        with self._log_lock:
            self.requests.append(record)
