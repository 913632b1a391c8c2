"""The one contract every DNS-01 publisher keeps, and the values it works with.

A publisher puts TXT values under ``_acme-challenge.<name>``, says which authoritative servers
must show them, and removes exactly the values it added: never a whole RRset, never a value it
did not add (a wildcard and its apex share one name). Publishers are small adapters in the
manner of dns-lexicon's providers: :mod:`.adns` (the NetScaler's own ADNS over NITRO),
:mod:`.rfc2136` (dynamic updates with TSIG) and :mod:`.lexicon` (dns-lexicon's providers).
Waiting until the values are visible is not theirs: :mod:`.wait` does it the same way for all.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

from ..errors import DnsError

CHALLENGE_LABEL = "_acme-challenge"
_VALUE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


@dataclass(frozen=True, order=True)
class TxtRecord:
    """One challenge value: ``name`` is absolute, lower case, without the trailing dot."""

    name: str
    value: str


@dataclass(frozen=True, order=True)
class Server:
    """An authoritative DNS server to poll: an IP address and port, and how to call it."""

    address: str
    port: int = 53
    label: str = ""

    def __str__(self) -> str:
        where = f"[{self.address}]:{self.port}" if ":" in self.address else (
            f"{self.address}:{self.port}")
        return f"{self.label} ({where})" if self.label and self.label != self.address else where


def challenge_name(domain: str) -> str:
    """``_acme-challenge.<domain>`` for a dehydrated DOMAIN (never ``*.``; stripped if given)."""
    bare = domain.strip().rstrip(".").lower()
    if bare.startswith("*."):
        bare = bare[2:]
    return f"{CHALLENGE_LABEL}.{bare}"


def is_valid_value(value: str) -> bool:
    """True for a DNS-01 value as dehydrated computes it (base64url of a SHA-256)."""
    return bool(_VALUE.match(value))


class NotPublished(DnsError):
    """Publishing failed, and ``records`` are certainly not published (nothing to remove)."""

    def __init__(self, records: Sequence[TxtRecord], message: str,
                 hint: Optional[str] = None) -> None:
        super().__init__(message, hint)
        self.records = tuple(records)


class Publisher(abc.ABC):
    """Publishes and removes challenge TXT values in one DNS system."""

    # what the state file records: "adns" ("adns@<target>" with NS_TARGETS), "rfc2136",
    # "lexicon:<provider>"
    kind: str = ""

    @abc.abstractmethod
    def preflight(self, names: Sequence[str]) -> None:
        """Check, without writing anything, that values under ``names`` could be published.

        Raises:
            NsLeError: a subclass with exit status 2 (configuration) or 6 (not ready).
        """

    @abc.abstractmethod
    def publish(self, records: Sequence[TxtRecord]) -> None:
        """Add every value (values already there are fine; others under a name stay).

        Raises:
            NotPublished: the DNS system refused; names the values it certainly did not add.
            DnsError: anything else (what was added is unknown).
        """

    @abc.abstractmethod
    def servers(self, names: Sequence[str]) -> Mapping[str, Sequence[Server]]:
        """For each name, the authoritative servers that must all show its values."""

    @abc.abstractmethod
    def remove(self, records: Sequence[TxtRecord]) -> list[str]:
        """Remove exactly these values; absent ones count as removed.

        Returns the problems met (empty: all gone), so that the caller can keep what failed
        for the sweep.
        """
