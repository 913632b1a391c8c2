"""DNS-01 challenges: publish TXT values, wait until every authoritative server shows them,
remove exactly those values.

The contract is :class:`.base.Publisher`; ``NS_DNS`` chooses the implementation
(:func:`open_publisher`). :mod:`.flow` runs the hook's dns-01 path and the pre-flight on top of
it, :mod:`.state` remembers what was published until it is removed, and :mod:`.certconfig`
tells dehydrated which certificates use dns-01.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..config import Settings
from ..errors import ConfigError
from .base import Publisher, Server, TxtRecord, challenge_name

__all__ = ["Publisher", "Server", "TxtRecord", "challenge_name", "open_publisher"]


@contextmanager
def open_publisher(settings: Settings) -> Iterator[Publisher]:
    """The publisher ``NS_DNS`` names; for ``adns`` with a NITRO session open around it.

    Raises:
        ConfigError: NS_DNS is not set.
    """
    if not settings.dns:
        raise ConfigError("a certificate uses dns-01, but NS_DNS is not set",
                          "set NS_DNS=adns, rfc2136 or lexicon:<provider> (README, "
                          "'Wildcards and DNS-01')")
    if settings.dns == "adns":
        from ..session import open_client
        from .adns import AdnsPublisher

        with open_client(settings, brief=True) as client:
            yield AdnsPublisher(settings, client)
        return
    publisher: Publisher
    if settings.dns == "rfc2136":
        from .rfc2136 import Rfc2136Publisher

        publisher = Rfc2136Publisher(settings)
    else:
        from .lexicon import LexiconPublisher

        publisher = LexiconPublisher(settings)
    yield publisher
