"""ACME Renewal Information (RFC 9773): when the CA wants each certificate renewed.

dehydrated 0.7 knows nothing of ARI, so ns-cronjob.sh asks ``ns-letsencrypt ari --due`` before
its forced run: for every certificate of domains.txt that has a cert.pem, when the CA's
directory has ``renewalInfo`` and NS_ARI is on, this module

1. builds the certificate's identifier: base64url (no padding) of the Authority Key
   Identifier's keyIdentifier, ".", base64url of the serial's DER content octets (with the
   0x00 sign byte when the top bit is set);
2. unless the stored Retry-After has not passed yet, GETs ``<renewalInfo>/<identifier>``
   (unauthenticated) and reads ``suggestedWindow`` (``end`` must be after ``start``) and
   ``explanationURL``;
3. picks a uniformly random time in the window and keeps it until the window changes
   (re-rolling on every run would drift renewals toward the window's start);
4. stores Retry-After clamped to 1 minute .. 1 day (6 hours when absent or unreadable);
5. prints the domains.txt line of every certificate whose chosen time comes before the next
   daily run, in the form dehydrated reads, for a forced renewal of just those lines.

A broken answer (HTTP error, not JSON, a window that ends before it starts) is logged and
ignored: the certificate keeps its earlier choice, if any, and dehydrated's RENEW_DAYS applies
as without ARI; the next run asks again (sooner only if the answer had a Retry-After, which is
honoured). Nothing here changes the exit status of a run.
"""

from __future__ import annotations

import base64
import datetime
import logging
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Optional

from cryptography import x509

from ..errors import InputError
from ..reconcile import DomainLine
from . import acme
from .dehydrated_conf import DehydratedConfig

logger = logging.getLogger(__name__)

UTC = datetime.timezone.utc
RETRY_MIN = datetime.timedelta(minutes=1)
RETRY_MAX = datetime.timedelta(days=1)
RETRY_DEFAULT = datetime.timedelta(hours=6)
# ns-cronjob.sh runs daily: a time chosen before the next run is due now (RFC 9773 §4.2 step 5).
NEXT_RUN = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Window:
    """A suggested renewal window."""

    start: datetime.datetime
    end: datetime.datetime
    explanation_url: Optional[str] = None


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 4648 §5, as RFC 9773 asks)."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def cert_identifier(cert: x509.Certificate) -> str:
    """The RFC 9773 §4.1 identifier ``<keyIdentifier>.<serial>`` of ``cert``."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        raise InputError("the certificate has no Authority Key Identifier; ARI cannot name "
                         "it") from None
    if aki.key_identifier is None:
        raise InputError("the certificate's Authority Key Identifier has no keyIdentifier")
    serial = cert.serial_number
    # DER INTEGER content octets: minimal two's complement, so a 0x00 when the top bit is set
    serial_octets = serial.to_bytes(serial.bit_length() // 8 + 1, "big")
    return f"{b64url(aki.key_identifier)}.{b64url(serial_octets)}"


def parse_window(body: Mapping[str, Any], url: str) -> Window:
    """The ``suggestedWindow`` of a renewalInfo answer; AcmeHttpError when it is unusable."""
    window = body.get("suggestedWindow")
    if not isinstance(window, dict):
        raise acme.AcmeHttpError(f"GET {url}: no suggestedWindow object in the answer")
    try:
        start, end = (_timestamp(window[key]) for key in ("start", "end"))
    except (KeyError, TypeError, ValueError):
        raise acme.AcmeHttpError(f"GET {url}: suggestedWindow needs RFC 3339 start and "
                                 "end times") from None
    if end <= start:
        raise acme.AcmeHttpError(f"GET {url}: the suggested window ends ({_iso(end)}) before "
                                 f"it starts ({_iso(start)})")
    explanation = body.get("explanationURL")
    return Window(start, end, explanation if isinstance(explanation, str) else None)


def retry_after_delay(header: Optional[str], now: datetime.datetime) -> datetime.timedelta:
    """Retry-After (seconds or an HTTP date) clamped to 1 minute .. 1 day; 6 hours if unusable."""
    if header is None:
        return RETRY_DEFAULT
    text = header.strip()
    try:
        delay = datetime.timedelta(seconds=int(text)) if text.isdigit() else (
            parsedate_to_datetime(text).astimezone(UTC) - now)
    except (TypeError, ValueError, OverflowError):
        return RETRY_DEFAULT
    return min(max(delay, RETRY_MIN), RETRY_MAX)


def renewal_info_url(directory: Mapping[str, Any]) -> Optional[str]:
    """The directory's renewalInfo URL, or None when the CA offers no ARI."""
    url = directory.get("renewalInfo")
    return url if isinstance(url, str) and url else None


class Planner:
    """Decides, certificate by certificate, whether ARI says to renew now (state in ``ari``)."""

    def __init__(self, config: DehydratedConfig, base_url: str, entries: dict[str, Any],
                 now: datetime.datetime, rng: Optional[random.Random] = None) -> None:
        self.config = config
        self.base_url = base_url.rstrip("/")
        self.entries = entries
        self.now = now
        self.rng = rng or random.SystemRandom()

    def is_due(self, name: str, cert: x509.Certificate) -> bool:
        """Update this certificate's entry (fetching when allowed) and say if it is due."""
        identifier = cert_identifier(cert)
        entry = self.entries.get(name)
        if not isinstance(entry, dict) or entry.get("id") != identifier:
            entry = {"id": identifier}  # a new certificate: ask at once
        next_check = _parse_opt(entry.get("next_check"))
        if next_check is not None and next_check > self.now:
            logger.info("ARI %s: next check at %s (Retry-After); renewal chosen for %s", name,
                        entry["next_check"], entry.get("renew_at", "-"))
        else:
            entry = self._refresh(name, identifier, entry)
        self.entries[name] = entry
        renew_at = _parse_opt(entry.get("renew_at"))
        return renew_at is not None and renew_at <= self.now + NEXT_RUN

    def _refresh(self, name: str, identifier: str, entry: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/{identifier}"
        try:
            answer = acme.get_json(url, self.config.verify)
            window = parse_window(answer.body, url)
        except acme.AcmeHttpError as exc:
            logger.warning("ARI %s: %s; ignored (RENEW_DAYS decides as without ARI)", name,
                           exc.message)
            if exc.retry_after is not None:  # e.g. 503 when rate limited: wait as asked
                entry["next_check"] = _iso(self.now + retry_after_delay(exc.retry_after,
                                                                        self.now))
            return entry
        span = [_iso(window.start), _iso(window.end)]
        if entry.get("window") != span or "renew_at" not in entry:
            seconds = (window.end - window.start).total_seconds()
            chosen = window.start + datetime.timedelta(seconds=self.rng.uniform(0, seconds))
            entry = {"id": identifier, "window": span, "renew_at": _iso(chosen)}
        entry["next_check"] = _iso(self.now + retry_after_delay(answer.retry_after, self.now))
        entry.pop("explanation_url", None)
        if window.explanation_url:
            entry["explanation_url"] = window.explanation_url
        logger.info("ARI %s: suggested window %s .. %s, renewal chosen for %s%s", name, span[0],
                    span[1], entry["renew_at"],
                    f" (explanation: {window.explanation_url})" if window.explanation_url else "")
        return entry


def due_lines(config: DehydratedConfig, domains: list[DomainLine], state: dict[str, Any],
              now: datetime.datetime, rng: Optional[random.Random] = None) -> list[DomainLine]:
    """The lines of domains.txt that ARI says to renew in this run; updates ``state['ari']``.

    Raises AcmeHttpError when the directory cannot be read; returns [] when it has no ARI.
    """
    url = renewal_info_url(acme.directory(config.ca_url, config.verify))
    if url is None:
        logger.info("ARI: %s offers no renewalInfo; RENEW_DAYS decides", config.ca_url)
        return []
    stored = state.get("ari")
    entries: dict[str, Any] = stored if isinstance(stored, dict) else {}
    planner = Planner(config, url, dict(entries), now, rng)
    due: list[DomainLine] = []
    for line in domains:
        cert_file = config.certs_dir / line.cert_name / "cert.pem"
        cert = _load(cert_file)
        if cert is None:
            continue
        try:
            if planner.is_due(line.cert_name, cert):
                _say_due(line.cert_name, planner.entries[line.cert_name])
                due.append(line)
        except InputError as exc:
            logger.warning("ARI %s: %s", line.cert_name, exc)
    names = {line.cert_name for line in domains}
    state["ari"] = {name: entry for name, entry in planner.entries.items() if name in names}
    return due


def _say_due(name: str, entry: dict[str, Any]) -> None:
    # A window that comes with an explanation is the CA asking for early renewal (an incident,
    # a mass revocation): worth a line in a quiet run's mail, not just in the log file.
    explanation = entry.get("explanation_url")
    if explanation:
        logger.warning("ARI %s: the CA asks for renewal now (explanation: %s); renewing it",
                       name, explanation)
    else:
        logger.info("ARI %s: the chosen renewal time has come; renewing it now", name)


def dehydrated_line(line: DomainLine) -> str:
    """The domains.txt line of ``line`` as dehydrated reads it."""
    return " ".join(line.names) + (f" >{line.alias}" if line.alias else "")


def _load(path: Path) -> Optional[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("ARI: %s unreadable (%s); skipped", path, exc)
        return None


def _timestamp(value: Any) -> datetime.datetime:
    if not isinstance(value, str):
        raise TypeError("not a string")
    # whole seconds are enough; Python < 3.11 reads at most 6 fractional digits
    text = re.sub(r"\.\d+", "", value.strip()).upper().replace("Z", "+00:00")
    parsed = datetime.datetime.fromisoformat(text.replace("T", " ", 1))
    if parsed.tzinfo is None:
        raise ValueError("no time zone")
    return parsed.astimezone(UTC)


def _parse_opt(value: Any) -> Optional[datetime.datetime]:
    try:
        return _timestamp(value)
    except (TypeError, ValueError):
        return None


def _iso(when: datetime.datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def chosen_times(state: Mapping[str, Any]) -> dict[str, float]:
    """certificate name -> the ARI-chosen renewal time (Unix seconds), from the state."""
    found: dict[str, float] = {}
    entries = state.get("ari")
    for name, entry in (entries.items() if isinstance(entries, dict) else ()):
        when = _parse_opt(entry.get("renew_at")) if isinstance(entry, dict) else None
        if when is not None:
            found[name] = when.timestamp()
    return found
