"""ADNS: ``dnstxtrec``, ``dnssoarec``, ``dnsnsrec``, ``dnsaddrec`` and ``service`` over NITRO, and
an authoritative DNS data plane (UDP and TCP on one loopback port) answering from them.

Follows ``research/dns01.md`` §1: a TXT record holds ``String`` (a list, capital S) and gets its
own ``recordid``; adding a second value under a name makes a second record; delete takes
``recordid`` or ``String`` in ``args`` (without either it removes every record of the name, as
documented). The data plane answers with AA for names inside a zone that has an SOA record,
NXDOMAIN or NODATA with the SOA in the authority section, and REFUSED outside every zone.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from tests.fakens.cmdpolicy import join, quote
from tests.fakens.core import Call, NitroFault, State, handler

ADNS_TYPES = ("ADNS", "ADNS_TCP")


@dataclass
class DnsState:
    """ADNS objects of the appliance (kept in ``State.ext["dns"]``)."""

    txt: list[dict[str, Any]] = field(default_factory=list)
    soa: dict[str, dict[str, Any]] = field(default_factory=dict)  # zone -> record
    ns: dict[str, list[str]] = field(default_factory=dict)  # zone -> NS names
    a: dict[str, str] = field(default_factory=dict)  # name -> IPv4
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 1
    queries: list[tuple[str, str, str]] = field(default_factory=list)  # (proto, name, type)


def dns_state(state: State) -> DnsState:
    found = state.ext.get("dns")
    if found is None:
        found = state.ext["dns"] = DnsState()
    assert isinstance(found, DnsState)
    return found


def _norm(name: Any) -> str:
    return str(name or "").rstrip(".").lower()


# ---------------------------------------------------------------- NITRO: dnstxtrec

def _txt_cli(verb: str) -> Any:
    def render(call: Call) -> str:
        body = call.body if isinstance(call.body, dict) else {}
        domain = call.name or call.args.get("domain") or body.get("domain") or ""
        if verb == "show":
            return join("show dns txtRec", quote(domain) if domain else None)
        if verb == "add":
            strings = body.get("String") or body.get("string") or []
            ttl = body.get("ttl")
            return join("add dns txtRec", quote(domain),
                        *(quote(s) for s in (strings if isinstance(strings, list) else [strings])),
                        f"-TTL {ttl}" if ttl is not None else None)
        recordid = call.args.get("recordid") or body.get("recordid")
        string = call.args.get("String") or call.args.get("string")
        return join("rm dns txtRec", quote(domain),
                    f"-recordId {recordid}" if recordid else (quote(string) if string else None))

    return render


@handler("POST", "dnstxtrec", status=201, cli=_txt_cli("add"))
def add_txt(state: State, call: Call) -> None:
    body = call.body if isinstance(call.body, dict) else None
    if body is None:
        raise NitroFault(400, 1233, "Invalid JSON input")
    for key in body:
        if key not in ("domain", "String", "ttl", "ecssubnet", "nodeid"):
            raise NitroFault(599, 1090, f"No such argument [{key}]")
    domain = _norm(body.get("domain"))
    strings = body.get("String")
    if not domain or not isinstance(strings, list) or not strings:
        raise NitroFault(599, 1095, "Required argument missing [domain, String]")
    if any(len(str(s)) > 255 for s in strings) or len(strings) > 6:
        raise NitroFault(599, 278, "Invalid argument [String]")
    store = dns_state(state)
    if any(r["domain"] == domain and r["String"] == [str(s) for s in strings] for r in store.txt):
        raise NitroFault(409, 273, "Resource already exists")
    ttl = int(body.get("ttl", 3600))
    for record in store.txt:  # one TTL per name: a new record's TTL applies to all of them
        if record["domain"] == domain:
            record["ttl"] = ttl
    store.txt.append({"domain": domain, "String": [str(s) for s in strings], "ttl": ttl,
                      "recordid": store.next_id, "authtype": "ADNS"})
    store.next_id += 1


@handler("GET", "dnstxtrec", cli=_txt_cli("show"))
def get_txt(state: State, call: Call) -> dict[str, Any]:
    records = dns_state(state).txt
    if call.name is not None:
        records = [r for r in records if r["domain"] == _norm(call.name)]
        if not records:
            raise NitroFault(404, 258, "No such resource [domain]")
    # NITRO sends numbers as strings on some firmware: the client must parse both.
    return {"dnstxtrec": [{**r, "recordid": str(r["recordid"])} for r in records]}


@handler("DELETE", "dnstxtrec", cli=_txt_cli("rm"))
def delete_txt(state: State, call: Call) -> None:
    store = dns_state(state)
    domain = _norm(call.name or call.args.get("domain"))
    recordid = call.args.get("recordid")
    string = call.args.get("String") or call.args.get("string")
    mine = [r for r in store.txt if r["domain"] == domain]
    if recordid is not None:
        mine = [r for r in mine if str(r["recordid"]) == str(recordid)]
    elif string is not None:
        mine = [r for r in mine if r["String"] == [string]]
    if not mine:
        raise NitroFault(404, 258, "No such resource [domain]")
    store.txt[:] = [r for r in store.txt if r not in mine]


def _bulk_remove_txt(state: State, call: Call) -> None:
    body = call.body if isinstance(call.body, dict) else {}
    rest = {k: str(v) for k, v in body.items() if k != "domain"}
    delete_txt(state, Call("DELETE", "dnstxtrec", body.get("domain"), None,
                           {**call.args, **rest}, {}, None, None, call.user))


for _verb in ("rm", "delete"):
    handler("POST", "dnstxtrec", _verb, cli=_txt_cli("rm"))(_bulk_remove_txt)


# ---------------------------------------------------------------- NITRO: zones and services

@handler("GET", "dnssoarec", cli=lambda c: join("show dns soaRec", quote(c.name) if c.name
                                                 else None))
def get_soa(state: State, call: Call) -> dict[str, Any]:
    soas = dns_state(state).soa
    if call.name is not None:
        if _norm(call.name) not in soas:
            raise NitroFault(404, 258, "No such resource [domain]")
        return {"dnssoarec": [soas[_norm(call.name)]]}
    return {"dnssoarec": list(soas.values())}


@handler("GET", "dnsnsrec", cli=lambda c: join("show dns nsRec", quote(c.name) if c.name
                                                else None))
def get_ns(state: State, call: Call) -> dict[str, Any]:
    found = [{"domain": zone, "nameserver": ns, "authtype": "ADNS"}
             for zone, names in dns_state(state).ns.items() for ns in names
             if call.name is None or zone == _norm(call.name)]
    return {"dnsnsrec": found}


@handler("GET", "service", cli=lambda c: join("show service", quote(c.name) if c.name
                                               else None))
def get_service(state: State, call: Call) -> dict[str, Any]:
    services = dns_state(state).services
    if call.name is not None:
        if call.name not in services:
            raise NitroFault(404, 344, "No such resource [name]")
        return {"service": [services[call.name]]}
    return {"service": list(services.values())}


# ---------------------------------------------------------------- the data plane

class AdnsPlane:
    """An authoritative DNS server on 127.0.0.1:<port>, UDP and TCP, fed by the NITRO state."""

    def __init__(self, state: State, port: int = 0) -> None:
        self.state = state
        self.port = port
        self._udp: Optional[socket.socket] = None
        self._tcp: Optional[socketserver.ThreadingTCPServer] = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def start(self) -> None:
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", self.port))
            port = udp.getsockname()[1]
            try:
                tcp = _TcpServer(("127.0.0.1", port), _TcpHandler)
            except OSError:
                udp.close()
                if self.port:
                    raise
                continue
            tcp.plane = self
            self._udp, self._tcp, self.port = udp, tcp, port
            break
        else:
            raise RuntimeError("no free port for the ADNS data plane")
        self._udp.settimeout(0.2)
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True),
                         threading.Thread(target=self._tcp.serve_forever, args=(0.2,),
                                          daemon=True)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._tcp is not None:
            self._tcp.shutdown()
            self._tcp.server_close()
        for thread in self._threads:
            thread.join(timeout=2)
        if self._udp is not None:
            self._udp.close()

    def _serve_udp(self) -> None:
        assert self._udp is not None
        while not self._stopping.is_set():
            try:
                data, peer = self._udp.recvfrom(4096)
            except (socket.timeout, OSError):
                continue
            reply = self.answer(data, "udp")
            if reply:
                self._udp.sendto(reply, peer)

    def answer(self, wire: bytes, proto: str) -> Optional[bytes]:
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # garbage in: no answer, like a real server
            return None
        response = dns.message.make_response(query)
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name, rdtype = _norm(question.name.to_text()), question.rdtype
        with self.state.lock:
            store = dns_state(self.state)
            store.queries.append((proto, name, dns.rdatatype.to_text(rdtype)))
            _fill(response, store, name, rdtype)
        return response.to_wire()


def _fill(response: dns.message.Message, store: DnsState, name: str, rdtype: int) -> None:
    zone = _zone_of(name, store)
    if zone is None:
        response.set_rcode(dns.rcode.REFUSED)
        return
    response.flags |= dns.flags.AA
    owner = dns.name.from_text(name)
    rdatas: list[str] = []
    ttl = 60
    if rdtype == dns.rdatatype.TXT:
        mine = [r for r in store.txt if r["domain"] == name]
        rdatas = [" ".join(f'"{s}"' for s in r["String"]) for r in mine]
        ttl = mine[0]["ttl"] if mine else ttl
    elif rdtype == dns.rdatatype.SOA and name == zone:
        rdatas = [_soa_text(store.soa[zone])]
    elif rdtype == dns.rdatatype.NS and name == zone:
        rdatas = [f"{ns}." for ns in store.ns.get(zone, [])]
    elif rdtype == dns.rdatatype.A and name in store.a:
        rdatas = [store.a[name]]
    if rdatas:
        response.answer.append(dns.rrset.from_text(owner, ttl, "IN", rdtype, *rdatas))
        return
    if not _exists(name, zone, store):
        response.set_rcode(dns.rcode.NXDOMAIN)
    response.authority.append(dns.rrset.from_text(
        dns.name.from_text(zone), 5, "IN", "SOA", _soa_text(store.soa[zone])))


def _zone_of(name: str, store: DnsState) -> Optional[str]:
    zones = [z for z in store.soa if name == z or name.endswith("." + z)]
    return max(zones, key=len) if zones else None


def _exists(name: str, zone: str, store: DnsState) -> bool:
    return (name == zone or name in store.a or any(r["domain"] == name for r in store.txt)
            or any(r["domain"].endswith("." + name) for r in store.txt))


def _soa_text(soa: dict[str, Any]) -> str:
    return (f"{soa['originserver']}. {soa['contact']}. {soa['serial']} {soa['refresh']} "
            f"{soa['retry']} {soa['expire']} {soa['minimum']}")


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    plane: AdnsPlane


class _TcpHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock = self.request
        sock.settimeout(2)
        try:
            while True:
                head = _read(sock, 2)
                if head is None:
                    return
                wire = _read(sock, struct.unpack(">H", head)[0])
                if wire is None:
                    return
                server = self.server
                assert isinstance(server, _TcpServer)
                reply = server.plane.answer(wire, "tcp")
                if reply is None:
                    return
                sock.sendall(struct.pack(">H", len(reply)) + reply)
        except OSError:
            return


def _read(sock: socket.socket, count: int) -> Optional[bytes]:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


# ---------------------------------------------------------------- set-up helpers

def add_zone(state: State, zone: str, ns_address: str = "127.0.0.1") -> None:
    """An SOA and one NS (``ns1.<zone>`` with its A record) for ``zone``."""
    store = dns_state(state)
    zone = _norm(zone)
    store.soa[zone] = {"domain": zone, "originserver": f"ns1.{zone}",
                       "contact": f"hostmaster.{zone}", "serial": 100, "refresh": 3600,
                       "retry": 3, "expire": 3600, "minimum": 5, "authtype": "ADNS"}
    store.ns[zone] = [f"ns1.{zone}"]
    store.a[f"ns1.{zone}"] = ns_address


def add_service(state: State, name: str, servicetype: str, port: int,
                svrstate: str = "UP", ipaddress: str = "127.0.0.1") -> None:
    dns_state(state).services[name] = {"name": name, "servicetype": servicetype,
                                       "ipaddress": ipaddress, "port": port,
                                       "svrstate": svrstate}
