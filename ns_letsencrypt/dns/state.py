"""The TXT values this installation published and has not yet seen removed.

A small JSON file in the install directory (``<NS_LE_HOME>/.dns-challenges.json``, mode 600):
one entry per value with the publisher that owns it and when it was added. A value is
recorded *before* it is published and dropped only after its removal succeeded, so a crash at
any point leaves it listed for the sweep (``startup_hook``, ``exit_hook``, ``cleanup``).
Writes are atomic (a temporary file renamed over the old one) under an flock, so two hook
processes never lose each other's entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .base import TxtRecord

FILE_NAME = ".dns-challenges.json"


@dataclass(frozen=True)
class Entry:
    """One recorded value."""

    kind: str  # the publisher: "adns", "adns@<target>", "rfc2136", "lexicon:<provider>"
    name: str
    value: str
    added: int

    @property
    def record(self) -> TxtRecord:
        return TxtRecord(self.name, self.value)


class StateFile:
    """The recorded values of one install directory."""

    def __init__(self, home: Path) -> None:
        self.path = home / FILE_NAME

    def entries(self) -> list[Entry]:
        """Every recorded value (none when there is no file)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            return []  # unreadable: treated as empty, rewritten by the next change
        return [Entry(str(e["kind"]), str(e["name"]), str(e["value"]), int(e["added"]))
                for e in data.get("values", []) if isinstance(e, dict)]

    def add(self, kind: str, records: Iterable[TxtRecord]) -> None:
        """Record values about to be published."""
        now = int(time.time())
        with self._changing() as entries:
            known = {(e.kind, e.name, e.value) for e in entries}
            entries += [Entry(kind, r.name, r.value, now) for r in records
                        if (kind, r.name, r.value) not in known]

    def drop(self, kind: str, records: Iterable[TxtRecord]) -> None:
        """Forget values whose removal succeeded."""
        gone = {(kind, r.name, r.value) for r in records}
        with self._changing() as entries:
            entries[:] = [e for e in entries if (e.kind, e.name, e.value) not in gone]

    @contextlib.contextmanager
    def _changing(self) -> Iterator[list[Entry]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(f"{self.path}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = self.entries()
            yield entries
            self._write(entries)
        finally:
            os.close(lock)

    def _write(self, entries: list[Entry]) -> None:
        if not entries:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        payload = {"values": [e.__dict__ for e in entries]}
        fd, tmp = tempfile.mkstemp(prefix=FILE_NAME, dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(payload, out, indent=1)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
