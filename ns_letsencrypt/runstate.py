"""Run state: what the processes of one scheduled run share with each other, and nothing more.

``ns-cronjob.sh`` and ``ns-forcerenew.sh`` give every run a private directory (``NS_LE_RUN_DIR``,
mode 700, removed by their exit trap). dehydrated starts one hook process per hook call, so
without it every process would log in and read the same things again. In that directory, per
appliance and user (a short hash of both names the files), this module keeps:

``session-<id>.json`` (mode 600)
    The NITRO session: the first process that needs the appliance logs in (with an inactivity
    timeout of :data:`SESSION_TIMEOUT`, so a session left by a killed run dies soon), the others
    reuse it, whoever meets an expired session logs in again and replaces it. The run's last
    user ends it: ``exit_hook`` when nothing follows it, else ``ns-letsencrypt end-run`` from the
    scripts' exit trap (which also ends the session of a crashed run the next time).
``cache-<id>.json`` (mode 600)
    Results that cannot change within a run, read once: the answers of :data:`READ_ONCE`
    (firmware, configuration type, HA nodes, features, the challenge vserver); whether the
    startup sweep ran and whether the checks that matter for challenges passed; the challenge
    tokens deployed and not yet cleaned (``exit_hook`` sweeps again only when one is left); the
    certificate inventory as the last deploy left it, with the files this run uploaded (the
    final reconciliation starts from it, and lists the certificate directory only when it
    needs a file this run did not write).

Without ``NS_LE_RUN_DIR`` (dehydrated or a command run by hand) :func:`current` is None and
every process logs in, reads what it needs and logs out, as before. The session id is a
secret: it is only ever written to the session file and sent in the Cookie header.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Optional

from .config import Settings

logger = logging.getLogger(__name__)

RUN_DIR_ENV = "NS_LE_RUN_DIR"
# Seconds of inactivity after which the appliance drops the run's session: long enough for the
# CA's validation between two hook calls, short enough that a session leaked by a killed run
# is gone soon (300 is the documented minimum). A longer pause only costs one new login.
SESSION_TIMEOUT = 600
# GET answers that cannot change within a run (resource names; a name or query is part of the
# key). nsconfig is read for its systemtype (and, at the start, configchanged).
READ_ONCE = frozenset({"nsversion", "nsconfig", "hanode", "nsfeature", "lbvserver", "csvserver"})
SWEPT = "swept"
CHALLENGE_CHECKS = "challenge-checks-passed"
PENDING = "pending-challenges"
INVENTORY = "inventory"


def current(settings: Settings) -> Optional[RunState]:
    """The run state of the scheduled run this process belongs to, or None outside one."""
    directory = os.environ.get(RUN_DIR_ENV)
    if not directory:
        return None
    return RunState.open(Path(directory), settings.url, settings.username)


def target_id(url: str, username: str) -> str:
    """Short stable id of one appliance and user (file names; never the names themselves)."""
    return hashlib.sha256(f"{url.rstrip('/')}\n{username}".encode()).hexdigest()[:16]


class RunState:
    """The run directory's session file and read-once cache for one appliance and user."""

    def __init__(self, directory: Path, url: str, username: str) -> None:
        self.directory = directory
        self.url = url.rstrip("/")
        self.username = username
        ident = target_id(url, username)
        self.session_file = directory / f"session-{ident}.json"
        self.cache_file = directory / f"cache-{ident}.json"
        self._cache: Optional[dict[str, Any]] = None

    @classmethod
    def open(cls, directory: Path, url: str, username: str) -> Optional[RunState]:
        """The run state in ``directory``; None (and a warning) when it is not private."""
        problem = _private_dir_problem(directory)
        if problem:
            logger.warning("%s=%s %s: nothing is shared between the hook processes of this "
                           "run", RUN_DIR_ENV, directory, problem)
            return None
        return cls(directory, url, username)

    # -- the session (nitro.SessionStore) ---------------------------------------------------

    def load_token(self) -> Optional[str]:
        """The run's session id, when one was kept for this appliance and user."""
        data = _read_json(self.session_file)
        if not data or data.get("url") != self.url or data.get("user") != self.username:
            return None
        token = data.get("sessionid")
        return str(token) if token else None

    def save_token(self, token: str) -> None:
        """Keep a new session id for the following processes of the run."""
        _write_json(self.session_file, {"url": self.url, "user": self.username,
                                        "sessionid": token})

    def forget_token(self) -> None:
        """The session has ended (logged out): nobody may reuse it."""
        self.session_file.unlink(missing_ok=True)

    @property
    def login_timeout(self) -> int:
        return SESSION_TIMEOUT

    # -- read-once answers (nitro.ReadCache) ------------------------------------------------

    def lookup(self, resource: str, key: str) -> Optional[list[dict[str, Any]]]:
        """A GET answer read earlier in this run, for the resources of :data:`READ_ONCE`."""
        if resource not in READ_ONCE:
            return None
        found = self._entries().get("get", {}).get(key)
        return list(found) if isinstance(found, list) else None

    def store(self, resource: str, key: str, items: list[dict[str, Any]]) -> None:
        """Remember a GET answer of a :data:`READ_ONCE` resource for the rest of the run."""
        if resource in READ_ONCE:
            entries = self._entries()
            entries.setdefault("get", {})[key] = items
            self._save()

    # -- facts about the run ----------------------------------------------------------------

    def get(self, name: str, default: Any = None) -> Any:
        return self._entries().get(name, default)

    def put(self, name: str, value: Any) -> None:
        self._entries()[name] = value
        self._save()

    def add_pending(self, tokens: list[str]) -> None:
        """Challenges about to be deployed: exit_hook sweeps until they are cleaned."""
        self.put(PENDING, sorted(set(self.get(PENDING, [])) | set(tokens)))

    def done_pending(self, tokens: list[str]) -> None:
        """Challenges removed completely."""
        self.put(PENDING, sorted(set(self.get(PENDING, [])) - set(tokens)))

    def _entries(self) -> dict[str, Any]:
        if self._cache is None:
            data = _read_json(self.cache_file)
            fits = data and data.get("url") == self.url and data.get("user") == self.username
            self._cache = dict(data.get("entries", {})) if fits and data else {}
        return self._cache

    def _save(self) -> None:
        _write_json(self.cache_file, {"url": self.url, "user": self.username,
                                      "entries": self._entries()})


def _private_dir_problem(directory: Path) -> Optional[str]:
    try:
        info = directory.lstat()
    except OSError:
        return "does not exist"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    if info.st_uid != os.getuid():
        return "belongs to another user"
    if info.st_mode & 0o077:
        return "is readable or writable by others (it must be mode 700)"
    return None


def _read_json(path: Path) -> Optional[dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable run state %s (%s)", path.name, type(exc).__name__)
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (temporary file of mode 600, then rename): a reader never sees half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:  # mkstemp creates the file with mode 600
            json.dump(data, out)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- the certificate inventory ------------------------------------------------------------


def seed_inventory(run: Optional[RunState], deployer: Any, with_files: bool) -> None:
    """Start ``deployer`` (a deploy.Deployer) from the inventory an earlier process left.

    The certkeys come from the run. When this deployer needs the file list and the earlier
    one did not read it, the list is read the first time a file is asked about that this run
    did not upload: after a run that deployed every certificate it checks, the deploys have
    already put every file in use there (and verified each certkey), so nothing is re-read;
    a certificate deployed before this run still has its files checked on the appliance.
    """
    from functools import partial

    from .deploy import Inventory

    data = run.get(INVENTORY) if run is not None else None
    if not isinstance(data, dict) or not isinstance(data.get("certkeys"), dict):
        return
    files = data.get("files")
    known = set(files) if isinstance(files, list) else None
    confirmed = data.get("confirmed")
    lister = None
    if with_files and known is None:
        lister = partial(Inventory.list_files, deployer.client, deployer.settings)
    deployer.inventory = Inventory(dict(data["certkeys"]), known,
                                   set(confirmed) if isinstance(confirmed, list) else set(),
                                   lister)


def keep_inventory(run: Optional[RunState], deployer: Any) -> None:
    """Leave the deployer's inventory for the run's next process (none after a rollback)."""
    if run is None:
        return
    inventory = deployer.known_inventory
    run.put(INVENTORY, None if inventory is None else {
        "certkeys": inventory.certkeys,
        "files": sorted(inventory.files) if inventory.files is not None else None,
        "confirmed": sorted(inventory.confirmed)})
