"""Notifications through apprise: a failed run, a certificate running out, a renewal.

NS_NOTIFY holds apprise URLs (e-mail, Teams workflows, Slack, ntfy, Gotify, json:// webhooks);
they carry tokens and passwords, so no URL is ever logged or put in a message; a service is
named by its scheme only. NS_NOTIFY_ON chooses the events (default failure,expiry):

- failure: one message per failed run naming each failed certificate, target, step, error, hint;
- expiry: a deployed certificate with less than a third of its lifetime left (its renewal should
  have happened by then), and again below a sixth; remembered per certkey and serial in the
  state file, so each level is announced once per certificate;
- renewal: one message listing the certificates deployed in the run.

Delivery failures are logged and never change the run's exit status.
"""

from __future__ import annotations

import logging
import socket
import warnings
from collections.abc import Sequence
from typing import Any, Optional

from ..config import Settings, redact
from .inventory import Deployed

logger = logging.getLogger(__name__)

EVENTS = ("failure", "expiry", "renewal")


def send(settings: Settings, title: str, body: str, kind: str = "info") -> bool:
    """Deliver one message to every NS_NOTIFY service; False (and a log line) if any failed."""
    with warnings.catch_warnings():  # apprise 2.x imports the deprecated imghdr: not our news
        warnings.simplefilter("ignore", DeprecationWarning)
        return _send(settings, title, body, kind)


def _send(settings: Settings, title: str, body: str, kind: str) -> bool:
    import apprise

    _silence_apprise()
    services = apprise.Apprise()
    schemes = []
    for number, url in enumerate(settings.notify, start=1):
        scheme = url.split("://", 1)[0]
        if not services.add(url):
            logger.warning("NS_NOTIFY entry %d (%s://...) is not a URL apprise understands; "
                           "skipped", number, scheme)
            continue
        schemes.append(scheme)
    if not schemes:
        return False
    delivered = bool(services.notify(body=redact(body, settings), title=redact(title, settings),
                                     notify_type=kind))
    if delivered:
        logger.info("notification sent (%s)", ", ".join(schemes))
    else:
        logger.warning("notification %r could not be delivered to every NS_NOTIFY service "
                       "(%s); the run's result is unchanged", title, ", ".join(schemes))
    return delivered


def _silence_apprise() -> None:
    """apprise logs service URLs and tokens in its own messages: keep them out of our output."""
    apprise_logger = logging.getLogger("apprise")
    apprise_logger.handlers[:] = [logging.NullHandler()]
    apprise_logger.propagate = False


def failure_message(failures: Sequence[dict[str, Any]], exit_status: int) -> tuple[str, str]:
    """Title and body of the one message of a failed run."""
    host = socket.gethostname()
    title = f"ns-letsencrypt: run failed on {host} (exit status {exit_status})"
    lines: list[str] = []
    for item in failures:
        line = (f"- {item.get('cert', '?')} on {item.get('target', '?')}: step "
                f"{item.get('step', '?')}: {item.get('error', '')}")
        if item.get("hint"):
            line += f" (hint: {item['hint']})"
        if line not in lines:  # the hook and exit_hook's reconciliation may both report one
            lines.append(line)
    if not lines:
        lines.append("- no certificate failed by itself: dehydrated or the set-up failed; "
                     "see the run's log")
    return title, "\n".join(["Certificates that could not be renewed or deployed:", *lines,
                             "The previous certificates keep serving. The next run tries again."])


def expiry_level(row: Deployed, now: float) -> int:
    """0 fine, 1 under a third of the lifetime left, 2 under a sixth (or expired)."""
    if row.not_before is None or row.not_after is None or row.not_after <= row.not_before:
        return 0
    lifetime, left = row.not_after - row.not_before, row.not_after - now
    if left < lifetime / 6:
        return 2
    if left < lifetime / 3:
        return 1
    return 0


def expiry_news(rows: Sequence[Deployed], notified: dict[str, Any],
                now: float) -> list[tuple[Deployed, int]]:
    """The certificates that reached a higher expiry level than announced; updates ``notified``."""
    news = []
    for row in rows:
        level = expiry_level(row, now)
        known: Optional[dict[str, Any]] = notified.get(row.certkey)
        before = known.get("level", 0) if known and known.get("serial") == row.serial else 0
        if level > before:
            news.append((row, level))
        notified[row.certkey] = {"serial": row.serial, "level": max(level, before) if level
                                 else 0}
    for gone in set(notified) - {row.certkey for row in rows}:
        del notified[gone]
    return news


def expiry_message(news: Sequence[tuple[Deployed, int]], now: float) -> tuple[str, str]:
    """Title and body for certificates running out."""
    lines = []
    for row, level in news:
        days = (row.not_after or now) - now
        share = "a sixth" if level == 2 else "a third"
        lines.append(f"- {row.cert or row.certkey} (certkey {row.certkey} on {row.target}, "
                     f"serial {row.serial}): {days / 86400:.1f} days left, less than {share} "
                     "of its lifetime; it should have been renewed already")
    title = f"ns-letsencrypt: {len(news)} certificate(s) running out"
    return title, "\n".join([*lines, "Check the last runs' logs and `ns-letsencrypt status`."])


def renewal_message(deployed: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """Title and body listing the certificates deployed in this run."""
    lines = [f"- {item.get('cert')} -> certkey {item.get('certkey')} on {item.get('target')} "
             f"(serial {item.get('serial')})" for item in deployed]
    return f"ns-letsencrypt: {len(deployed)} certificate(s) renewed", "\n".join(lines)
