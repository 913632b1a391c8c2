"""Wait until every authoritative server shows every value: never a fixed sleep.

Each server is asked directly (:func:`.query.ask`, recursion off). A server counts as done for
a name when its answer carries the AA flag and every value published under that name. Servers
are polled together, at first quickly, then every ``MAX_INTERVAL`` seconds, until all are done
or the deadline passes; the error then names each lagging server and what it answered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from ..errors import DnsError
from . import query
from .base import Server, TxtRecord

logger = logging.getLogger(__name__)

FIRST_INTERVAL = 0.1
MAX_INTERVAL = 2.0
WORKERS = 16


def wait_visible(
    records: Sequence[TxtRecord],
    servers: Mapping[str, Sequence[Server]],
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once every server of each name answers authoritatively with all its values.

    Raises:
        DnsError: the deadline passed; the message names each server still lagging.
    """
    wanted: dict[str, set[str]] = {}
    for record in records:
        wanted.setdefault(record.name, set()).add(record.value)
    pending = {(name, server) for name in wanted for server in servers.get(name, ())}
    missing_servers = [name for name in wanted if not servers.get(name)]
    if missing_servers:
        raise DnsError(f"no authoritative server is known for {', '.join(missing_servers)}",
                       "set NS_DNS_NAMESERVERS to the servers the CA will ask")
    deadline = clock() + timeout
    interval = FIRST_INTERVAL
    last: dict[tuple[str, Server], str] = {}
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(pending) or 1)) as pool:
        while pending:
            checked = list(pending)
            results = list(pool.map(lambda item: _shows(item[1], item[0], wanted[item[0]]),
                                    checked))
            for item, (done, seen) in zip(checked, results):
                if done:
                    pending.discard(item)
                else:
                    last[item] = seen
            if not pending:
                break
            if clock() + interval > deadline:
                raise DnsError(_lagging(sorted(pending), last, timeout),
                               "check that every authoritative server gets the update (zone "
                               "transfers, NOTIFY), or raise NS_DNS_WAIT")
            sleep(interval)
            interval = min(interval * 2, MAX_INTERVAL)
    logger.info("all %d value(s) visible on every authoritative server", len(records))


def _shows(server: Server, name: str, values: set[str]) -> tuple[bool, str]:
    """(done, what the server answered) for one server and one name."""
    try:
        answer = query.ask(server, name, "TXT")
    except DnsError as exc:
        return False, exc.message
    if not query.is_authoritative(answer):
        return False, "a non-authoritative answer (AA flag not set)"
    present = query.txt_values(answer, name)
    absent = values - present
    if absent:
        return False, f"{len(absent)} of {len(values)} value(s) missing"
    return True, ""


def _lagging(pending: Sequence[tuple[str, Server]], last: Mapping[tuple[str, Server], str],
             timeout: float) -> str:
    parts = [f"{server} for {name}: {last.get((name, server), 'no answer')}"
             for name, server in pending]
    return (f"the challenge values were not visible on every authoritative server after "
            f"{timeout:g} s (NS_DNS_WAIT): " + "; ".join(parts))
