"""``NS_DNS=adns``: the NetScaler answers DNS-01 itself, from ``dnstxtrec`` objects (NITRO).

Talks to the appliance only through :class:`~ns_letsencrypt.nitro.NitroClient`. Per hook call
the number of NITRO requests is constant, whatever the number of values: publishing reads the
TXT records once and adds the missing values in one bulk POST (``String`` with a capital S, a
one-element list; never ``idempotent=yes``); removing reads them once and deletes the records
whose value matches by ``recordid`` (one bulk request, one DELETE each as the fallback) — never
by name alone, which would take the sibling value of a wildcard with it.

Pre-flight: an ADNS service is UP, and an SOA record on the appliance covers each challenge
name (else this NetScaler is not authoritative for it). The servers to poll are
``NS_DNS_NAMESERVERS`` or the appliance's ADNS services. With NS_TARGETS every challenge target
publishes on its own appliance (targets.py), and its values are recorded per target.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import dns.name

from ..config import Settings
from ..errors import DnsNotReady, NitroApiError, NitroNotFound
from ..nitro import JsonObj, NitroClient
from . import query
from .base import NotPublished, Publisher, Server, TxtRecord

logger = logging.getLogger(__name__)

EXISTS = 273
GONE_CODES = frozenset({258, 344, 373, 538, 1540, 3441})
ADNS_TYPES = ("ADNS", "ADNS_TCP")


class AdnsPublisher(Publisher):
    """dnstxtrec over NITRO on one appliance."""

    kind = "adns"

    def __init__(self, settings: Settings, client: NitroClient) -> None:
        # Each NS_TARGETS target publishes on its own appliance: its values are recorded as
        # "adns@<target>", so that each target's sweep removes exactly its own leftovers.
        self.kind = f"adns@{settings.target}" if settings.target else "adns"
        self._settings = settings
        self._client = client
        self._services: Optional[list[JsonObj]] = None

    # -- the contract ------------------------------------------------------------------

    def preflight(self, names: Sequence[str]) -> None:
        up = [s for s in self._adns_services() if str(s.get("svrstate", "")).upper() == "UP"]
        if not up:
            raise DnsNotReady("this NetScaler has no ADNS service that is UP, so nobody can "
                              "ask it for the challenge values",
                              "add service <name> <SNIP> ADNS 53 (and ADNS_TCP), or use "
                              "NS_DNS=rfc2136")
        zones = self._zones()
        outside = [name for name in names if _covering(name, zones) is None]
        if outside:
            raise DnsNotReady(f"this NetScaler is not authoritative for {', '.join(outside)}: "
                              "no SOA record on it covers that name",
                              "add dns soaRec <zone> (and NS records) and delegate the zone "
                              "to it, or use NS_DNS=rfc2136")

    def publish(self, records: Sequence[TxtRecord]) -> None:
        try:
            present = {(r.name, r.value) for r in self._records()}
        except NitroApiError as exc:  # nothing written yet: nothing for the sweep either
            raise NotPublished(records, f"reading dnstxtrec: {exc.message}", exc.hint) from None
        todo = sorted({(r.name, r.value) for r in records} - present)
        if not todo:
            return
        bodies = [{"domain": name, "String": [value], "ttl": self._settings.dns_ttl}
                  for name, value in todo]
        try:
            self._client.add("dnstxtrec", bodies if len(bodies) > 1 else bodies[0],
                             onerror="continue")
        except NitroApiError as exc:
            failed = self._refused(exc, len(bodies))
            if failed:
                refused = [TxtRecord(*todo[i]) for i, _ in failed]
                raise NotPublished(refused, "the appliance refused to add dnstxtrec " +
                                   "; ".join(f"{todo[i][0]} ({message})"
                                             for i, message in failed), exc.hint) from None
        logger.info("adns: added %d value(s)", len(todo))

    def servers(self, names: Sequence[str]) -> Mapping[str, Sequence[Server]]:
        if self._settings.dns_nameservers:
            fixed = query.parse_servers(self._settings.dns_nameservers)
        else:
            fixed = sorted({Server(str(s.get("ipaddress", "")), _int(s.get("port"), 53),
                                   str(s.get("name", "")))
                            for s in self._adns_services()
                            if str(s.get("servicetype", "")).upper() == "ADNS"
                            and s.get("ipaddress")})
        return {name: fixed for name in names}

    def remove(self, records: Sequence[TxtRecord]) -> list[str]:
        wanted = {(r.name, r.value) for r in records}
        try:
            doomed = [r for r in self._records() if (r.name, r.value) in wanted]
        except NitroApiError as exc:
            return [f"reading dnstxtrec: {exc.nitro_message}"]
        keys = [{"domain": r.name, "recordid": r.recordid} for r in doomed]
        try:
            self._client.remove_many("dnstxtrec", keys, name_key="domain")
        except NitroApiError as exc:
            if exc.errorcode not in GONE_CODES:
                return [f"removing dnstxtrec: {exc.nitro_message}"]
        return []

    # -- reading the appliance ---------------------------------------------------------

    def _records(self) -> list[_Record]:
        """Every ADNS TXT record of the appliance, one per value (one request)."""
        try:
            items = self._client.get("dnstxtrec", args={"type": "ADNS"})
        except NitroNotFound:
            return []
        found = []
        for item in items:
            fields = {str(k).lower(): v for k, v in item.items()}  # NITRO may answer "String"
            strings = fields.get("string") or []
            strings = strings if isinstance(strings, list) else [strings]
            name = str(fields.get("domain", "")).rstrip(".").lower()
            found += [_Record(name, str(s), str(fields.get("recordid", ""))) for s in strings]
        return found

    def _adns_services(self) -> list[JsonObj]:
        if self._services is None:
            self._services = [s for s in self._client.get("service")
                              if str(s.get("servicetype", "")).upper() in ADNS_TYPES]
        return self._services

    def _zones(self) -> list[str]:
        try:
            soas = self._client.get("dnssoarec", args={"type": "ADNS"})
        except NitroNotFound:
            return []
        return [str(s.get("domain", "")).rstrip(".").lower() for s in soas if s.get("domain")]

    @staticmethod
    def _refused(exc: NitroApiError, count: int) -> list[tuple[int, str]]:
        """(index, message) of the values the appliance refused; "exists" is no refusal."""
        if exc.responses:
            return [(i, str(a.get("message", ""))) for i, a in enumerate(exc.responses)
                    if _int(a.get("errorcode"), 0) not in (0, EXISTS)]
        if exc.errorcode == EXISTS:
            return []
        return [(i, exc.nitro_message) for i in range(count)]


@dataclass(frozen=True)
class _Record:
    """One TXT value on the appliance with the record id that deletes exactly it."""

    name: str
    value: str
    recordid: str


def _covering(name: str, zones: Sequence[str]) -> Optional[str]:
    owner = dns.name.from_text(name)
    matches = [z for z in zones if owner.is_subdomain(dns.name.from_text(z))]
    return max(matches, key=len) if matches else None


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
