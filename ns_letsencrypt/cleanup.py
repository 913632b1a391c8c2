"""``ns-letsencrypt cleanup``: remove what ns-letsencrypt left behind on the appliance.

What goes, and only when its name carries one of our prefixes (``certkey_prefix`` for
certkeys and files, ``challenge_prefix`` for responder objects):

1. leftover challenge objects: the responder policies and actions :func:`challenge.sweep`
   removes (ours at once, another installation's once stale; it does the removal too);
2. with ``--staging``: leaf certkeys issued by a staging CA (issuer containing ``STAGING``,
   ``Fake LE`` or ``Pebble``, case-insensitive: Let's Encrypt's staging issuers are named
   "(STAGING) ..." and were "Fake LE ..." before, pebble's are "Pebble ..."). A staging leaf
   that is bound somewhere stays: deploying the production certificate replaces it in place;
3. CA certkeys that no remaining certkey links to and nothing binds (repeated, so a chain of
   intermediates goes at once), unlinked first, removed dependents first;
4. files in ``cert_path`` that no remaining certkey uses.

Also listed, never removed: leaf certkeys of ours that are bound nowhere (e.g. after their
entry left ``NS_BIND``, whose bindings stay: removing them is the admin's call).

A dry run (the default) prints exactly this list; ``--yes`` removes it, holding the same run
lock as the scripts so that no renewal is half-way through, then saves the configuration once.
Local files are never touched; ``--staging`` prints what to remove locally instead.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import json
import logging
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from . import challenge
from .certs import read_certificate
from .config import Settings
from .errors import (
    ConfigError,
    InputError,
    NitroApiError,
    NitroAuthError,
    NitroNotFound,
    NitroPermissionError,
)
from .nitro import JsonObj, NitroClient

logger = logging.getLogger(__name__)

SettingsLoader = Callable[[], Settings]
STAGING_MARKERS = ("staging", "fake le", "pebble")
LOCK_NAME = ".ns-letsencrypt.lock"
NOT_LINKED = 1545  # unlink of a certkey without a link: nothing to do


@dataclass
class Plan:
    """Everything cleanup would remove, in the order it removes it."""

    policies: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    unlink: list[str] = field(default_factory=list)
    certkeys: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # what we chose not to remove, and why
    local: list[str] = field(default_factory=list)  # suggestions for the local side
    unbound: list[str] = field(default_factory=list)  # our leaf certkeys bound nowhere (kept)
    dns_values: list[str] = field(default_factory=list)  # dns-01 TXT values left (issue 11)

    @property
    def empty(self) -> bool:
        return not (self.policies or self.actions or self.certkeys or self.files
                    or self.dns_values)


def is_staging_issuer(issuer: str) -> bool:
    """True for an issuer name of a staging/test CA (see the module docstring)."""
    text = issuer.lower()
    return any(marker in text for marker in STAGING_MARKERS)


# -- planning -------------------------------------------------------------------------


def make_plan(client: NitroClient, settings: Settings, *, staging: bool,
              certs_dir: Optional[Path] = None) -> Plan:
    """Read the appliance (list calls, plus one binding check per removal candidate)."""
    plan = Plan()
    leftovers = challenge.leftovers(client, settings)  # exactly what challenge.sweep removes
    plan.policies, plan.actions = sorted(leftovers.policies), list(leftovers.actions)
    plan.dns_values = _dns_leftovers()
    certkeys = {str(ck["certkey"]): ck for ck in client.get("sslcertkey") if ck.get("certkey")}
    bound = _BindingCache(client)
    doomed: set[str] = set()
    if staging:
        doomed |= _staging_leaves(certkeys, settings, bound, plan)
    doomed |= _orphaned_cas(certkeys, settings, bound, doomed)
    plan.unbound = [name for name, ck in sorted(certkeys.items())
                    if name not in doomed and ck.get("key") and _ours(name, settings)
                    and not bound.places(name)]
    plan.certkeys = removal_order(certkeys, doomed)
    plan.unlink = [name for name in plan.certkeys if certkeys[name].get("linkcertkeyname")]
    kept = [ck for name, ck in certkeys.items() if name not in doomed]
    plan.files = unused_files(client, settings, kept)
    if staging:
        plan.local = local_staging_advice(certs_dir)
    return plan


def _dns_leftovers() -> list[str]:
    """The dns-01 values the state file still lists: "<publisher> <name> <value>"."""
    from .dns import flow as dns_flow

    return [f"{e.kind} {e.name} {e.value}" for e in dns_flow.state_file().entries()]


def _staging_leaves(certkeys: Mapping[str, JsonObj], settings: Settings,
                    bound: _BindingCache, plan: Plan) -> set[str]:
    chosen: set[str] = set()
    for name, ck in sorted(certkeys.items()):
        if not (_ours(name, settings) and ck.get("key")
                and is_staging_issuer(str(ck.get("issuer", "")))):
            continue
        where = bound.places(name)
        if where:
            plan.kept.append(f"{name}: staging certificate bound to {', '.join(where)}; run "
                             "ns-forcerenew.sh with the production CA to replace it in place")
        else:
            chosen.add(name)
    return chosen


def _orphaned_cas(certkeys: Mapping[str, JsonObj], settings: Settings,
                  bound: _BindingCache, doomed: set[str]) -> set[str]:
    """CA certkeys of ours that nothing (left) links to and nothing binds, to a fixed point."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        gone = doomed | found
        linked_to = {str(ck.get("linkcertkeyname")) for name, ck in certkeys.items()
                     if name not in gone and ck.get("linkcertkeyname")}
        for name, ck in sorted(certkeys.items()):
            if (name in gone or not _ours(name, settings) or ck.get("key")
                    or name in linked_to or bound.places(name)):
                continue
            found.add(name)
            changed = True
    return found


def removal_order(certkeys: Mapping[str, JsonObj], doomed: set[str]) -> list[str]:
    """``doomed`` ordered so that a certkey goes before the certkey it links to."""
    order: list[str] = []
    left = set(doomed)
    while left:
        referenced = {str(certkeys[n].get("linkcertkeyname")) for n in left}
        ready = sorted(n for n in left if n not in referenced) or sorted(left)  # loop: any
        order.extend(ready)
        left -= set(ready)
    return order


def unused_files(client: NitroClient, settings: Settings, kept: Sequence[JsonObj]) -> list[str]:
    """Our files in ``cert_path`` that none of the ``kept`` certkeys uses."""
    in_use = {_basename(ck.get(key)) for ck in kept for key in ("cert", "key") if ck.get(key)}
    listing = client.get("systemfile", args={"filelocation": settings.cert_path})
    return sorted(
        str(f["filename"]) for f in listing
        if str(f.get("filename", "")).startswith(settings.certkey_prefix)
        and "DIRECTORY" not in _as_list(f.get("filemode"))
        and str(f["filename"]) not in in_use
    )


def local_staging_advice(certs_dir: Optional[Path]) -> list[str]:
    """Commands for the local side: staging certificates dehydrated would otherwise keep."""
    advice: list[str] = []
    if certs_dir is None or not certs_dir.is_dir():
        return advice
    for cert_file in sorted(certs_dir.glob("*/cert.pem")):
        try:
            issuer = read_certificate(cert_file).issuer
        except InputError:
            continue
        if is_staging_issuer(issuer):
            advice.append(f"rm -r {cert_file.parent}   # issued by {issuer}")
    if advice:
        advice.append("then set the production CA in config.sh, run "
                      "'ns-letsencrypt register --email ...' and ns-cronjob.sh")
    return advice


# -- acting ---------------------------------------------------------------------------


def execute(client: NitroClient, settings: Settings, plan: Plan) -> list[str]:
    """Remove what ``plan`` lists; returns the problems met (each is also logged)."""
    problems: list[str] = []
    if plan.policies or plan.actions:
        challenge.sweep(client, settings)
    if plan.dns_values:
        from .dns import flow as dns_flow

        dns_flow.sweep_quietly(settings, "cleanup")
    for name in plan.unlink:
        problems += _attempt(f"unlink certkey {name}", functools.partial(
            client.action, "sslcertkey", "unlink", {"certkey": name}), ok_codes={NOT_LINKED})
    for name in plan.certkeys:
        problems += _attempt(f"remove certkey {name}",
                             functools.partial(client.delete, "sslcertkey", name))
    for filename in plan.files:
        problems += _attempt(f"remove file {filename}", functools.partial(
            client.delete, "systemfile", filename, args={"filelocation": settings.cert_path}))
    for problem in problems:
        logger.warning("cleanup: %s", problem)
    return problems


def _attempt(what: str, operation: Callable[[], Any],
             ok_codes: Collection[int] = frozenset()) -> list[str]:
    try:
        operation()
    except NitroNotFound:
        logger.debug("%s: already gone", what)
    except (NitroAuthError, NitroPermissionError):
        raise  # not this object's problem: every further call would fail the same way
    except NitroApiError as exc:
        if exc.errorcode not in ok_codes:
            return [f"{what}: {exc}"]
    else:
        logger.info("cleanup: %s", what)
    return []


@contextlib.contextmanager
def run_lock(home: Path) -> Iterator[None]:
    """Hold the scripts' run lock (flock on <home>/.ns-letsencrypt.lock) or refuse at once."""
    path = home / LOCK_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"a renewal run holds {path}",
                              hint="run cleanup again when ns-cronjob.sh has finished") from None
        yield
    finally:
        os.close(fd)


# -- rendering ------------------------------------------------------------------------


def render(plan: Plan, *, done: bool) -> str:
    """The plan as text: one line per object, grouped, with what was kept and local advice."""
    verb = "removed" if done else "would remove"
    lines: list[str] = []
    groups = [("responder policy", plan.policies), ("responder action", plan.actions),
              ("certkey", plan.certkeys), ("file", plan.files),
              ("dns-01 TXT value", plan.dns_values)]
    for label, names in groups:
        lines.extend(f"{verb} {label} {name}" for name in names)
    if plan.empty:
        lines.append("nothing to clean up")
    lines.extend(f"kept {note}" for note in plan.kept)
    lines.extend(f"unbound certkey {name}: bound to no vserver or service (kept; remove it by "
                 "hand when no longer needed)" for name in plan.unbound)
    if plan.local:
        lines.append("locally (not done by this command):")
        lines.extend(f"  {advice}" for advice in plan.local)
    if not done and not plan.empty:
        lines.append("dry run: nothing was changed; run again with --yes to remove the above")
    return "\n".join(lines)


# -- helpers --------------------------------------------------------------------------


class _BindingCache:
    """Where a certkey is bound (vservers, services), read once per certkey on demand."""

    def __init__(self, client: NitroClient) -> None:
        self._client = client
        self._seen: dict[str, list[str]] = {}

    def places(self, certkey: str) -> list[str]:
        if certkey not in self._seen:
            self._seen[certkey] = self._read(certkey)
        return self._seen[certkey]

    def _read(self, certkey: str) -> list[str]:
        try:
            aggregates = self._client.get("sslcertkey_binding", certkey)
        except NitroNotFound:
            return []
        places: list[str] = []
        for aggregate in aggregates:
            for key, rows in aggregate.items():
                if key.startswith("sslcertkey_") and isinstance(rows, list):
                    places += [_binding_target(row) for row in rows if isinstance(row, dict)]
        return places


def _binding_target(row: Mapping[str, Any]) -> str:
    for key in ("servername", "vservername", "servicename", "monitorname", "ocspresponder"):
        if row.get(key):
            return str(row[key])
    return "something"


def _ours(name: str, settings: Settings) -> bool:
    return name.startswith(settings.certkey_prefix)


def _basename(value: Any) -> str:
    return str(value).rsplit("/", 1)[-1]


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)] if value else []


# -- command glue ---------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``ns-letsencrypt cleanup``."""
    parser.add_argument("--yes", action="store_true",
                        help="remove what the dry run lists (default: only list it)")
    parser.add_argument("--staging", action="store_true",
                        help="also remove unbound certkeys issued by a staging CA")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument("--certs-dir", type=Path, metavar="DIR",
                        help="dehydrated's CERTDIR, for --staging advice (default: "
                             "<NS_LE_HOME or install dir>/certs)")


def run(args: argparse.Namespace, load_settings: SettingsLoader) -> int:
    """Plan, print, and with --yes remove; exit 5 when a removal failed."""
    from .appliance import finish_run
    from .errors import ExitStatus
    from .register import home_dir
    from .session import open_client

    settings = load_settings()
    certs_dir = args.certs_dir or home_dir() / "certs"
    lock = run_lock(home_dir()) if args.yes else contextlib.nullcontext()
    problems: list[str] = []
    with lock, open_client(settings) as client:
        plan = make_plan(client, settings, staging=args.staging, certs_dir=certs_dir)
        if args.yes and not plan.empty:
            problems = execute(client, settings, plan)
            finish_run(client, settings, changed=True)
    if args.json:
        print(json.dumps({**asdict(plan), "done": bool(args.yes), "problems": problems},
                         indent=2))
    else:
        print(render(plan, done=bool(args.yes)))
        for problem in problems:
            print(f"FAILED {problem}")
    return int(ExitStatus.APPLIANCE if problems else ExitStatus.OK)
