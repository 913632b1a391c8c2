"""What the processes of one scheduled run share about its output.

ns-cronjob.sh and ns-forcerenew.sh export ``NS_LE_RUN_DIR``, a private directory that lives as
long as the run (tools/common.sh). Every ns-letsencrypt process of the run (each dehydrated
hook, the final reconcile) adds to three files there:

``changes``
    one line per certificate deployed and per leftover cleaned up: what a quiet ns-cronjob.sh
    prints at the end of a successful run (tools/runlog.sh);
``warnings``
    every warning and error logged: printed, each once, at the end of a quiet successful run;
``notes-shown``
    the configuration notes (deprecated ``mynsconfig.py``, unused legacy variables, files
    readable by others) already logged in this run: each is logged once per run, not once per
    hook process.

Outside a scripted run (no ``NS_LE_RUN_DIR``) nothing is recorded and nothing is filtered.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import datetime

    from .config import Settings
    from .deploy import DeployResult

RUN_DIR_ENV = "NS_LE_RUN_DIR"
CHANGES, WARNINGS, NOTES_SHOWN = "changes", "warnings", "notes-shown"
# The loggers whose messages are about the configuration, repeated by every process.
_CONFIG_LOGGER = "ns_letsencrypt.config"
# How a DeployResult's action reads in a summary line.
_ACTION_WORDS = {"added": "installed", "updated": "updated", "repaired": "repaired"}


def run_dir() -> Optional[Path]:
    """This run's private directory, or None outside ns-cronjob.sh and ns-forcerenew.sh."""
    value = os.environ.get(RUN_DIR_ENV, "")
    return Path(value) if value and Path(value).is_dir() else None


def attach(root: logging.Logger) -> None:
    """In a scripted run: keep the warnings of ``root`` and show configuration notes once."""
    directory = run_dir()
    config_logger = logging.getLogger(_CONFIG_LOGGER)
    for old in [f for f in config_logger.filters if isinstance(f, _OncePerRun)]:
        config_logger.removeFilter(old)
    if directory is None:
        return
    config_logger.addFilter(_OncePerRun(directory / NOTES_SHOWN))
    root.addHandler(_WarningsFile(directory / WARNINGS))


def record_change(line: str) -> None:
    """Add one line to the run's summary of changes (nothing outside a scripted run)."""
    directory = run_dir()
    if directory is not None:
        _append(directory / CHANGES, line)


def record_deploy(result: DeployResult, not_after: datetime.datetime,
                  settings: Settings) -> None:
    """Summarise what a deploy changed on the appliance: the certkey (certificate, target,
    serial, expiry) unless it was already in place, and each binding made (NS_BIND)."""
    host = _host(settings)
    if result.action != "unchanged":
        action = _ACTION_WORDS.get(result.action, result.action)
        record_change(f"{result.name}: {action} certkey {result.certkey} on {host}, "
                      f"serial {result.serial}, expires {not_after:%Y-%m-%d %H:%M} UTC")
    for change in result.bindings_changed:
        record_change(f"{result.name}: {change} on {host}")


def record_sweep(removed: list[str], settings: Settings) -> None:
    """Summarise leftover challenge objects removed (of a killed run, or not cleaned in time)."""
    if removed:
        record_change(f"{_host(settings)}: removed {len(removed)} leftover challenge "
                      f"object(s): {', '.join(removed)}")


def _host(settings: Settings) -> str:
    return urlsplit(settings.url).netloc or settings.url


def _append(path: Path, line: str) -> None:
    """Append one line in a single write (processes of a run may append at the same time)."""
    data = (" ".join(line.splitlines()) + "\n").encode("utf-8", "replace")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


class _WarningsFile(logging.Handler):
    """Appends every warning and error to the run's ``warnings`` file, one line each."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.WARNING)
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _append(self.path, f"{record.levelname}: {record.getMessage()}")
        except OSError:
            self.handleError(record)


class _OncePerRun(logging.Filter):
    """Lets a message through only the first time any process of the run logs it."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def filter(self, record: logging.LogRecord) -> bool:
        key = " ".join(record.getMessage().splitlines())
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError:
            return True  # better twice than never
        with os.fdopen(fd, "r+", encoding="utf-8", errors="replace") as shown:
            fcntl.flock(shown, fcntl.LOCK_EX)  # read and add as one step
            if key in shown.read().splitlines():
                return False
            shown.write(key + "\n")
        return True
