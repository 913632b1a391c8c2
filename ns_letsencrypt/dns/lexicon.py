"""``NS_DNS=lexicon:PROVIDER``: challenge values through one of dns-lexicon's DNS provider APIs.

dns-lexicon is an optional extra (``pip install '.[lexicon]'``); it is imported only here and
only when this publisher is chosen. Credentials stay in lexicon's own environment variables
(``LEXICON_<PROVIDER>_<OPTION>``), never on a command line. The zone is passed explicitly
(``delegated``: ``NS_DNS_ZONE``, else the SOA the system resolver finds) so that lexicon does not
guess it from the public suffix list, and the TTL is set (lexicon's default is an hour).
Deleting always names the content: some providers delete the whole name without it. After
adding a second value under one name, both are checked to be there (providers that replace the
RRset are caught). lexicon's ``ddns`` provider is refused: use ``NS_DNS=rfc2136``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Optional

from ..config import Settings
from ..errors import ConfigError, DnsError, DnsNotReady
from . import query
from .base import Publisher, Server, TxtRecord

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'ns-letsencrypt[lexicon]' (or: pip install dns-lexicon) in the " \
               "virtualenv of ns-letsencrypt"


class LexiconPublisher(Publisher):
    """One dns-lexicon provider, named in ``NS_DNS=lexicon:<provider>``."""

    def __init__(self, settings: Settings, environ: Optional[Mapping[str, str]] = None) -> None:
        assert settings.dns is not None
        self.provider = settings.dns.partition(":")[2]
        self.kind = f"lexicon:{self.provider}"
        self._settings = settings
        self._environ = os.environ if environ is None else environ
        self._zones: dict[str, str] = {}

    # -- the contract ------------------------------------------------------------------

    def preflight(self, names: Sequence[str]) -> None:
        if self.provider == "ddns":
            raise ConfigError("NS_DNS=lexicon:ddns is not supported (it ignores REFUSED and "
                              "NOTAUTH answers and only talks to port 53)",
                              "use NS_DNS=rfc2136 for dynamic updates")
        self._client_class()
        prefix = f"LEXICON_{self.provider.upper().replace('-', '_')}_"
        if not any(key.startswith(prefix) and value for key, value in self._environ.items()):
            raise ConfigError(f"NS_DNS={self.kind}: no credentials: no {prefix}* variable is set",
                              f"set e.g. {prefix}AUTH_TOKEN in the environment of the hook "
                              "(see 'lexicon " + self.provider + " --help')")
        for zone in sorted({self.zone_of(name) for name in names}):
            self._make_client(zone)

    def publish(self, records: Sequence[TxtRecord]) -> None:
        for zone, group in self._by_zone(records).items():
            with self._operations(zone) as ops:
                for record in group:
                    ops.create_record("TXT", record.name, record.value)
                self._check_all_present(ops, group)

    def servers(self, names: Sequence[str]) -> Mapping[str, Sequence[Server]]:
        if self._settings.dns_nameservers:
            fixed = query.parse_servers(self._settings.dns_nameservers)
            return {name: fixed for name in names}
        found: dict[str, Sequence[Server]] = {}
        for name in names:
            zone = self.zone_of(name)
            found[name] = _system_nameservers(zone)
        return found

    def remove(self, records: Sequence[TxtRecord]) -> list[str]:
        problems: list[str] = []
        for zone, group in self._by_zone(records).items():
            try:
                with self._operations(zone) as ops:
                    for record in group:
                        ops.delete_record(None, "TXT", record.name, record.value)
            except DnsError as exc:
                problems.append(exc.message)
        return problems

    # -- lexicon -----------------------------------------------------------------------

    def zone_of(self, name: str) -> str:
        """``NS_DNS_ZONE``, else the zone the system resolver finds for ``name``."""
        if name not in self._zones:
            zone = self._settings.dns_zone or self._find_zone(name)
            if not zone:
                raise DnsNotReady(f"no zone found for {name} through the system resolver",
                                  "set NS_DNS_ZONE")
            self._zones[name] = zone
        return self._zones[name]

    def _find_zone(self, name: str) -> Optional[str]:
        if self._settings.dns_nameservers:
            return query.find_zone(name, query.resolve_host(self._settings.dns_nameservers[0]))
        return query.system_zone(name)

    def _client_class(self) -> Any:
        try:
            from lexicon.client import Client
            from lexicon.exceptions import ProviderNotAvailableError
        except ImportError:
            raise ConfigError(f"NS_DNS={self.kind} needs dns-lexicon, which is not installed",
                              INSTALL_HINT) from None
        self._not_available = ProviderNotAvailableError
        return Client

    @contextmanager
    def _operations(self, zone: str) -> Iterator[Any]:
        client = self._make_client(zone)
        try:
            with client as ops:
                yield ops
        except DnsError:
            raise
        except Exception as exc:  # providers raise anything, and may echo their request
            raise DnsError(f"lexicon {self.provider} for zone {zone}: "
                           f"{type(exc).__name__}") from None

    def _make_client(self, zone: str) -> Any:
        """lexicon's Client for ``zone`` (this loads the provider and looks the zone up).

        Raises:
            ConfigError: the provider is unknown or its extra is not installed.
            DnsNotReady: lexicon could not set the provider up for the zone.
        """
        from lexicon.config import ConfigResolver

        client_class = self._client_class()
        # resolve_zone_name: lexicon otherwise guesses the zone from the public suffix list
        # (fetched from the internet, and wrong for private TLDs); with it, lexicon asks
        # dnspython's default resolver, which _zone_lookup points at NS_DNS_NAMESERVERS.
        config = ConfigResolver().with_dict({  # type: ignore[no-untyped-call]
            "provider_name": self.provider, "domain": zone, "delegated": zone,
            "resolve_zone_name": True, "ttl": self._settings.dns_ttl,
        }).with_env()
        try:
            with _zone_lookup(self._settings):
                client = client_class(config)
        except self._not_available as exc:
            raise ConfigError(f"NS_DNS={self.kind}: {_first_line(exc)}", INSTALL_HINT) from None
        except Exception as exc:  # a zone lookup or provider set-up failure of lexicon's
            raise DnsNotReady(f"lexicon {self.provider} for zone {zone}: "
                              f"{type(exc).__name__}: {_first_line(exc)}") from None
        return client

    def _check_all_present(self, ops: Any, records: Sequence[TxtRecord]) -> None:
        by_name: dict[str, set[str]] = {}
        for record in records:
            by_name.setdefault(record.name, set()).add(record.value)
        for name, values in by_name.items():
            listed = {str(r.get("content", "")).strip('"') for r in ops.list_records("TXT", name)}
            if values - listed:
                raise DnsError(f"lexicon {self.provider}: after adding, {len(values - listed)} "
                               f"value(s) under {name} are missing (the provider replaced the "
                               "record instead of adding to it)")

    def _by_zone(self, records: Sequence[TxtRecord]) -> dict[str, list[TxtRecord]]:
        grouped: dict[str, list[TxtRecord]] = {}
        for record in records:
            grouped.setdefault(self.zone_of(record.name), []).append(record)
        return grouped


@contextmanager
def _zone_lookup(settings: Settings) -> Iterator[None]:
    """dnspython's default resolver asks the first of NS_DNS_NAMESERVERS while inside."""
    import dns.resolver

    if not settings.dns_nameservers:
        yield
        return
    server = query.resolve_host(settings.dns_nameservers[0])
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server.address]
    resolver.port = server.port
    saved = dns.resolver.default_resolver
    dns.resolver.default_resolver = resolver
    try:
        yield
    finally:
        dns.resolver.default_resolver = saved


def _system_nameservers(zone: str) -> list[Server]:
    import dns.resolver

    servers: list[Server] = []
    try:
        for rdata in dns.resolver.resolve(zone, "NS"):
            target = str(rdata.target).rstrip(".")
            for address in dns.resolver.resolve(target, "A"):
                servers.append(Server(str(address), 53, target))
    except Exception:  # dnspython raises many kinds; none is fatal here
        logger.debug("no NS set for %s through the system resolver", zone)
    return sorted(set(servers))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
