"""A stateful fake NetScaler for tests: NITRO over HTTP and HTTPS, plus data-plane listeners.

It implements the appliance from ``/work/shared/nitro-reference.md`` and never imports
``ns_letsencrypt``. Usage::

    with FakeNetScaler(users={"nsroot": "pw"}) as fake:
        fake.add_lbvserver("vs_http")
        ...  # talk NITRO to fake.url / fake.http_url; send port-80 traffic to fake.dataplane_port

Handler modules register NITRO resources at import time (see ``core.handler``).
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Optional

from tests.fakens import appliance, responder  # noqa: F401 - registers handlers
from tests.fakens import ssl as ssl_plugin
from tests.fakens.api import NitroApi, RequestRecord
from tests.fakens.core import HANDLERS, Call, State, VServer
from tests.fakens.dataplane import DataplaneRecord, DataplaneServer
from tests.fakens.faults import ANY, Fault, new_fault
from tests.fakens.server import NitroServer, make_management_cert, server_context
from tests.fakens.tlsplane import TlsPlane

# handler modules registered on import: ADNS (issue 11), HA pairs (issue 10)
PLUGINS = ("files", "ssl", "adns", "hafiles")


def _load_plugins() -> None:
    """Import the plugin modules that exist (they register their handlers on import)."""
    for plugin in PLUGINS:
        module = f"tests.fakens.{plugin}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


_load_plugins()

__all__ = ["Call", "DataplaneRecord", "FakeNetScaler", "Fault", "RequestRecord", "State"]

DEFAULT_USERS = {"nsroot": "nsroot"}


class FakeNetScaler:
    """The fake appliance. ``start()``/``stop()``, or use it as a context manager."""

    def __init__(self, users: Optional[dict[str, str]] = None, *, header_auth: bool = True,
                 bulk_remove: bool = True, ha_state: str = "Primary", ha_peer: bool = False,
                 responder_enabled: bool = True, session_timeout: int = 1800,
                 version: Optional[str] = None, http_port: int = 0, https_port: int = 0,
                 dataplane_port: int = 0, tls_port: int = 0,
                 certkey_name_max: Optional[int] = 31, host: str = "127.0.0.1") -> None:
        self.host = host  # every listener's address (an HA pair's second node: 127.0.0.2)
        self.state = State()
        self.state.users = dict(users if users is not None else DEFAULT_USERS)
        self.state.header_auth = header_auth
        self.state.bulk_remove = bulk_remove
        self.state.session_timeout = session_timeout
        self.state.features["RESPONDER"] = responder_enabled
        if version:
            self.state.version = version
        self.set_ha_state(ha_state, peer=ha_peer or None)
        self.api = NitroApi(self.state)
        self._ports = (http_port, https_port, dataplane_port)
        self._tmp: Optional[Path] = None
        self._servers: list[Any] = []
        self.cert_file = Path()
        self.cert_sha256 = ""
        self.url = self.http_url = ""
        self.dataplane_port = 0
        self._dataplane: Optional[DataplaneServer] = None
        self.tls_port = 0  # TLS data plane (tests/fakens/tlsplane.py)
        self.adns_port = 0  # ADNS data plane (tests/fakens/adns.py), after enable_adns()
        self._tls_port_wanted = tls_port
        self._tlsplane: Optional[TlsPlane] = None
        self._vserver_planes: dict[str, TlsPlane] = {}  # one TLS listener per SSL vserver
        with self.state.lock:  # None: no certkey name limit (newer firmware)
            ssl_plugin.ssl_state(self.state).name_max = certkey_name_max

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FakeNetScaler:
        """Generate the management certificate and start every listener on 127.0.0.1."""
        self._tmp = Path(tempfile.mkdtemp(prefix="fakens-"))
        try:
            cert_file, key_file, self.cert_sha256 = make_management_cert(self._tmp, self.host)
            self.cert_file = cert_file
            http_port, https_port, dataplane_port = self._ports
            plain = NitroServer(self.api, http_port, host=self.host)
            self._servers.append(plain)
            tls = NitroServer(self.api, https_port, server_context(cert_file, key_file),
                              host=self.host)
            self._servers.append(tls)
            self._dataplane = DataplaneServer(self.state, dataplane_port, self.host)
            self._servers.append(self._dataplane)
            self._tlsplane = TlsPlane(self.state, self.host, port=self._tls_port_wanted)
            self._servers.append(self._tlsplane)
            for server in self._servers:
                server.start()
            with self.state.lock:
                names = list(ssl_plugin.ssl_state(self.state).vservers)
            for name in names:
                self._open_vserver_plane(name)
        except BaseException:
            self.stop()
            raise
        self.http_url = f"http://{self.host}:{plain.port}"
        self.url = f"https://{self.host}:{tls.port}"
        self.dataplane_port = self._dataplane.port
        self.tls_port = self._tlsplane.port
        return self

    def stop(self) -> None:
        """Stop every listener and remove the temporary files. Safe to call twice."""
        # In parallel: each listener's accept loop needs up to one poll interval to notice.
        stoppers = [threading.Thread(target=server.stop) for server in self._servers]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        self._servers.clear()
        self._vserver_planes.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> FakeNetScaler:
        return self.start()

    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.stop()

    # ------------------------------------------------------------ appliance set-up

    def add_lbvserver(self, name: str, servicetype: str = "HTTP", port: int = 80,
                      state: str = "UP", ipv46: str = "127.0.0.1") -> None:
        self._add_vserver("lb", self.state.lbvservers, name, servicetype, port, state, ipv46)

    def add_csvserver(self, name: str, servicetype: str = "HTTP", port: int = 80,
                      state: str = "UP", ipv46: str = "127.0.0.1") -> None:
        self._add_vserver("cs", self.state.csvservers, name, servicetype, port, state, ipv46)

    def _add_vserver(self, kind: str, table: dict[str, VServer], name: str, servicetype: str,
                     port: int, state: str, ipv46: str) -> None:
        with self.state.lock:
            table[name] = VServer(name, servicetype.upper(), port, ipv46, state.upper())
            if self.state.dataplane_vserver is None and servicetype.upper() == "HTTP":
                self.state.dataplane_vserver = f"{kind}:{name}"

    def set_vserver_state(self, name: str, state: str) -> None:
        """Mark an lb (or else cs) vserver UP or DOWN."""
        with self.state.lock:
            lb, cs = self.state.lbvservers, self.state.csvservers
            table = lb if name in lb else cs
            table[name].state = state.upper()

    @property
    def dataplane_vserver(self) -> Optional[str]:
        """Name of the vserver the HTTP data plane stands for."""
        chosen = self.state.dataplane_vserver
        return chosen.partition(":")[2] if chosen else None

    @dataplane_vserver.setter
    def dataplane_vserver(self, name: str) -> None:
        with self.state.lock:
            kind = "lb" if name in self.state.lbvservers else "cs"
            if name not in self.state.lbvservers and name not in self.state.csvservers:
                raise KeyError(f"no lb or cs vserver named {name!r}")
            self.state.dataplane_vserver = f"{kind}:{name}"

    def set_ha_state(self, state: str, *, peer: Optional[bool] = None) -> None:
        """Set node 0's HA state; a non-Primary node implies an HA pair."""
        with self.state.lock:
            self.state.ha_state = state
            if peer is not None:
                self.state.ha_peer = peer
            elif state.lower() != "primary":
                self.state.ha_peer = True

    def set_feature(self, name: str, enabled: bool) -> None:
        with self.state.lock:
            self.state.features[name.upper()] = enabled

    def set_version(self, version: str) -> None:
        with self.state.lock:
            self.state.version = version

    def add_user(self, name: str, password: str,
                 policies: Optional[list[tuple[str, str]]] = None) -> None:
        """Add a user; ``policies`` are (ALLOW|DENY, regex) in priority order, None = superuser."""
        with self.state.lock:
            self.state.users[name] = password
            if policies is None:
                self.state.cmdpolicies.pop(name, None)
            else:
                self.state.cmdpolicies[name] = list(policies)

    def expire_sessions(self) -> None:
        """Kill every session: the next cookie-authenticated call gets 401/444."""
        with self.state.lock:
            self.state.sessions.clear()

    # ------------------------------------------------------------ SSL (ssl.py, files.py)

    def add_sslvserver(self, name: str, *, port: int = 443, serve: Optional[bool] = None,
                       sni: bool = False, kind: str = "lb",
                       sslprofile: Optional[str] = None) -> None:
        """Add an SSL vserver (an ``kind`` vserver of service type SSL) with its own TLS
        listener (``vserver_port(name)``, also its ``port`` in NITRO); the first one (or
        ``serve=True``) is also what ``tls_port`` serves. ``sni`` enables SNI on it."""
        with self.state.lock:
            ssl_plugin.add_sslvserver(self.state, name, port=port, serve=serve, sni=sni,
                                      kind=kind, sslprofile=sslprofile)
            ssl_plugin.ssl_state(self.state).vservers[name].ipv46 = self.host
            table = self.state.lbvservers if kind == "lb" else self.state.csvservers
            table[name] = VServer(name, "SSL", port, self.host, "UP")
        if self._servers:
            self._open_vserver_plane(name)

    def _open_vserver_plane(self, name: str) -> None:
        plane = TlsPlane(self.state, self.host, vserver=name)
        plane.start()
        self._servers.append(plane)
        self._vserver_planes[name] = plane
        with self.state.lock:
            vs = ssl_plugin.ssl_state(self.state).vservers[name]
            vs.port = plane.port
            table = self.state.lbvservers if vs.kind == "lb" else self.state.csvservers
            if name in table:
                table[name].port = plane.port

    def vserver_port(self, name: str) -> int:
        """The TLS port of one SSL vserver (its ``port`` as NITRO reports it)."""
        return self._vserver_planes[name].port

    def set_sni(self, vserver: str, enabled: bool) -> None:
        """Switch SNI on or off on an SSL vserver (``set ssl vserver -SNIEnable``)."""
        with self.state.lock:
            ssl_plugin.ssl_state(self.state).vservers[vserver].snienable = enabled

    def add_sslprofile(self, name: str, *, sni: bool = False) -> None:
        """An SSL profile; attach it with ``add_sslvserver(..., sslprofile=name)``."""
        with self.state.lock:
            ssl_plugin.ssl_state(self.state).profiles[name] = sni

    def set_default_bind(self, mode: str) -> None:
        """How a bind that replaces a default certificate answers: warning, error or keep."""
        with self.state.lock:
            ssl_plugin.ssl_state(self.state).default_bind = mode

    def bind_certkey(self, vserver: str, certkey: str, *, sni: bool = False) -> None:
        """Bind an existing certkey to an SSL vserver as set-up (no request, no config change)."""
        with self.state.lock:
            ssl_plugin.bind_certkey(self.state, vserver, certkey, sni=sni)

    def ssl_bindings(self, vserver: str) -> list[tuple[str, bool]]:
        """(certkey, snicert) of every server certificate bound to an SSL vserver."""
        with self.state.lock:
            vs = ssl_plugin.ssl_state(self.state).vservers[vserver]
            return [(b.certkey, b.snicert) for b in vs.bindings if not b.ca]

    def certkeys(self) -> list[dict[str, Any]]:
        """Every certkey as ``GET sslcertkey`` reports it (the built-in one included)."""
        with self.state.lock:
            return ssl_plugin.certkeys(self.state)

    def files(self, location: str = "/nsconfig/ssl") -> dict[str, bytes]:
        """File name -> content of one appliance directory."""
        from tests.fakens.files import file_store

        with self.state.lock:
            return file_store(self.state).contents(location)

    # ------------------------------------------------------------ ADNS (adns.py, issue 11)

    def enable_adns(self, zones: tuple[str, ...] = ("example.test",), *,
                    service_state: str = "UP") -> int:
        """Serve ``zones`` authoritatively (UDP+TCP on a free loopback port); returns the port.

        Adds an SOA and NS per zone and the ADNS/ADNS_TCP services NITRO reports.
        """
        from tests.fakens import adns

        plane = adns.AdnsPlane(self.state)
        plane.start()
        self._servers.append(plane)
        with self.state.lock:
            for zone in zones:
                adns.add_zone(self.state, zone)
            adns.add_service(self.state, "adns_udp", "ADNS", plane.port, service_state)
            adns.add_service(self.state, "adns_tcp", "ADNS_TCP", plane.port, service_state)
        self.adns_port = plane.port
        return plane.port

    def add_dns_a(self, name: str, address: str = "127.0.0.1") -> None:
        """An A record the ADNS data plane answers (names pebble validates http-01 for)."""
        from tests.fakens import adns

        with self.state.lock:
            adns.dns_state(self.state).a[name.lower()] = address

    def txt_records(self) -> list[tuple[str, str]]:
        """Every (domain, value) of the appliance's dnstxtrec objects."""
        from tests.fakens import adns

        with self.state.lock:
            return sorted((r["domain"], s) for r in adns.dns_state(self.state).txt
                          for s in r["String"])

    # ------------------------------------------------------------ observation

    @property
    def requests(self) -> list[RequestRecord]:
        """Every NITRO request so far, in arrival order."""
        return self.api.requests

    def writes(self) -> list[RequestRecord]:
        """Requests that may change state: everything but GET, login and logout."""
        return [r for r in self.api.requests
                if r.method != "GET" and r.resource not in ("login", "logout")]

    @property
    def dataplane_requests(self) -> list[DataplaneRecord]:
        """Every request the HTTP data plane answered."""
        return self._dataplane.requests if self._dataplane is not None else []

    def objects(self, resource: str, name: Optional[str] = None,
                args: Optional[dict[str, str]] = None) -> list[Any]:
        """Current objects of a type as its GET handler returns them (no auth, no policies).

        Binding types without ``name`` list every bind point (``bulkbindings=yes``); the
        global binding type needs ``args={"type": ...}`` like on the appliance.
        """
        registration = HANDLERS[("GET", resource, None)]
        call = Call("GET", resource, name, None, dict(args or {}), {}, None, None, "nsroot",
                    query={"bulkbindings": "yes"})
        with self.state.lock:
            found = (registration.func(self.state, call) or {}).get(resource, [])
        return list(found) if isinstance(found, list) else [found]

    # ------------------------------------------------------------ faults

    def inject(self, method: Optional[str] = None, resource: str = ANY,
               action: Optional[str] = ANY, *, name: Optional[str] = None, nth: int = 1,
               times: int = 1, kind: str = "error", status: Optional[int] = None,
               errorcode: int = 257, message: str = "Operation not permitted",
               delay: float = 0.0, after: bool = False) -> Fault:
        """Make the ``nth`` (and up to ``times`` - 1 following) matching requests fail.

        ``method=None`` and ``resource="*"`` match anything; ``action="*"`` matches any
        action, ``action=None`` only requests without one. ``nth`` counts matching requests
        from now. ``after=True`` processes the request before failing its answer.
        """
        fault = new_fault(method, resource, action, name, nth, times, kind, status, errorcode,
                          message, delay, after)
        with self.state.lock:
            self.api.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.state.lock:
            self.api.faults.clear()

    def close_management_connections(self, how: str = "close") -> None:
        """Close every open NITRO connection from the appliance's side, as its keep-alive
        idle timeout does; ``how="reset"`` ends them with RST instead of FIN."""
        for server in self._servers:
            if isinstance(server, NitroServer):
                server.close_connections(how)
