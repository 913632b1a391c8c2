"""Opening a NITRO session from Settings: the one bridge between configuration and NitroClient.

Commands call :func:`open_client` instead of repeating the field mapping, so a new connection
setting is wired up in exactly one place. Nothing is sent until the client is entered.
"""

from __future__ import annotations

from .config import Settings
from .nitro import NitroClient


def open_client(settings: Settings, *, brief: bool = False) -> NitroClient:
    """A NitroClient for the configured appliance; use it as a context manager to log in.

    ``brief`` marks a process that sends a handful of requests (a challenge hook call): with
    ``NS_AUTH=auto`` it authenticates each request instead of opening a session, which saves
    the login and logout round trips and leaves no session behind if the hook is killed.
    Everything else opens one session.
    """
    auth = settings.auth
    if auth == "auto" and not brief:
        auth = "session"
    return NitroClient(
        settings.url,
        settings.username,
        settings.password,
        auth=auth,
        ca_bundle=settings.ca_bundle,
        pin=settings.tls_pin,
        insecure=settings.tls_insecure,
        timeout=settings.timeout,
        retries=settings.retries,
    )
