"""What one scheduled run did to each certificate, kept for its end (notifications, metrics).

Hook processes and ``reconcile`` append one JSON line per deployed or failed certificate to
``$NS_LE_RUN_DIR/journal.jsonl`` (the run's private directory, removed when the script ends);
``ns-letsencrypt run-end`` reads it. Without NS_LE_RUN_DIR (a hand-run command) nothing is kept.
Messages come from our own errors, which never contain a password or key.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Optional

from ..errors import DeployError, NsLeError

logger = logging.getLogger(__name__)

JOURNAL = "journal.jsonl"
INVENTORY = "inventory.json"


def run_dir() -> Optional[Path]:
    """The private directory of the current scheduled run, if any."""
    value = os.environ.get("NS_LE_RUN_DIR", "")
    return Path(value) if value and Path(value).is_dir() else None


def _append(entry: dict[str, Any]) -> None:
    directory = run_dir()
    if directory is None:
        return
    try:
        with open(directory / JOURNAL, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")
    except OSError as exc:  # the journal only feeds notifications: never fail a deploy for it
        logger.warning("could not note the result in %s: %s", directory / JOURNAL, exc)


def record_failure(cert: str, target: str, exc: NsLeError) -> None:
    """Note that ``cert`` could not be deployed to ``target``."""
    step = exc.step if isinstance(exc, DeployError) else type(exc).__name__
    error = exc.message.removeprefix(f"deploy failed at step '{step}': ")  # said by "step"
    _append({"event": "failure", "cert": cert, "target": target, "step": step,
             "error": error, "hint": exc.hint or ""})


def record_deployed(cert: str, target: str, certkey: str, serial: str) -> None:
    """Note that a new certificate for ``cert`` is now deployed."""
    _append({"event": "deployed", "cert": cert, "target": target, "certkey": certkey,
             "serial": serial})


def read() -> list[dict[str, Any]]:
    """Every entry noted in this run, in order."""
    directory = run_dir()
    if directory is None or not (directory / JOURNAL).exists():
        return []
    entries = []
    for line in (directory / JOURNAL).read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries
