"""Opening a NITRO session from Settings: the one bridge between configuration and NitroClient.

Commands call :func:`open_client` instead of repeating the field mapping, so a new connection
setting is wired up in exactly one place. Nothing is sent until the client is entered. Inside a
scheduled run (``NS_LE_RUN_DIR``, see :mod:`ns_letsencrypt.runstate`) the client shares the
run's session and read-once answers with the run's other processes.
"""

from __future__ import annotations

from typing import Optional

from . import runstate
from .config import Settings
from .nitro import NitroClient


def open_client(settings: Settings, *, brief: bool = False,
                run: Optional[runstate.RunState] = None) -> NitroClient:
    """A NitroClient for the configured appliance; use it as a context manager to log in.

    ``brief`` marks a process that sends a handful of requests (a challenge hook call): with
    ``NS_AUTH=auto`` it authenticates each request instead of opening a session, which saves
    the login and logout round trips and leaves no session behind if the hook is killed.
    Everything else opens one session. Within a run (``run``, else the current one) ``auto``
    means the run's shared session for every process: it costs no request once open, and
    one session logs fewer audit lines than per-request authentication.
    """
    run = run or runstate.current(settings)
    auth = settings.auth
    if auth == "auto" and (not brief or run is not None):
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
        store=run if run is not None and auth == "session" else None,
        cache=run,
    )
