"""``NS_DNS=rfc2136``: challenge values through dynamic updates (RFC 2136) signed with TSIG.

Updates go over TCP to the primary (``NS_DNS_SERVER``), one update message per zone and hook
call. Adding a value leaves the other values of the name alone; removing deletes exactly that
value (never the RRset). Every answer's rcode is checked: REFUSED (outside the key's
update-policy) and NOTAUTH (the server is not primary for the zone) are errors, as are TSIG
failures, which dnspython raises. The zone is ``NS_DNS_ZONE`` or found by an SOA walk at the
primary; the servers to poll are ``NS_DNS_NAMESERVERS`` or the zone's NS set.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.tsig
import dns.tsigkeyring
import dns.update

from ..config import Settings
from ..errors import ConfigError, DnsError, DnsNotReady
from . import query
from .base import NotPublished, Publisher, Server, TxtRecord
from .tsigkey import TsigKey, read_key_file

logger = logging.getLogger(__name__)

TIMEOUT = 10.0
_TSIG_ERRORS = {
    "PeerBadKey": "the server does not know the key",
    "PeerBadSignature": "the server says the signature is wrong (wrong secret or algorithm)",
    "PeerBadTime": "the server says the signing time is off (check both clocks)",
    "PeerBadTruncation": "the server refused the truncated signature",
    "BadSignature": "the server's answer carries a bad signature",
}


class Rfc2136Publisher(Publisher):
    """RFC 2136 + TSIG against one primary server."""

    kind = "rfc2136"

    def __init__(self, settings: Settings) -> None:
        if not settings.dns_server or not settings.dns_tsig_key_file:
            raise ConfigError("NS_DNS=rfc2136 needs NS_DNS_SERVER and NS_DNS_TSIG_KEY_FILE")
        self._settings = settings
        self._key_file = Path(settings.dns_tsig_key_file)
        self._key: Optional[TsigKey] = None
        self._primary: Optional[Server] = None
        self._zones: dict[str, str] = {}

    # -- the contract ------------------------------------------------------------------

    def preflight(self, names: Sequence[str]) -> None:
        self._tsig()
        primary = self.primary
        try:
            query.ask(primary, names[0] if names else ".", "SOA")
        except DnsError as exc:
            raise DnsNotReady(f"NS_DNS_SERVER {primary}: {exc.message}",
                              "check NS_DNS_SERVER (host[:port] of the primary)") from None
        for zone in sorted({self.zone_of(name) for name in names}):
            self._check_key(zone)

    def publish(self, records: Sequence[TxtRecord]) -> None:
        groups = list(self._by_zone(records).items())
        for index, (zone, group) in enumerate(groups):
            update = self._update(zone)
            for record in group:
                update.add(self._relative(record.name, zone), self._settings.dns_ttl,
                           _txt(record.value))
            try:
                self._send(update, zone, "add")
            except DnsError as exc:
                # An update applies whole or not at all (RFC 2136 3.4.2): this zone's values
                # and those of the zones not yet sent are certainly not published.
                untouched = [r for _, later in groups[index:] for r in later]
                raise NotPublished(untouched, exc.message, exc.hint) from None
        logger.info("rfc2136: added %d value(s) at %s", len(records), self.primary)

    def servers(self, names: Sequence[str]) -> Mapping[str, Sequence[Server]]:
        if self._settings.dns_nameservers:
            fixed = query.parse_servers(self._settings.dns_nameservers)
            return {name: fixed for name in names}
        by_zone: dict[str, list[Server]] = {}
        for name in names:
            zone = self.zone_of(name)
            if zone not in by_zone:
                by_zone[zone] = query.zone_nameservers(zone, self.primary) or [self.primary]
        return {name: by_zone[self.zone_of(name)] for name in names}

    def remove(self, records: Sequence[TxtRecord]) -> list[str]:
        problems: list[str] = []
        for zone, group in self._by_zone(records).items():
            update = self._update(zone)
            for record in group:
                update.delete(self._relative(record.name, zone), _txt(record.value))
            try:
                self._send(update, zone, "delete")
            except DnsError as exc:
                problems.append(exc.message)
        return problems

    # -- zone, primary, key ------------------------------------------------------------

    @property
    def primary(self) -> Server:
        """The server updates go to (``NS_DNS_SERVER``, port 53 by default)."""
        if self._primary is None:
            assert self._settings.dns_server is not None
            self._primary = query.resolve_host(self._settings.dns_server)
        return self._primary

    def zone_of(self, name: str) -> str:
        """``NS_DNS_ZONE`` when it holds ``name``, else the zone the primary serves for it.

        Raises:
            ConfigError: ``name`` is outside ``NS_DNS_ZONE``.
            DnsNotReady: the primary is authoritative for no zone holding ``name``.
        """
        if name in self._zones:
            return self._zones[name]
        configured = self._settings.dns_zone
        if configured:
            if not dns.name.from_text(name).is_subdomain(dns.name.from_text(configured)):
                raise ConfigError(f"{name} is outside NS_DNS_ZONE={configured}",
                                  "fix NS_DNS_ZONE, or leave it empty to find each zone by SOA")
            zone: Optional[str] = configured
        else:
            zone = query.find_zone(name, self.primary)
        if zone is None:
            raise DnsNotReady(f"NS_DNS_SERVER {self.primary} is not authoritative for any zone "
                              f"that holds {name}",
                              "name the primary of that zone in NS_DNS_SERVER, or delegate "
                              "_acme-challenge with a CNAME into a zone it serves")
        self._zones[name] = zone
        return zone

    def _tsig(self) -> TsigKey:
        if self._key is None:
            self._key = read_key_file(self._key_file)
        return self._key

    # -- messages ----------------------------------------------------------------------

    def _update(self, zone: str) -> dns.update.UpdateMessage:
        key = self._tsig()
        ring = dns.tsigkeyring.from_text({key.name: (key.algorithm, key.secret)})
        return dns.update.UpdateMessage(zone, keyring=ring, keyname=dns.name.from_text(key.name),
                                        keyalgorithm=key.algorithm)

    def _check_key(self, zone: str) -> None:
        """Ask the primary a TSIG-signed SOA query: a wrong key shows before any update.

        Raises:
            ConfigError: the server refused the key or its signature.
        """
        key = self._tsig()
        probe = dns.message.make_query(zone, "SOA")
        probe.use_tsig(dns.tsigkeyring.from_text({key.name: (key.algorithm, key.secret)}),
                       keyname=key.name, algorithm=key.algorithm)
        try:
            self._send(probe, zone, "signed SOA query")
        except DnsError as exc:
            if "TSIG" in exc.message:
                raise ConfigError(exc.message, exc.hint) from None
            raise DnsNotReady(exc.message, exc.hint) from None

    def _send(self, update: dns.message.Message, zone: str, what: str) -> None:
        primary = self.primary
        head = f"rfc2136 {what} in zone {zone} at {primary}"
        try:
            answer = dns.query.tcp(update, primary.address, timeout=TIMEOUT, port=primary.port)
        except dns.tsig.PeerError as exc:
            reason = _TSIG_ERRORS.get(type(exc).__name__, type(exc).__name__)
            raise DnsError(f"{head}: TSIG key {self._tsig().name} refused: {reason}",
                           "check that NS_DNS_TSIG_KEY_FILE holds the key the server "
                           "expects") from None
        except dns.exception.DNSException as exc:
            reason = _TSIG_ERRORS.get(type(exc).__name__) or str(exc) or type(exc).__name__
            raise DnsError(f"{head}: {reason}") from None
        except OSError as exc:
            raise DnsError(f"{head}: cannot reach the server ({exc.strerror or exc})",
                           "check NS_DNS_SERVER") from None
        rcode = answer.rcode()
        if rcode != dns.rcode.NOERROR:
            raise DnsError(f"{head}: the server answered {dns.rcode.to_text(rcode)}",
                           _RCODE_HINTS.get(rcode))

    def _by_zone(self, records: Sequence[TxtRecord]) -> dict[str, list[TxtRecord]]:
        grouped: dict[str, list[TxtRecord]] = {}
        for record in records:
            grouped.setdefault(self.zone_of(record.name), []).append(record)
        return grouped

    @staticmethod
    def _relative(name: str, zone: str) -> dns.name.Name:
        return dns.name.from_text(name).relativize(dns.name.from_text(zone))


_RCODE_HINTS = {
    dns.rcode.REFUSED: "the key's update-policy does not allow TXT records at this name; "
                       "grant it, e.g. update-policy { grant <key> zonesub TXT; }",
    dns.rcode.NOTAUTH: "the server is not the primary of this zone, or does not accept the "
                       "key for it; check NS_DNS_SERVER and NS_DNS_ZONE",
    dns.rcode.NOTZONE: "the name is outside the zone; check NS_DNS_ZONE",
}


def _txt(value: str) -> dns.rdtypes.ANY.TXT.TXT:
    """The value as TXT rdata built as an object, so no quoting can change it."""
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [value.encode("ascii")])
