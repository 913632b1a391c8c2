"""The deployed certificates as the appliance reports them: one ``GET sslcertkey`` per run.

Rows carry what notifications and metrics need: certkey, dehydrated's certificate name (when
a local cert.pem maps to the certkey), serial, notBefore/notAfter as Unix seconds, whether the
linked chain is complete (status.py's chain rule). ``reconcile`` saves the rows of a scheduled
run in ``$NS_LE_RUN_DIR/inventory.json`` so that the run's end needs no NITRO request of its own.
Nothing here relies on the subject CN: ``tlsserver`` and ``shortlived`` certificates have none.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

from ..config import Settings
from ..nitro import NitroClient
from ..status import CertStatus, appliance_time, check_chain, local_certificates
from . import journal

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deployed:
    """One managed leaf certkey on one appliance."""

    certkey: str
    cert: str  # dehydrated's certificate name, "" when no local directory maps to it
    target: str  # the appliance (host of NS_URL)
    serial: str
    not_before: Optional[float]
    not_after: Optional[float]
    chain_complete: bool


def needed(settings: Settings) -> bool:
    """Whether the run's end uses the inventory: for metrics, or for expiry notices."""
    return bool(settings.metrics_file or (settings.notify and "expiry" in settings.notify_on))


def target_of(settings: Settings) -> str:
    """The appliance as a label: the host (and port) of NS_URL."""
    return urlsplit(settings.url).netloc or settings.url


def read(client: NitroClient, settings: Settings, certs_dir: Optional[Path]) -> list[Deployed]:
    """Every managed leaf certkey, with its local certificate name when there is one."""
    certkeys = client.get("sslcertkey")
    local = local_certificates(certs_dir, settings) if certs_dir else {}
    rows = []
    for item in certkeys:
        name = str(item.get("certkey", ""))
        managed = (name.startswith(settings.certkey_prefix)
                   or name in settings.certkey_names.values())
        if not managed or not item.get("key"):
            continue
        status = CertStatus(certkey=name)
        check_chain(status, item, certkeys)
        cert_name = Path(local[name][1]).parent.name if name in local else ""
        rows.append(Deployed(
            certkey=name, cert=cert_name, target=target_of(settings),
            serial=str(item.get("serial", "")),
            not_before=_openssl_time(item.get("clientcertnotbefore")),
            not_after=_openssl_time(item.get("clientcertnotafter")),
            chain_complete=status.chain_complete))
    return sorted(rows, key=lambda row: row.certkey)


def save_for_run(rows: list[Deployed]) -> None:
    """Keep the rows for the end of this scheduled run (nothing without NS_LE_RUN_DIR)."""
    directory = journal.run_dir()
    if directory is not None:
        (directory / journal.INVENTORY).write_text(json.dumps([asdict(r) for r in rows]))


def saved_for_run() -> Optional[list[Deployed]]:
    """The rows ``reconcile`` saved in this run, or None."""
    directory = journal.run_dir()
    path = directory / journal.INVENTORY if directory else None
    if path is None or not path.exists():
        return None
    try:
        items: list[dict[str, Any]] = json.loads(path.read_text())
        return [Deployed(**item) for item in items]
    except (ValueError, TypeError) as exc:
        logger.warning("%s unreadable (%s)", path, exc)
        return None


def _openssl_time(text: Any) -> Optional[float]:
    """Unix seconds of an appliance date (see status.appliance_time)."""
    when = appliance_time(text)
    return None if when is None else when.timestamp()
