"""A fake NetScaler HA pair: two :class:`FakeNetScaler` nodes that know each other.

Node ``a`` listens on 127.0.0.1 and starts as primary, node ``b`` on 127.0.0.2 as secondary,
both on the same management ports (so "the peer's NSIP with the same scheme and port" works as
on real pairs). Each node has its own data planes (HTTP and TLS listeners); ``hanode`` on each
lists both. The pair behaviour (propagation, file and config sync) lives in
:mod:`tests.fakens.hafiles`. Usage::

    with FakeHaPair(users={"nsroot": "pw"}, dataplane_port=port) as pair:
        pair.add_lbvserver("web")           # set-up on both nodes
        ...                                 # NITRO to pair.primary.url
        pair.failover()                     # b becomes primary
"""

from __future__ import annotations

import socket
from types import TracebackType
from typing import Any, Optional

from tests.fakens import FakeNetScaler
from tests.fakens.hafiles import HaLink

HOSTS = ("127.0.0.1", "127.0.0.2")


def _free_on_both() -> int:
    """A TCP port free on both loopback addresses right now."""
    for _ in range(100):
        with socket.socket() as first:
            first.bind((HOSTS[0], 0))
            port: int = first.getsockname()[1]
            try:
                with socket.socket() as second:
                    second.bind((HOSTS[1], port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free on both loopback addresses")


class FakeHaPair:
    """Two fakes in an HA pair; ``a`` is primary at the start."""

    def __init__(self, users: Optional[dict[str, str]] = None, *, dataplane_port: int = 0,
                 **options: Any) -> None:
        http_port, https_port = _free_on_both(), _free_on_both()
        dataplane = dataplane_port or _free_on_both()
        self.a = FakeNetScaler(users, host=HOSTS[0], http_port=http_port, https_port=https_port,
                               dataplane_port=dataplane, **options)
        self.b = FakeNetScaler(users, host=HOSTS[1], http_port=http_port, https_port=https_port,
                               dataplane_port=dataplane, **options)
        self.b.state.lock = self.a.state.lock  # one lock: each request sees the pair whole
        self.b.state.hostname = "fakens-b"
        self.a.state.hostname = "fakens-a"
        self.link = HaLink((self.a.state, self.b.state), HOSTS)

    # -- lifecycle

    def start(self) -> FakeHaPair:
        self.a.start()
        try:
            self.b.start()
        except BaseException:
            self.a.stop()
            raise
        return self

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()

    def __enter__(self) -> FakeHaPair:
        return self.start()

    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.stop()

    # -- roles

    @property
    def nodes(self) -> tuple[FakeNetScaler, FakeNetScaler]:
        return (self.a, self.b)

    @property
    def primary(self) -> FakeNetScaler:
        with self.a.state.lock:
            return self.nodes[self.link.primary]

    @property
    def secondary(self) -> FakeNetScaler:
        with self.a.state.lock:
            return self.nodes[1 - self.link.primary]

    def failover(self) -> None:
        """Swap the roles (``force failover``): the secondary takes over with its own config."""
        with self.a.state.lock:
            self.link.failover()

    def sync_config(self) -> None:
        """A full configuration sync to the secondary (as after a restart of the secondary)."""
        with self.a.state.lock:
            self.link.sync_config()

    @property
    def silent_sync(self) -> bool:
        return self.link.silent_sync

    @silent_sync.setter
    def silent_sync(self, value: bool) -> None:
        """Fault: ``hafiles`` sync answers success and copies nothing."""
        with self.a.state.lock:
            self.link.silent_sync = value

    @property
    def propagation(self) -> bool:
        return self.link.propagation

    @propagation.setter
    def propagation(self, value: bool) -> None:
        """Fault: False = commands are not propagated to the secondary (347)."""
        with self.a.state.lock:
            self.link.propagation = value

    @property
    def failures(self) -> list[str]:
        """Commands that failed on the secondary (propagation or config sync), oldest first."""
        with self.a.state.lock:
            return list(self.link.failures)

    # -- set-up on both nodes (as an admin's propagated configuration would be)

    def add_lbvserver(self, name: str, **kwargs: Any) -> None:
        for node in self.nodes:
            node.add_lbvserver(name, ipv46=node.host, **kwargs)

    def add_csvserver(self, name: str, **kwargs: Any) -> None:
        for node in self.nodes:
            node.add_csvserver(name, ipv46=node.host, **kwargs)

    def add_sslvserver(self, name: str, **kwargs: Any) -> None:
        for node in self.nodes:
            node.add_sslvserver(name, **kwargs)

    def add_user(self, name: str, password: str,
                 policies: Optional[list[tuple[str, str]]] = None) -> None:
        for node in self.nodes:
            node.add_user(name, password, policies)
