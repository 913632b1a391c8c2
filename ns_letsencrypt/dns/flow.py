"""The hook's dns-01 path and pre-flight, on top of the publisher contract.

Only the publishers and the wait import dnspython, lazily: an http-01-only installation runs
the hooks and commands without it.

- ``deploy``: record the values (state file), publish them all, then wait until every
  authoritative server shows every value; on any failure remove them again and raise, so
  dehydrated stops before the CA is asked.
- ``clean``: remove exactly those values; what fails stays recorded for the sweep.
- ``startup``: from domains.txt, refuse a wildcard-first line without alias, pre-flight the
  publisher for every dns-01 name, sweep leftovers, then tell dehydrated per certificate which
  challenge to use (:mod:`.certconfig`). Nothing is written when a check fails.
- ``sweep``: remove every recorded value of this publisher (the run lock means no other run
  owns them); with NS_TARGETS and ``adns`` each target sweeps its own (``adns@<target>``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from ..config import Settings
from ..errors import ChallengeError, NsLeError
from ..report import Check, failed, passed
from . import certconfig, open_publisher
from .base import NotPublished, Publisher, TxtRecord, challenge_name, is_valid_value
from .state import Entry, StateFile

logger = logging.getLogger(__name__)

TARGET_ADNS = "adns@"  # state-file kind of an NS_TARGETS target's own ADNS values


def is_dns_call() -> bool:
    """True when dehydrated runs this challenge hook for dns-01 (it exports CHALLENGETYPE)."""
    return os.environ.get("CHALLENGETYPE") == "dns-01"


def state_file() -> StateFile:
    """The state file of this installation (NS_LE_HOME or the code directory)."""
    from ..register import home_dir

    return StateFile(home_dir())


def records_from(args: Sequence[str]) -> list[TxtRecord]:
    """dehydrated's ``DOMAIN TOKEN VALUE`` triples as records (the token is not needed).

    Raises:
        ChallengeError: a wrong argument count, or a value that is not base64url.
    """
    if not args or len(args) % 3:
        raise ChallengeError(f"expected DOMAIN TOKEN VALUE triples, got {len(args)} argument(s)")
    records = []
    for i in range(0, len(args), 3):
        domain, value = args[i], args[i + 2]
        if not is_valid_value(value):
            raise ChallengeError(f"{domain!r}: the dns-01 value is not base64url")
        records.append(TxtRecord(challenge_name(domain), value))
    return records


# -- hook calls ---------------------------------------------------------------------------


def deploy(settings: Settings, records: Sequence[TxtRecord],
           state: Optional[StateFile] = None) -> None:
    """Publish and wait; on failure remove what was published and raise.

    Raises:
        NsLeError: the publisher or the wait failed (DnsError, exit 7) or is not set up.
    """
    from .wait import wait_visible  # dnspython: imported only where dns-01 is in use

    state = state or state_file()
    with open_publisher(settings) as publisher:
        state.add(publisher.kind, records)
        try:
            publisher.publish(records)
            names = sorted({r.name for r in records})
            wait_visible(records, publisher.servers(names), settings.dns_wait)
        except NotPublished as exc:
            state.drop(publisher.kind, exc.records)
            maybe = [r for r in records if r not in exc.records]
            if maybe:
                _remove(publisher, maybe, state, "removing the failed challenge")
            raise
        except NsLeError:
            _remove(publisher, records, state, "removing the failed challenge")
            raise
    logger.info("dns-01: %d value(s) published through %s", len(records), publisher.kind)


def clean(settings: Settings, records: Sequence[TxtRecord],
          state: Optional[StateFile] = None) -> list[str]:
    """Remove exactly these values; returns the problems (they stay for the sweep)."""
    state = state or state_file()
    with open_publisher(settings) as publisher:
        return _remove(publisher, records, state, "clean_challenge")


def _remove(publisher: Publisher, records: Sequence[TxtRecord], state: StateFile,
            where: str) -> list[str]:
    try:
        problems = publisher.remove(records)
    except NsLeError as exc:
        problems = [str(exc)]
    if problems:
        for problem in problems:
            logger.warning("%s: %s (left for the sweep)", where, problem)
    else:
        state.drop(publisher.kind, records)
    return problems


# -- run start and end --------------------------------------------------------------------


def startup(settings: Settings, domains: Optional[Path], certs_dir: Path) -> None:
    """Checks and set-up before the CA is asked (see the module docstring).

    Raises:
        NsLeError: the first problem (ConfigError: exit 2; DnsNotReady: exit 6).
    """
    lines = certconfig.read_domains(domains) if domains is not None else []
    uses_dns = [line for line in lines
                if certconfig.challenge_of(line, settings.challenge) == "dns-01"]
    state = state_file()
    # An NS_DNS that no certificate uses yet must not stop http-01 renewals: check it only
    # when needed, and open it otherwise only to sweep what an earlier run left. A target
    # that takes no challenges (NS_<T>_ROLE=certs) publishes nothing: nothing to check.
    takes_challenges = settings.role != "certs"
    if takes_challenges and (uses_dns or (settings.dns and state.entries())):
        names = sorted({challenge_name(n) for line in uses_dns for n in line.names})
        with open_publisher(settings) as publisher:
            if names:
                publisher.preflight(names)
            _sweep(publisher, state, "startup_hook")
    changed = certconfig.write_configs(lines, certs_dir, settings.challenge)
    for path in changed:
        logger.info("%s now names the challenge type of its certificate", path)


def sweep(settings: Settings) -> list[Entry]:
    """Remove every recorded value of the configured publisher; returns what was removed."""
    state = state_file()
    if not state.entries() or not settings.dns or settings.role == "certs":
        return []
    with open_publisher(settings) as publisher:
        return _sweep(publisher, state, "sweep")


def _sweep(publisher: Publisher, state: StateFile, where: str) -> list[Entry]:
    entries = state.entries()
    mine = [e for e in entries if e.kind == publisher.kind]
    for other in sorted({e.kind for e in entries} - {publisher.kind}):
        if publisher.kind.startswith(TARGET_ADNS) and other.startswith(TARGET_ADNS):
            continue  # another target's values: its own startup_hook and exit_hook sweep them
        logger.warning("%s: values published through %s are recorded in %s; %s", where,
                       other, state.path, _how_to_sweep(other))
    if not mine:
        return []
    if _remove(publisher, [e.record for e in mine], state, where):
        return []
    logger.info("%s: removed %d leftover dns-01 value(s)", where, len(mine))
    return mine


def _how_to_sweep(kind: str) -> str:
    if kind.startswith(TARGET_ADNS):
        target = kind[len(TARGET_ADNS):]
        return (f"the next run with NS_DNS=adns and {target} in NS_TARGETS removes them from "
                "that target")
    if kind == "adns":
        return ("they were published without NS_TARGETS: unset it, point NS_URL at that "
                "appliance and run 'ns-letsencrypt cleanup --yes' to remove them")
    return f"set NS_DNS={kind} once and run 'ns-letsencrypt cleanup --yes' to remove them"


def sweep_quietly(settings: Settings, where: str) -> None:
    """:func:`sweep` for exit_hook: problems are warnings, never failures."""
    try:
        sweep(settings)
    except NsLeError as exc:
        logger.warning("%s: sweeping leftover dns-01 values failed: %s", where, exc)


# -- `ns-letsencrypt test` ----------------------------------------------------------------


def checks(settings: Settings, domains: Optional[Path]) -> list[Check]:
    """The dns-01 pre-flight as readiness checks (nothing when dns-01 is not in use)."""
    try:
        lines = certconfig.read_domains(domains) if domains is not None else []
        uses_dns = [line for line in lines
                    if certconfig.challenge_of(line, settings.challenge) == "dns-01"]
        if not uses_dns:
            return [passed("dns-01", f"NS_DNS={settings.dns}; no certificate of domains.txt "
                           "uses dns-01 yet", settings.dns)] if settings.dns else []
        names = sorted({challenge_name(n) for line in uses_dns for n in line.names})
        with open_publisher(settings) as publisher:
            publisher.preflight(names)
    except NsLeError as exc:
        return [failed("dns-01", exc.message, exc.hint, exc.exit_status)]
    return [passed("dns-01", f"{settings.dns} can publish for {len(names)} challenge "
                   "name(s)", settings.dns)]

