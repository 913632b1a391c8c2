"""``lifecycle-state.json``: what the lifecycle remembers between runs, in the install directory.

One small JSON object, rewritten whole through a temporary file and a rename (never half
written), mode 600::

    {
      "version": 1,
      "ari": {                        # per certificate (dehydrated's name: alias or first name)
        "www.example.com": {
          "id": "<AKI>.<serial>",     # RFC 9773 identifier of the certificate the entry is for
          "window": ["<start>", "<end>"],     # the CA's suggested window (RFC 3339, UTC)
          "renew_at": "<time>",       # the uniformly random time chosen in that window
          "next_check": "<time>",     # Retry-After, clamped to 1 minute .. 1 day
          "explanation_url": "<url>"  # when the CA gave one
        }
      },
      "expiry": {"<certkey>": {"serial": "<hex>", "level": 1}},  # expiry notices sent:
                                      # 1 = under a third of the lifetime left, 2 = under a sixth
      "last_run": {"end": <unix time>, "success": true}
    }

Nothing in it is secret. A missing or unreadable file counts as empty (it is only a memory:
ARI asks again, an expiry notice may be repeated once).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

FILE_NAME = "lifecycle-state.json"
VERSION = 1


def state_path(home: Path) -> Path:
    """Where the state of the installation in ``home`` lives."""
    return home / FILE_NAME


def load(path: Path) -> dict[str, Any]:
    """The state (an empty one when the file is missing or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": VERSION}
    except (OSError, ValueError) as exc:
        logger.warning("%s: unreadable (%s); starting from an empty state", path, exc)
        return {"version": VERSION}
    if not isinstance(data, dict) or data.get("version") != VERSION:
        logger.warning("%s: not a version %d state file; starting from an empty state",
                       path, VERSION)
        return {"version": VERSION}
    return data


def save(path: Path, data: dict[str, Any]) -> None:
    """Replace the state file atomically (temporary file in the same directory + rename)."""
    data = {**data, "version": VERSION}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, sort_keys=True)
            out.write("\n")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
