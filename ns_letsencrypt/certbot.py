"""certbot's hook contracts -> the same challenge, deploy and reconcile code as dehydrated.

``ns-letsencrypt certbot auth|cleanup|deploy`` is what certbot runs as ``--manual-auth-hook``,
``--manual-cleanup-hook`` and ``--deploy-hook``; ``reconcile --certbot-dir`` compares every
lineage under ``live/`` with the appliance.

certbot runs the auth hook once per challenge, one process each, all before it asks the CA to
validate, and says how many are still to come (``CERTBOT_REMAINING_CHALLENGES``). So the calls
before the last only queue their challenge in a private spool file (no NITRO request), and the
last call deploys the whole batch through the dehydrated hook's ``deploy_challenge``: one read
and three bulk writes, whatever the number of names. Its stdout names the batch; certbot hands
that to the cleanup call of the same challenge (``CERTBOT_AUTH_OUTPUT``), which removes the
batch in one go, while the other cleanup calls have nothing to do.

Which backend serves a challenge is decided in :func:`choose_backend` only (HTTP-01 through
responder objects today; a DNS-01 backend joins there).

certbot shows what a hook writes to stderr as a warning, even on success, so these commands
log warnings and errors only unless ``-v`` is given; a failure is one line and its exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from . import appliance, challenge, deploy, hook
from .config import Settings
from .errors import ChallengeError, ConfigError, InputError, NitroApiError
from .naming import short_hash
from .reconcile import CertDir, ReconcileResult, reconcile_dirs
from .session import open_client

logger = logging.getLogger(__name__)

SettingsLoader = Callable[[], Settings]

# Queued challenges older than this belong to a certbot run that died between two auth calls
# (the calls of one run follow each other within seconds: nothing waits between them).
SPOOL_STALE_SECONDS = 15 * 60
BATCH_HEAD = "ns-letsencrypt http-01 challenges:"
_BATCH_ITEM = re.compile(r"(\S+)=([A-Za-z0-9_-]+)")
LINEAGE_FILES = ("cert.pem", "chain.pem", "privkey.pem")
STALE_ONLY = "-"  # an owner no object carries: the sweep then removes stale objects only


# -- what certbot hands over ----------------------------------------------------------------


@dataclass(frozen=True)
class CertbotChallenge:
    """One challenge as certbot's manual plugin describes it in the environment."""

    kind: str  # "http-01" (CERTBOT_TOKEN set) or "dns-01"
    domain: str
    validation: str  # http-01: the key authorization; dns-01: the TXT value
    token: str  # "" for dns-01
    remaining: int  # challenges of this run still to come after this one
    all_domains: str  # CERTBOT_ALL_DOMAINS, the same for every call of one run

    def as_http01(self) -> challenge.Challenge:
        return challenge.Challenge(self.domain, self.token, self.validation)


def challenge_from_env(env: Mapping[str, str]) -> CertbotChallenge:
    """The challenge of this hook call; a missing variable means certbot did not start us."""
    domain = env.get("CERTBOT_IDENTIFIER") or env.get("CERTBOT_DOMAIN") or ""
    validation = env.get("CERTBOT_VALIDATION", "")
    remaining = env.get("CERTBOT_REMAINING_CHALLENGES", "")
    if not domain or not validation or not remaining.isdigit():
        raise ConfigError("CERTBOT_DOMAIN, CERTBOT_VALIDATION or CERTBOT_REMAINING_CHALLENGES "
                          "is not set", hint="run this as certbot's --manual-auth-hook or "
                                             "--manual-cleanup-hook")
    token = env.get("CERTBOT_TOKEN", "")
    all_domains = env.get("CERTBOT_ALL_IDENTIFIERS") or env.get("CERTBOT_ALL_DOMAINS") or domain
    return CertbotChallenge("http-01" if token else "dns-01", domain.lower(), validation, token,
                            int(remaining), all_domains)


# -- challenge backends -------------------------------------------------------------------


class Backend(Protocol):
    """Deploys and removes one batch of challenges of one type."""

    def check(self, item: CertbotChallenge) -> None:
        """Refuse what this backend cannot serve, before it is queued."""

    def deploy(self, items: Sequence[CertbotChallenge]) -> str:
        """Serve every challenge; returns the stdout line that names them for cleanup."""

    def batch(self, output: str, item: CertbotChallenge) -> list[CertbotChallenge]:
        """The challenges the auth hook's ``output`` names, ``item`` at least."""

    def clean(self, items: Sequence[CertbotChallenge]) -> list[str]:
        """Remove them; returns the problems met (the sweep retries those)."""


class Http01Backend:
    """HTTP-01 through responder objects: the dehydrated hook's own challenge code."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def check(self, item: CertbotChallenge) -> None:
        challenge.validate([item.as_http01()])

    def deploy(self, items: Sequence[CertbotChallenge]) -> str:
        triples = [a for i in items for a in (i.domain, i.token, i.validation)]
        hook.deploy_challenge(triples, lambda: self.settings)
        return BATCH_HEAD + " " + " ".join(f"{i.domain}={i.token}" for i in items)

    def batch(self, output: str, item: CertbotChallenge) -> list[CertbotChallenge]:
        found = {item.token: item}
        for line in output.splitlines():
            if line.startswith(BATCH_HEAD):
                for domain, token in _BATCH_ITEM.findall(line[len(BATCH_HEAD):]):
                    found.setdefault(token, CertbotChallenge(
                        item.kind, domain.lower(), "", token, 0, item.all_domains))
        return list(found.values())

    def clean(self, items: Sequence[CertbotChallenge]) -> list[str]:
        with open_client(self.settings, brief=True) as client:
            return challenge.clean(client, self.settings, [i.as_http01() for i in items])


def choose_backend(item: CertbotChallenge, settings: Settings) -> Backend:
    """The backend serving ``item``'s challenge type: the one place a new type is added
    (a dns-01 backend answers here when NS_DNS is set)."""
    if item.kind == "http-01":
        return Http01Backend(settings)
    raise ConfigError(f"certbot asked for a {item.kind} challenge for {item.domain}; this "
                      "version answers http-01 only",
                      hint="run certbot with --preferred-challenges http-01")


# -- the spool: challenges queued until the last auth call of a run -------------------------


def spool_dir() -> Path:
    """A directory only this user can read, made on first use (shared by the hook calls)."""
    path = Path(tempfile.gettempdir()) / f"ns-letsencrypt-certbot-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid()
            or info.st_mode & 0o077):
        raise ConfigError(f"{path} is not a private directory of this user",
                          hint="remove it; ns-letsencrypt makes it again with mode 700")
    return path


@contextlib.contextmanager
def _spool(item: CertbotChallenge) -> Iterator[tuple[Path, list[dict[str, object]]]]:
    """The queue of ``item``'s run, locked; yields (file, entries) to read and change."""
    path = spool_dir() / f"{short_hash(item.all_domains, 16)}.json"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        text = handle.read()
        try:
            entries = json.loads(text) if text.strip() else []
        except ValueError:
            entries = []
        yield path, entries
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(entries))


def _current(entries: list[dict[str, object]], item: CertbotChallenge) -> list[dict[str, object]]:
    """The queued entries that belong to ``item``'s run: a countdown ending just above it."""
    if not entries:
        return []
    last = entries[-1]
    fresh = time.time() - float(str(last.get("time", 0))) < SPOOL_STALE_SECONDS
    if fresh and last.get("remaining") == item.remaining + 1:
        return entries
    logger.info("dropping %d queued challenge(s) of an earlier, unfinished certbot run",
                len(entries))
    return []


def _entry(item: CertbotChallenge) -> dict[str, object]:
    return {"kind": item.kind, "domain": item.domain, "validation": item.validation,
            "token": item.token, "remaining": item.remaining, "time": time.time()}


def _from_entry(entry: Mapping[str, object], item: CertbotChallenge) -> CertbotChallenge:
    return CertbotChallenge(str(entry["kind"]), str(entry["domain"]), str(entry["validation"]),
                            str(entry["token"]), int(str(entry["remaining"])), item.all_domains)


# -- the hooks ------------------------------------------------------------------------------


def auth(env: Mapping[str, str], load_settings: SettingsLoader) -> int:
    """``--manual-auth-hook``: queue this challenge, or deploy the run's batch when it is last."""
    item = challenge_from_env(env)
    settings = load_settings()
    backend = choose_backend(item, settings)
    backend.check(item)  # a bad challenge fails in its own call, before anything is sent
    with _spool(item) as (path, entries):
        queued = [_from_entry(e, item) for e in _current(entries, item)]
        entries[:] = [*(_entry(q) for q in queued), _entry(item)]
        if item.remaining:
            logger.info("%s: queued (%d more challenge(s) to come)", item.domain, item.remaining)
            return 0
        entries.clear()  # the batch is handed over now, whether or not deploying succeeds
        batch = [*queued, item]
    path.unlink(missing_ok=True)
    print(backend.deploy(batch))
    return 0


def cleanup(env: Mapping[str, str], load_settings: SettingsLoader) -> int:
    """``--manual-cleanup-hook``: the call of the batch's last challenge removes the batch."""
    item = challenge_from_env(env)
    if item.remaining:
        return 0  # deployed and removed with the run's last challenge
    settings = load_settings()
    backend = choose_backend(item, settings)
    batch = backend.batch(env.get("CERTBOT_AUTH_OUTPUT", ""), item)
    problems = backend.clean(batch)
    if problems:
        raise ChallengeError(f"{len(problems)} challenge object(s) not removed: "
                             + "; ".join(problems),
                             hint="the daily 'ns-letsencrypt reconcile --certbot-dir' sweeps "
                                  "them, or run 'ns-letsencrypt sweep'")
    return 0


def deploy_lineage(env: Mapping[str, str], load_settings: SettingsLoader) -> int:
    """``--deploy-hook``: install ``RENEWED_LINEAGE`` and save the configuration once."""
    lineage = env.get("RENEWED_LINEAGE", "")
    if not lineage:
        raise ConfigError("RENEWED_LINEAGE is not set", hint="run this as certbot's "
                                                             "--deploy-hook")
    cert = lineage_certificate(Path(lineage))
    settings = load_settings()
    with open_client(settings) as client:
        # The challenges of this run changed the running configuration already, so an
        # "unsaved changes" warning would only ever name our own work.
        bundle = deploy.load_bundle(*_files(cert), cert.domain, cert.alias)
        result = deploy.Deployer(client, settings, report_unsaved=False).deploy(bundle)
        appliance.finish_run(client, settings, result.changed)
    print(f"{result.name}: certkey {result.certkey} {result.action} (serial {result.serial})")
    return 0


# -- lineages -------------------------------------------------------------------------------


def lineage_certificate(directory: Path) -> CertDir:
    """One certbot lineage as a certificate: its name is the lineage name (NS_BIND key).

    Raises:
        InputError: the directory lacks one of certbot's files.
    """
    missing = [f for f in LINEAGE_FILES if not (directory / f).is_file()]
    if missing:
        raise InputError(f"{directory}: no {', '.join(missing)}",
                         hint="pass certbot's live/<name> directory (RENEWED_LINEAGE)")
    # the lineage name takes the place of dehydrated's alias: it names the certkey
    return CertDir(name=directory.name, directory=directory, domain=None, alias=directory.name)


def lineages(config_dir: Path) -> list[CertDir]:
    """Every lineage under ``<config_dir>/live`` (certbot's README file there is skipped)."""
    live = config_dir / "live"
    if not live.is_dir():
        raise InputError(f"{live} does not exist", hint="pass certbot's --config-dir "
                                                        "(default /etc/letsencrypt)")
    return [lineage_certificate(d) for d in sorted(live.iterdir()) if d.is_dir()]


def _files(cert: CertDir) -> tuple[str, str, str]:
    return (str(cert.directory / "privkey.pem"), str(cert.directory / "cert.pem"),
            str(cert.directory / "chain.pem"))


def reconcile_lineages(settings: Settings, config_dir: Path,
                       deployer: deploy.Deployer) -> ReconcileResult:
    """Sweep leftover challenge objects, then reconcile every lineage (one process)."""
    certs = lineages(config_dir)  # before any request: a wrong directory sends nothing
    try:
        # A daily timer may run while certbot validates: judge even this installation's
        # objects by age (the sweep's grace), never removing a challenge still in use.
        challenge.sweep(deployer.client, settings, owner=STALE_ONLY)
    except NitroApiError as exc:
        logger.warning("sweeping leftover challenge objects failed: %s", exc)
    return reconcile_dirs(deployer.client, settings, certs, deployer=deployer)


# -- command line ---------------------------------------------------------------------------

HOOKS: dict[str, Callable[[Mapping[str, str], SettingsLoader], int]] = {
    "auth": auth,
    "cleanup": cleanup,
    "deploy": deploy_lineage,
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hook", choices=list(HOOKS),
                        help="auth: --manual-auth-hook; cleanup: --manual-cleanup-hook; "
                             "deploy: --deploy-hook")


def run(args: argparse.Namespace, load_settings: SettingsLoader) -> int:
    if not (args.verbose or args.debug or args.quiet):
        # certbot turns any stderr output into a warning: stay silent when all is well
        logging.getLogger("ns_letsencrypt").setLevel(logging.WARNING)
    return HOOKS[args.hook](os.environ, load_settings)

