"""Readiness checks as values: the Check record, the exit status a list of them implies, and
their two renderings (one human line per check, or one JSON object).

Probes (``appliance.py``) produce Checks; commands (``test``, later ``status``) render them.
Nothing here talks to the appliance.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from .errors import ExitStatus


class Level(str, enum.Enum):
    """How a check came out: OK and WARN leave the exit status at 0, FAIL does not."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """One line of a readiness report."""

    name: str  # short identifier, e.g. "nitro", "ha", "vserver-state"
    level: Level
    detail: str  # what was found, one sentence
    hint: Optional[str] = None  # what the admin should do about it
    status: ExitStatus = ExitStatus.OK  # the exit status a FAIL stands for
    value: Optional[str] = None  # the probed value itself (firmware, HA state), for --json

    @property
    def ok(self) -> bool:
        """True unless the check failed (warnings are ok)."""
        return self.level is not Level.FAIL


def passed(name: str, detail: str, value: Optional[str] = None) -> Check:
    """A check that found everything in order."""
    return Check(name, Level.OK, detail, value=value)


def warning(name: str, detail: str, hint: Optional[str] = None) -> Check:
    """A check that found something worth knowing that does not stop the job."""
    return Check(name, Level.WARN, detail, hint)


def failed(name: str, detail: str, hint: Optional[str], status: ExitStatus) -> Check:
    """A check that found the appliance (or the configuration) unfit for the job."""
    return Check(name, Level.FAIL, detail, hint, status)


def overall_status(checks: Sequence[Check]) -> ExitStatus:
    """The exit status of the first failed check, or OK when none failed."""
    for check in checks:
        if not check.ok:
            return check.status
    return ExitStatus.OK


_LABELS = {Level.OK: "ok", Level.WARN: "WARN", Level.FAIL: "FAIL"}


def render_text(checks: Sequence[Check]) -> str:
    """One line per check (``ok``/``WARN``/``FAIL``, name, detail, hint), then a summary."""
    width = max((len(check.name) for check in checks), default=0)
    lines = []
    for check in checks:
        line = f"{_LABELS[check.level]:<4}  {check.name:<{width}}  {check.detail}"
        if check.hint:
            line += f" (hint: {check.hint})"
        lines.append(line)
    lines.append(_summary(checks))
    return "\n".join(lines)


def _summary(checks: Sequence[Check]) -> str:
    failures = sum(1 for check in checks if check.level is Level.FAIL)
    warnings = sum(1 for check in checks if check.level is Level.WARN)
    if failures:
        return f"NOT READY: {failures} failed, {warnings} warning(s)"
    return f"ready ({warnings} warning(s))" if warnings else "ready"


def as_json(checks: Sequence[Check], extra: Optional[Mapping[str, Any]] = None) -> str:
    """One JSON object: ``checks``, the probed values by check name, and ``exit_status``."""
    document: dict[str, Any] = dict(extra or {})
    document["checks"] = [_check_dict(check) for check in checks]
    document["exit_status"] = int(overall_status(checks))
    return json.dumps(document, indent=2)


def value_of(checks: Sequence[Check], name: str) -> Optional[str]:
    """The probed value of the check called ``name``, if it ran and found one."""
    return next((check.value for check in checks if check.name == name), None)


def _check_dict(check: Check) -> dict[str, Any]:
    return {
        "name": check.name,
        "ok": check.ok,
        "level": check.level.value,
        "detail": check.detail,
        "hint": check.hint,
        "exit_status": int(check.status) if not check.ok else 0,
    }
