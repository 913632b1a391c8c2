"""Several appliances in one run (``NS_TARGETS``): which target gets what, and the loop over them.

A run holds a list of targets, each one appliance or one HA pair with its own Settings (derived
in config.py from the ``NS_<T>_*`` settings), its own NITRO session and inventory; a standalone
box is the list of one (``NS_URL``). Operations take one target's Settings; this module runs an
operation over the targets it concerns and combines the outcomes:

- challenges (``deploy_challenge``) go to every target whose role includes them, before the CA
  is asked to validate; one failing target fails the challenge (exit 7), and what was deployed
  is cleaned on all of them. dns-01 values likewise with NS_DNS=adns (each target's own ADNS);
  an outside DNS server (rfc2136, lexicon) gets them once;
- certificates (``deploy_cert``, ``exit_hook``'s reconciliation, ``deploy``) go to every target
  whose role includes them, in parallel (one thread per target: NITRO work is waiting for I/O);
  a failing target does not stop the others; the run fails with exit 8 naming each failed
  target and step, and the next run's reconciliation converges it without a new issuance.

Log lines written while working for a target start with ``[<target>]``. Every target first goes
through :func:`ha.follow_primary` (its NS_URL may name an HA secondary).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional

from . import ha
from .config import Settings
from .errors import (
    ChallengeError,
    DeployError,
    ExitStatus,
    NitroAuthError,
    NitroConnectionError,
    NsLeError,
)

logger = logging.getLogger(__name__)

SettingsLoader = Callable[[], Settings]
HookHandler = Callable[[Sequence[str], SettingsLoader], int]

CHALLENGE_HOOKS = frozenset({"deploy_challenge", "clean_challenge"})
CERT_HOOKS = frozenset({"deploy_cert", "unchanged_cert"})
EVERY_TARGET_HOOKS = frozenset({"startup_hook", "exit_hook"})

_current = threading.local()


def of(settings: Settings) -> list[Settings]:
    """The run's targets: the NS_TARGETS list, or the one appliance of NS_URL."""
    return list(settings.targets) or [settings]


def takes_challenges(target: Settings) -> bool:
    return target.role in ("all", "challenges")


def takes_certs(target: Settings) -> bool:
    return target.role in ("all", "certs")


def label(target: Settings) -> str:
    return target.target or target.url


@dataclass
class Outcome:
    """What one operation did on one target."""

    target: Settings
    status: int = 0
    error: Optional[NsLeError] = None

    @property
    def failed(self) -> bool:
        return self.status != 0 or self.error is not None

    @property
    def step(self) -> str:
        if isinstance(self.error, DeployError):
            return self.error.step
        if isinstance(self.error, NitroConnectionError):
            return "connect"
        if isinstance(self.error, NitroAuthError):
            return "login"
        return "run"

    def describe(self) -> str:
        what = self.error.message if self.error else f"exit status {self.status}"
        if isinstance(self.error, DeployError):
            what = what.split("': ", 1)[-1]  # the step is named here already
        return f"{label(self.target)} (step '{self.step}'): {what}"


def run_on(targets: Sequence[Settings], work: Callable[[Settings], int], *,
           parallel: bool = True) -> list[Outcome]:
    """Run ``work`` for each target (each on its primary); never raises for one target."""
    if not parallel or len(targets) <= 1:
        return [_one(target, work) for target in targets]
    with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="target") as pool:
        return list(pool.map(lambda target: _one(target, work), targets))


def _one(target: Settings, work: Callable[[Settings], int]) -> Outcome:
    _current.name = target.target
    try:
        return Outcome(target, work(ha.follow_primary(target)))
    except NsLeError as exc:
        logger.error("%s", exc)
        return Outcome(target, error=exc)
    finally:
        _current.name = ""


def run_hook(name: str, handler: HookHandler, args: Sequence[str],
             load_settings: SettingsLoader) -> int:
    """Run one dehydrated hook over the targets it concerns (NS_TARGETS), else as before."""
    concerned = name in CHALLENGE_HOOKS | CERT_HOOKS | EVERY_TARGET_HOOKS
    if concerned:
        try:
            settings: Optional[Settings] = load_settings()
        except NsLeError:
            settings = None  # the handler reports it at the moment it needs the settings
    if not concerned or settings is None:
        return handler(args, ha.primary_loader(load_settings,
                                                lenient=name == "clean_challenge"))
    if not settings.targets:
        loaded = settings  # read once: the configuration may log warnings
        return handler(args, ha.primary_loader(lambda: loaded,
                                                lenient=name == "clean_challenge"))
    _tag_log_lines()
    if name in CHALLENGE_HOOKS and os.environ.get("CHALLENGETYPE") == "dns-01":
        return _dns_challenges(name, handler, args, settings)
    if name in CHALLENGE_HOOKS:
        return _challenges(name, handler, args,
                           [t for t in settings.targets if takes_challenges(t)])
    if name in CERT_HOOKS:
        chosen = [t for t in settings.targets if takes_certs(t)]
    else:
        chosen = list(settings.targets)
    outcomes = run_on(chosen, lambda target: handler(args, lambda: target))
    return combine(name, outcomes)


def over_challenge_targets(name: str, load_settings: SettingsLoader,
                           work: Callable[[SettingsLoader], int]) -> int:
    """A challenge command (``clean``, ``sweep``) on the appliance, or on every challenge
    target; the first non-zero status wins, failures are named together."""
    settings = load_settings()
    if not settings.targets:
        return work(ha.primary_loader(lambda: settings))
    outcomes = run_on([t for t in settings.targets if takes_challenges(t)],
                      lambda target: work(lambda: target), parallel=False)
    errors = [o for o in outcomes if o.error is not None]
    if errors:
        return combine(name, errors)
    return max((o.status for o in outcomes), default=0)


def _dns_challenges(name: str, handler: HookHandler, args: Sequence[str],
                    settings: Settings) -> int:
    """dns-01 values: with NS_DNS=adns every challenge target is authoritative (with GSLB the
    CA may ask any of them), so each publishes on its own ADNS and waits for its own
    services, as http-01 challenges go to each; a DNS server outside the appliances
    (rfc2136, lexicon) gets the values once, through the first challenge target."""
    chosen = [t for t in settings.targets if takes_challenges(t)]
    if any(t.dns == "adns" for t in chosen):
        return _challenges(name, handler, args, chosen)
    first = chosen[0] if chosen else settings.targets[0]
    return combine(name, run_on([first], lambda target: handler(args, lambda: target)))


def _challenges(name: str, handler: HookHandler, args: Sequence[str],
                chosen: Sequence[Settings]) -> int:
    outcomes = run_on(chosen, lambda target: handler(args, lambda: target))
    failed = [o for o in outcomes if o.failed]
    if name == "clean_challenge" or not failed:
        return 0
    clean = [o.target for o in outcomes]
    run_on(clean, lambda target: _clean(handler, args, target))
    raise ChallengeError(
        "the challenge failed on " + "; ".join(o.describe() for o in failed)
        + "; it was removed from every challenge target",
        hint="every target whose role includes challenges must answer it before the CA "
             "validates (the CA may reach any of them)")


def _clean(handler: HookHandler, args: Sequence[str], target: Settings) -> int:
    from .hook import HANDLERS

    return HANDLERS["clean_challenge"](args, lambda: target)


def combine(name: str, outcomes: Sequence[Outcome]) -> int:
    """0 when every target succeeded; else raise naming each failed target and step."""
    failed = [o for o in outcomes if o.failed]
    for outcome in outcomes:
        if not outcome.failed:
            logger.info("%s: target %s done", name, label(outcome.target))
    if not failed:
        return 0
    if name == "startup_hook":
        return max(o.status or int(o.error.exit_status if o.error else 1) for o in failed)
    raise TargetsFailed(
        f"{name} failed on {len(failed)} of {len(outcomes)} targets: "
        + "; ".join(o.describe() for o in failed),
        hint="the other targets are done; the next run's reconciliation converges these "
             "without a new issuance")


class TargetsFailed(NsLeError):
    """Some targets failed (each named with its step); the others are done."""

    exit_status = ExitStatus.DEPLOY


class _TargetTag(logging.Filter):
    """Prefix a log line with ``[<target>]`` when it is written while working for a target."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = getattr(_current, "name", "")
        if name and not getattr(record, "ns_target", None):
            record.ns_target = name
            record.msg = f"[{name}] {record.msg}"
        return True


def _tag_log_lines() -> None:
    for handler in logging.getLogger("ns_letsencrypt").handlers:
        if not any(isinstance(f, _TargetTag) for f in handler.filters):
            handler.addFilter(_TargetTag())
