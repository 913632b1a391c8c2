"""Asking one DNS server directly: no recursion, authoritative answers only.

The propagation check, the zone finder and the name-server list all go through :func:`ask`:
one query with RD cleared over UDP, repeated over TCP when the answer is truncated or UDP
gets nothing. Addresses are IP literals (dnspython refuses names); :func:`resolve_host` turns
a configured host name into one.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Optional

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from ..config import split_host_port
from ..errors import ConfigError, DnsError
from .base import Server

TIMEOUT = 2.0


def resolve_host(address: str, default_port: int = 53) -> Server:
    """A configured ``host[:port]`` as a :class:`Server` (host names looked up once).

    Raises:
        ConfigError: the host name does not resolve.
    """
    host, port = split_host_port(address, default_port)
    try:
        ipaddress.ip_address(host)
        return Server(host, port, host)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise ConfigError(f"the DNS server name {host} does not resolve ({exc})",
                          "write an IP address instead") from None
    return Server(str(infos[0][4][0]), port, host)


def ask(server: Server, name: str, rdtype: str, timeout: float = TIMEOUT) -> dns.message.Message:
    """One non-recursive query; the whole answer message (its rcode is not judged here).

    Raises:
        DnsError: no answer over UDP or TCP within ``timeout``.
    """
    query = dns.message.make_query(name, rdtype)
    query.flags &= ~dns.flags.RD
    try:
        answer = dns.query.udp(query, server.address, timeout=timeout, port=server.port)
        if not answer.flags & dns.flags.TC:
            return answer
    except (dns.exception.Timeout, OSError, dns.exception.FormError):
        pass
    try:
        return dns.query.tcp(query, server.address, timeout=timeout, port=server.port)
    except (dns.exception.DNSException, OSError) as exc:
        raise DnsError(f"the DNS server {server} does not answer ({_reason(exc)})",
                       "check that it runs and that this host may query it") from None


def txt_values(answer: dns.message.Message, name: str) -> set[str]:
    """Every TXT string of ``name`` in an answer section, decoded."""
    owner = dns.name.from_text(name)
    values: set[str] = set()
    for rrset in answer.answer:
        if rrset.name == owner and rrset.rdtype == dns.rdatatype.TXT:
            for rdata in rrset:
                values.update(part.decode("ascii", "replace") for part in rdata.strings)
    return values


def is_authoritative(answer: dns.message.Message) -> bool:
    """AA set and an answer code that an authoritative server gives for its own zone."""
    return bool(answer.flags & dns.flags.AA) and answer.rcode() in (
        dns.rcode.NOERROR, dns.rcode.NXDOMAIN)


def find_zone(name: str, server: Server) -> Optional[str]:
    """The zone ``server`` is authoritative for that holds ``name`` (SOA walk), or None.

    A candidate counts only when the server answers its SOA query with AA and an SOA owned by
    exactly that name (the certbot rule).
    """
    labels = name.rstrip(".").split(".")
    for start in range(len(labels) - 1):
        candidate = ".".join(labels[start:])
        answer = ask(server, candidate, "SOA")
        owner = dns.name.from_text(candidate)
        if answer.flags & dns.flags.AA and answer.rcode() == dns.rcode.NOERROR and any(
                rrset.name == owner and rrset.rdtype == dns.rdatatype.SOA
                for rrset in answer.answer):
            return candidate
    return None


def zone_nameservers(zone: str, server: Server) -> list[Server]:
    """The zone's NS set as seen by ``server``, each name turned into addresses (port 53)."""
    answer = ask(server, zone, "NS")
    names = sorted({str(rdata.target).rstrip(".") for rrset in answer.answer
                    if rrset.rdtype == dns.rdatatype.NS for rdata in rrset})
    found: list[Server] = []
    for ns_name in names:
        found += [Server(address, 53, ns_name) for address in _addresses(ns_name, server)]
    return sorted(set(found))


def system_zone(name: str) -> Optional[str]:
    """The zone of ``name`` as the system resolver sees it (used when no server is given)."""
    try:
        return str(dns.resolver.zone_for_name(name)).rstrip(".")
    except (dns.exception.DNSException, OSError):
        return None


def _addresses(ns_name: str, server: Server) -> list[str]:
    """A and AAAA of a name server: from ``server`` itself first (glue), else the system."""
    addresses: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = ask(server, ns_name, rdtype)
        except DnsError:
            continue
        addresses += [rdata.address for rrset in answer.answer if rrset.rdtype ==
                      dns.rdatatype.from_text(rdtype) for rdata in rrset]
    if addresses:
        return addresses
    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(ns_name, 53)})
    except OSError:
        return []


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def parse_servers(addresses: Sequence[str]) -> list[Server]:
    """NS_DNS_NAMESERVERS as servers (each ``host[:port]``, port 53 by default)."""
    return [resolve_host(address) for address in addresses]
