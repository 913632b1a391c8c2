"""The queue of http-01 challenges to remove that ``hooks/ns-hook.sh`` hands to the next hook.

In a dehydrated signing run (``COMMAND=sign_domains``) ``clean_challenge`` always comes right
before another hook of the same run: ``deploy_cert`` when the certificate was issued, else
``exit_hook`` (dehydrated runs it on every error exit too). Starting Python to remove three
objects costs more than removing them, so for http-01 the hook script appends the call's
arguments (``domain token key-authorization`` triples, one call per line) to this queue and
exits 0; the next hook process removes them first, with the same code and the same promise:
what cannot be removed is logged and left for the sweep. dns-01 values are removed at once.

The queue lives in the run directory (``NS_LE_RUN_DIR``) or else in dehydrated's ``BASEDIR``,
whose lock keeps one run at a time there. A queue left by a run that was killed before its
next hook is dropped by the next ``startup_hook``: its sweep removes those objects anyway.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

logger = logging.getLogger(__name__)

QUEUE_NAME = ".ns-letsencrypt-clean"  # hooks/ns-hook.sh writes the same name


def queue_path() -> Optional[Path]:
    """Where this run's queue is, as the hook script chose it; None outside dehydrated."""
    where = os.environ.get("NS_LE_RUN_DIR") or os.environ.get("BASEDIR")
    return Path(where) / QUEUE_NAME if where else None


def take() -> list[str]:
    """The queued arguments (all calls joined) and an empty queue; [] when there is none.

    The file is renamed before it is read, so a call queued meanwhile starts a new file and
    two processes never remove the same batch.
    """
    path = queue_path()
    if path is None:
        return []
    taken = path.with_name(f"{path.name}.{os.getpid()}")
    try:
        path.rename(taken)
    except FileNotFoundError:
        return []
    try:
        return taken.read_text(encoding="utf-8").split()
    finally:
        taken.unlink(missing_ok=True)


def discard() -> None:
    """Drop a queue an earlier, killed run left (the startup sweep removes its objects)."""
    path = queue_path()
    if path is not None and path.exists():
        path.unlink(missing_ok=True)
        logger.info("dropped the challenge removals an interrupted run left queued; the sweep "
                    "removes those objects")
