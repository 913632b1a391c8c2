"""Certificate deployment: upload, certkey add/update, chain linking, rollback, cleanup, save.

Owns getting one dehydrated certificate (cert.pem, privkey.pem, chain.pem) onto the appliance so
that every binding of its certkey serves it with the complete chain, in a safe order:

1. validate everything locally (key matches, chain is in order): a bad input sends nothing;
2. read what the appliance has (all certkeys in one GET) and plan; equal state is a no-op;
3. upload the new files under new, content-derived names (never overwriting a file);
4. add each missing intermediate as its own CA certkey (reusing one that holds the same
   certificate under any name) and link intermediate -> next intermediate;
5. add the certkey, or ``update`` it in place (bindings stay), and link it to its issuer;
6. verify with a GET (serial and link);
7. only then delete what nothing references any more: old files, and CA certkeys of ours once
   they have expired (a superseded but valid intermediate stays for later renewals).

A failure in steps 3-6 undoes what this run did (in reverse), so the previous certificate, key
and link keep serving, and raises :class:`DeployError` naming the step. Cleanup failures are
only logged. The configuration is saved once per run by :func:`appliance.finish_run`.

Public interface (used by ``hook.py``, ``reconcile.py``, ``ns-copytons.py``):
``deploy_cert``, :class:`Deployer` (one run, many certificates), ``load_bundle``.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Optional

from . import appliance, bindings, certs, ha, naming, runlog, served
from .config import Settings
from .errors import (
    ConfigError,
    DeployError,
    InputError,
    NitroApiError,
    NitroAuthError,
    NitroError,
    NitroPermissionError,
    NsLeError,
)
from .nitro import JsonObj, NitroClient

logger = logging.getLogger(__name__)

# The appliance's expiry alarm (SNMP) fires this many days before expiry: late enough that a
# normal renewal (at about a third of the lifetime left) never triggers it, early enough to act.
NOTIFICATION_DAYS = 14
TAG_LEN = 12  # hex digits of a fingerprint in file names: unique per generation, short
_CONTENTS_CLASH = re.compile(r"certkeyName\s+Contents\s*,\s*(.+)$", re.IGNORECASE)
_CN = re.compile(r"CN\s*=\s*([^,/]+)")
_CERTKEY_ATTRS = ("certkey", "cert", "key", "serial", "subject", "issuer", "linkcertkeyname",
                  "publickey", "daystoexpiration")
ALREADY_GONE = frozenset({258, 1540})
NOT_LINKED = 1545
FILE_EXISTS = 1642
DOMAIN_CHANGED = 3585
REFERENCED = 1541


# -- what dehydrated gave us ----------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """One certificate generation from dehydrated, validated locally."""

    name: str  # dehydrated's alias, or the first domain of its line
    leaf: certs.Certificate
    key: certs.PrivateKey
    chain: tuple[certs.Certificate, ...]  # intermediates, leaf side first, no root
    source: str  # the cert file, for messages


def load_bundle(
    keyfile: str, certfile: str, chainfile: str, domain: Optional[str] = None,
    alias: Optional[str] = None,
) -> Bundle:
    """Read and cross-check dehydrated's files; raises InputError before anything is sent."""
    leaf = certs.read_certificate(certfile)
    key = certs.read_private_key(keyfile)
    if not certs.key_matches(key, leaf):
        raise InputError(
            f"{keyfile} is not the private key of {certfile}",
            hint="dehydrated's privkey.pem and cert.pem must come from the same issuance",
        )
    chain = certs.read_chain(chainfile)
    parent_of = [leaf, *chain]
    for child, parent in zip(parent_of, chain):
        if not certs.issued_by(child, parent):
            raise InputError(
                f"{chainfile}: certificate '{parent.primary_name}' did not issue "
                f"'{child.primary_name}' (chain out of order or for another certificate)",
                hint="pass dehydrated's chain.pem of the same certificate",
            )
    if not chain:
        # Deploying a leaf without its issuer would serve a broken chain to every client that
        # does not happen to cache the intermediate: refuse, the old certificate keeps serving.
        raise InputError(
            f"{chainfile} holds no intermediate certificate",
            hint="pass dehydrated's chain.pem of the same certificate",
        )
    name = alias or (domain.strip().lower() if domain else leaf.primary_name)
    return Bundle(name=name, leaf=leaf, key=key, chain=tuple(chain), source=certfile)


# -- what the appliance has ------------------------------------------------------------------


def _base(path: Any) -> str:
    """Certkey file fields may carry the full /nsconfig/ssl/ path on some builds."""
    return str(path or "").rsplit("/", 1)[-1]


def _cn(dn: Any) -> Optional[str]:
    match = _CN.search(str(dn or ""))
    return match.group(1).strip() if match else None


@dataclass
class Inventory:
    """The appliance's certkeys (and optionally the files in the cert directory), kept current
    by the deployer as it changes them, so many certificates cost one GET each."""

    certkeys: dict[str, JsonObj]
    files: Optional[set[str]] = None  # None: not listed; trust that referenced files exist
    # Issue 13 (request budgets): files this run uploaded (or found with the same content), so
    # known to exist; and, for an inventory handed on within a run, the listing to read the
    # first time a file outside them is asked about (runstate.seed_inventory).
    confirmed: set[str] = field(default_factory=set)
    lister: Optional[Callable[[], set[str]]] = field(default=None, repr=False)

    @classmethod
    def load(cls, client: NitroClient, settings: Settings, *, with_files: bool) -> Inventory:
        items = client.get("sslcertkey", attrs=_CERTKEY_ATTRS)
        found = {str(item["certkey"]): item for item in items if item.get("certkey")}
        return cls(found, cls.list_files(client, settings) if with_files else None)

    @staticmethod
    def list_files(client: NitroClient, settings: Settings) -> set[str]:
        """The file names in the certificate directory (one GET)."""
        listing = client.get("systemfile", args={"filelocation": settings.cert_path})
        return {str(f.get("filename")) for f in listing if "DIRECTORY" not in
                (f.get("filemode") or [])}

    def find_certificate(self, cert: certs.Certificate) -> Optional[str]:
        """The certkey holding this certificate (same serial and names), under any name."""
        serial = certs.normalize_serial(cert.serial)
        for name, obj in self.certkeys.items():
            if certs.normalize_serial(str(obj.get("serial", ""))) != serial:
                continue
            subject, issuer = _cn(obj.get("subject")), _cn(obj.get("issuer"))
            if subject not in (None, cert.common_name):
                continue
            if issuer not in (None, cert.issuer_common_name):
                continue
            return name
        return None

    def link_of(self, name: str) -> Optional[str]:
        obj = self.certkeys.get(name) or {}
        return str(obj["linkcertkeyname"]) if obj.get("linkcertkeyname") else None

    def linked_from(self, name: str) -> list[str]:
        return [n for n in self.certkeys if self.link_of(n) == name]

    def file_users(self, filename: str) -> list[str]:
        return [n for n, o in self.certkeys.items()
                if filename in (_base(o.get("cert")), _base(o.get("key")))]

    def has_file(self, filename: str) -> bool:
        if self.files is None and filename in self.confirmed:
            return True  # written by this run: a listing would only repeat that
        if self.files is None and self.lister is not None:
            self.files = self.lister()  # a file this run did not write: look at the disk
        return self.files is None or filename in self.files

    def chain_names(self, name: str, limit: int = 10) -> list[str]:
        """Names of the CA certkeys linked from ``name``, nearest first (loops cut)."""
        names: list[str] = []
        current = self.link_of(name)
        while current and current not in names and len(names) < limit:
            names.append(current)
            current = self.link_of(current)
        return names


# -- the plan ------------------------------------------------------------------------------


@dataclass
class CaPlan:
    """One intermediate and where it lives (or will live) on the appliance."""

    cert: certs.Certificate
    certkey: str
    file: str
    exists: bool


@dataclass
class Plan:
    bundle: Bundle
    certkey: str
    own: bool  # derived name (ours) rather than an adopted one from NS_CERTKEY_NAMES
    cert_file: str
    key_file: str
    cas: list[CaPlan]
    current: Optional[JsonObj]

    @property
    def links(self) -> list[tuple[str, str]]:
        """(child, parent) certkey pairs the chain needs, leaf first."""
        names = [self.certkey] + [ca.certkey for ca in self.cas]
        return list(zip(names, names[1:]))


@dataclass
class DeployResult:
    """What deploying one certificate did."""

    name: str  # the certificate's name (alias or first domain)
    certkey: str
    action: str  # "added", "updated", "repaired" or "unchanged"
    serial: str
    chain: list[str] = field(default_factory=list)  # CA certkeys, nearest first
    removed: list[str] = field(default_factory=list)  # superseded objects deleted
    bound: list[str] = field(default_factory=list)  # NS_BIND vservers that serve it
    bindings_changed: list[str] = field(default_factory=list)  # what binding wrote

    @property
    def changed(self) -> bool:
        return self.action != "unchanged" or bool(self.bindings_changed)


def certkey_for(settings: Settings, bundle: Bundle) -> tuple[str, bool]:
    """(certkey name, ours?) for a certificate: an NS_CERTKEY_NAMES entry wins."""
    for key in (bundle.name, bundle.leaf.primary_name):
        adopted = settings.certkey_names.get(key)
        if adopted:
            return adopted, False
    return naming.certkey_name(settings.certkey_prefix, bundle.name, settings.certkey_max_len), True


def make_plan(settings: Settings, bundle: Bundle, inventory: Inventory) -> Plan:
    """Names and existing objects for ``bundle``; no requests."""
    certkey, own = certkey_for(settings, bundle)
    cas = []
    for ca in bundle.chain:
        existing = inventory.find_certificate(ca)
        if existing:
            obj = inventory.certkeys[existing]
            cas.append(CaPlan(ca, existing, _base(obj.get("cert")), True))
        else:
            name = naming.ca_certkey_name(settings.certkey_prefix, ca.common_name or "ca",
                                          ca.fingerprint, settings.certkey_max_len)
            cas.append(CaPlan(ca, name, name + ".crt", False))
    return Plan(
        bundle=bundle, certkey=certkey, own=own,
        cert_file=naming.file_name(certkey, bundle.leaf.fingerprint[:TAG_LEN], "crt"),
        key_file=naming.file_name(certkey, bundle.key.fingerprint[:TAG_LEN], "key"),
        cas=cas, current=inventory.certkeys.get(certkey),
    )


def differences(plan: Plan, inventory: Inventory) -> list[str]:
    """Why the appliance does not serve ``plan`` yet; empty when it does."""
    current = plan.current
    if current is None:
        return [f"certkey {plan.certkey} does not exist"]
    reasons = []
    if certs.normalize_serial(str(current.get("serial", ""))) != certs.normalize_serial(
            plan.bundle.leaf.serial):
        reasons.append(f"certkey {plan.certkey} holds serial {current.get('serial')}, "
                       f"not {plan.bundle.leaf.serial}")
    for ca in plan.cas:
        if not ca.exists:
            reasons.append(f"intermediate '{ca.cert.common_name}' is not installed")
    for child, parent in plan.links:
        if inventory.link_of(child) != parent:
            reasons.append(f"{child} is linked to {inventory.link_of(child)}, not {parent}")
    for filename in _files_in_use(plan, inventory):
        if not inventory.has_file(filename):
            reasons.append(f"file {filename} is missing")
    return reasons


def _files_in_use(plan: Plan, inventory: Inventory) -> list[str]:
    names = [plan.certkey] + [ca.certkey for ca in plan.cas if ca.exists]
    files = []
    for name in names:
        obj = inventory.certkeys.get(name) or {}
        files += [_base(obj.get(k)) for k in ("cert", "key") if obj.get(k)]
    return files


# -- one run -------------------------------------------------------------------------------


class _Undo:
    """Compensating actions, run newest first when a later step fails."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], None]]] = []

    def push(self, what: str, action: Callable[[], None]) -> None:
        self._actions.append((what, action))

    def drop_last(self) -> None:
        """Forget the newest action: its step turned out to have changed nothing."""
        self._actions.pop()

    def run(self) -> list[str]:
        """Undo everything; returns what could not be undone."""
        failures = []
        for what, action in reversed(self._actions):
            try:
                action()
            except NsLeError as exc:
                logger.error("rollback: could not %s: %s", what, exc)
                failures.append(what)
        self._actions.clear()
        return failures


class Deployer:
    """Deploys certificates within one run (one NITRO session, one inventory, one save)."""

    def __init__(self, client: NitroClient, settings: Settings, *, with_files: bool = False,
                 report_unsaved: bool = True):
        self.client = client
        self.settings = settings
        self.changed = False
        self._with_files = with_files
        # Inside a dehydrated run the challenges have already changed the configuration;
        # startup_hook reported the admin's unsaved changes before that, so stay quiet here.
        self._report_unsaved = report_unsaved
        self._inventory: Optional[Inventory] = None
        self._probed = False
        self._ha = False
        self._config: Optional[JsonObj] = None  # nsconfig, read once (unsaved changes, HA)
        self._nodes: list[JsonObj] = []  # hanode on an HA pair
        self._peer: Optional[ha.PeerCheck] = None  # an HA pair's secondary, checked read-only
        self._binder: Optional[bindings.Binder] = None
        self._key_types: dict[str, str] = {}  # certkeys whose key type we know locally

    @property
    def inventory(self) -> Inventory:
        if self._inventory is None:
            self._inventory = Inventory.load(self.client, self.settings,
                                             with_files=self._with_files)
        return self._inventory

    @inventory.setter
    def inventory(self, known: Inventory) -> None:
        """Start from an inventory read earlier in this run (runstate) instead of a GET."""
        self._inventory = known

    @property
    def known_inventory(self) -> Optional[Inventory]:
        """The inventory as this deployer left it; None when unread or to be re-read."""
        return self._inventory

    # -- entry points -------------------------------------------------------------------

    def deploy(self, bundle: Bundle) -> DeployResult:
        """Make the appliance serve ``bundle``; a no-op when it already does.

        Raises:
            DeployError: a step failed; what this call changed has been undone.
            ConfigError: the private key would travel over plain HTTP without the opt-in.
        """
        inventory = self.inventory
        plan = make_plan(self.settings, bundle, inventory)
        reasons = differences(plan, inventory)
        result = DeployResult(bundle.name, plan.certkey, "unchanged", bundle.leaf.serial,
                              [ca.certkey for ca in plan.cas])
        self._key_types[plan.certkey] = bundle.leaf.key_type
        if not reasons:
            logger.info("%s: certkey %s already serves serial %s", bundle.name, plan.certkey,
                        bundle.leaf.serial)
            self._check_peer(plan)
            self._bind(plan, result)
            if result.bindings_changed:
                runlog.record_deploy(result, bundle.leaf.not_after, self.settings)
                self._check_served(plan, result)
            return result
        logger.info("%s: deploying serial %s to certkey %s (%s)", bundle.name,
                    bundle.leaf.serial, plan.certkey, "; ".join(reasons))
        previous_chain = inventory.chain_names(plan.certkey)
        previous_files = _leaf_files(plan.current)
        uploads = self._files_to_upload(plan)
        if self._probed and self._ha:
            ha.still_primary(self.client)  # a failover since the last certificate: stop
        self._before_first_write(plan, sends_key=any(c == bundle.key.pem for _, c in uploads))
        undo = _Undo()
        step = "upload"
        try:
            for filename, content in uploads:
                self._upload(filename, content, undo)
            self._sync_ha_files()
            if self._peer is not None:  # the secondary must have the files before the certkey
                self._peer.files(_expected(plan, self.inventory))
            step = "chain"
            self._install_chain(plan, undo)
            step = "add" if plan.current is None else "update"
            self._install_leaf(plan, undo)
            step = "link"
            self._link(plan.links[:1], undo)
            step = "verify"
            self._verify(plan)
        except (NitroError, DeployError) as exc:
            self.changed = True  # something may have been written, even if undone
            failures = undo.run()
            self._inventory = None  # re-read next time: the undo changed things
            raise _deploy_error(step, plan, exc, failures) from exc
        self.changed = True
        if plan.current is None:
            result.action = "added"
        else:
            result.action = "repaired" if _holds(plan.current, bundle.leaf) else "updated"
        result.chain = [ca.certkey for ca in plan.cas]
        result.removed = self._cleanup(plan, previous_files, previous_chain)
        logger.info("%s: certkey %s %s (serial %s, chain %s)", bundle.name, plan.certkey,
                    result.action, bundle.leaf.serial, " -> ".join(result.chain) or "none")
        self._bind(plan, result)
        if self._peer is not None:
            self._peer.certkey(_expected(plan, self.inventory))
        runlog.record_deploy(result, bundle.leaf.not_after, self.settings)
        self._check_served(plan, result)
        return result

    # -- NS_BIND ------------------------------------------------------------------------

    @property
    def binder(self) -> bindings.Binder:
        if self._binder is None:
            self._binder = bindings.Binder(self.client, self.settings, self._key_type,
                                           before_write=self._probe_appliance)
        return self._binder

    def _key_type(self, certkey: str) -> Optional[str]:
        known = self._key_types.get(certkey)
        if known:
            return known
        text = str((self.inventory.certkeys.get(certkey) or {}).get("publickey") or "").upper()
        return "RSA" if "RSA" in text else "ECC" if "EC" in text else None

    def _bind(self, plan: Plan, result: DeployResult) -> None:
        """Make the NS_BIND vservers of this certificate serve its certkey (see bindings.py)."""
        names = (plan.bundle.name, plan.bundle.leaf.primary_name)
        if not bindings.vservers_for(self.settings, *names):
            return
        try:
            outcome = self.binder.ensure(names, plan.certkey, first=result.action == "added")
        finally:
            self.changed = self.changed or self.binder.wrote  # saved even after a failure
        result.bound, result.bindings_changed = outcome.vservers, outcome.changed

    def _check_served(self, plan: Plan, result: DeployResult) -> None:
        """With NS_VERIFY_SERVED, look at what the VIP now serves (the deploy itself stands)."""
        if self.settings.verify_served == "off":
            return
        if result.action == "added" and not result.bound:
            logger.info("%s: certkey %s is new and NS_BIND binds it nowhere; the served "
                        "certificate is checked once it is bound", plan.bundle.name, plan.certkey)
            return
        problems = served.report(self.settings, plan.bundle.leaf, self._addresses(result))
        if problems:
            raise DeployError("served", f"certkey {plan.certkey} now holds serial "
                              f"{plan.bundle.leaf.serial}, but {problems}",
                              "fix what the VIP serves; NS_VERIFY_SERVED=warn only logs this")

    def _addresses(self, result: DeployResult) -> list[tuple[str, int]]:
        """Where to look: NS_VERIFY_ADDRESS, else each bound vserver's VIP as NITRO tells it,
        else (empty) the certificate's first name on port 443."""
        if self.settings.verify_address or not result.bound:
            return []
        found = [bindings.address_of(self.client, name) for name in result.bound]
        return [address for address in found if address is not None]

    # -- steps --------------------------------------------------------------------------

    def _before_first_write(self, plan: Plan, *, sends_key: bool) -> None:
        """Refuse a key over plain HTTP; once per run, note unsaved changes and HA."""
        if sends_key and self.client.is_plain_http and not self.settings.allow_key_over_http:
            raise ConfigError(
                f"refusing to send the private key of {plan.bundle.name} over plain HTTP "
                f"({self.settings.url})",
                hint="use https:// in NS_URL, or set NS_ALLOW_KEY_OVER_HTTP=yes if the path "
                     "to the appliance is trusted",
            )
        self._probe_appliance()

    def _probe_appliance(self) -> None:
        """Once per run, before the first write: unsaved changes, and only an HA primary."""
        if self._probed:
            return
        self._probed = True
        config, nodes = self._ha_nodes()
        if (self._report_unsaved and _truthy(config.get("configchanged"))
                and self.settings.save_config != "never"):
            logger.warning("the appliance already had unsaved configuration changes before this "
                           "run; the save at the end of the run will include them")
        if nodes:
            # A secondary may accept writes and lose them at the next sync (nitro-reference
            # 6.5), so only the primary gets them.
            appliance.require_primary(self.client, nodes)

    def _ha_nodes(self) -> tuple[JsonObj, list[JsonObj]]:
        """nsconfig and, on an HA pair (or a firmware that does not say), hanode; read once.

        One GET answers most questions (nsconfig has configchanged and systemtype), which keeps
        a renewal within its request budget.
        """
        if self._config is not None:
            return self._config, self._nodes
        items = self.client.get("nsconfig")
        self._config = items[0] if items else {}
        systemtype = str(self._config.get("systemtype", "")).strip().upper()
        if not systemtype or systemtype == "HA":
            self._nodes = self.client.get("hanode")
        self._ha = len(self._nodes) > 1
        if self._ha and self.settings.ha_verify != "off":
            self._peer = ha.PeerCheck(self.client, self.settings, self._nodes)
        return self._config, self._nodes

    def _check_peer(self, plan: Plan) -> None:
        """An unchanged certificate on an HA pair: the secondary must hold it too (repaired
        here when a sync was missed: the next run converges without a new issuance)."""
        if self.settings.ha_verify == "off":
            return
        self._ha_nodes()
        if self._peer is None:
            return
        if self._probed or ha.node_state(ha.local_node(self._nodes) or {}) == "primary":
            self._probed = True
            self._peer.certkey(_expected(plan, self.inventory))

    def _files_to_upload(self, plan: Plan) -> list[tuple[str, bytes]]:
        """(name, content) of every file the target state needs that the appliance lacks."""
        if plan.current is not None and _holds(plan.current, plan.bundle.leaf):
            # the certkey already holds this certificate: only restore files lost on disk
            cert_file, key_file = _leaf_files(plan.current)
        else:
            cert_file, key_file = plan.cert_file, plan.key_file
        wanted = [(cert_file, plan.bundle.leaf.pem), (key_file, plan.bundle.key.pem)]
        wanted += [(ca.file, ca.cert.pem) for ca in plan.cas]
        return [(filename, content) for filename, content in wanted if filename and not (
            self.inventory.file_users(filename) and self.inventory.has_file(filename))]

    def _upload(self, filename: str, content: bytes, undo: _Undo) -> None:
        body = {"filename": filename, "filelocation": self.settings.cert_path,
                "filecontent": base64.b64encode(content).decode("ascii"),
                "fileencoding": "BASE64"}
        undo.push(f"delete uploaded file {filename}", lambda: self._delete_file(filename))
        try:
            self.client.add("systemfile", body)
        except NitroApiError as exc:
            if exc.errorcode != FILE_EXISTS:
                raise
            undo.drop_last()  # not ours: never delete a file this run did not create
            if not self._same_content(filename, content):
                raise DeployError(
                    "upload", f"{self.settings.cert_path}/{filename} exists with other content",
                    hint="remove the stray file on the appliance; names embed a fingerprint, "
                         "so this should not happen",
                ) from exc
            logger.debug("%s already on the appliance with the same content", filename)
        if self.inventory.files is not None:
            self.inventory.files.add(filename)
        self.inventory.confirmed.add(filename)
        logger.debug("uploaded %s", filename)

    def _same_content(self, filename: str, content: bytes) -> bool:
        found = self.client.get("systemfile", filename,
                                args={"filelocation": self.settings.cert_path})
        stored = found[0].get("filecontent") if found else None
        try:
            return base64.b64decode(str(stored or "")) == content
        except ValueError:
            return False

    def _sync_ha_files(self) -> None:
        """An HA secondary takes config at once but files only every minute: push them now."""
        if not self._ha:
            return
        try:
            self.client.action("hafiles", "sync", {"mode": ["ssl"]})
        except NitroApiError as exc:
            logger.warning("HA file sync failed (%s); the secondary fetches the files within "
                           "about a minute", exc)

    def _install_chain(self, plan: Plan, undo: _Undo) -> None:
        inventory = self.inventory
        for ca in plan.cas:
            if ca.exists:
                continue
            body = {"certkey": ca.certkey, "cert": ca.file, "inform": "PEM"}
            undo.push(f"remove CA certkey {ca.certkey}", partial(self._remove, ca.certkey))
            try:
                self.client.add("sslcertkey", body)
            except NitroApiError as exc:
                existing = _contents_owner(exc)
                if not existing:
                    raise
                undo.drop_last()
                logger.info("intermediate '%s' is already installed as %s; reusing it",
                            ca.cert.common_name, existing)
                ca.certkey, ca.exists = existing, True
                self._refresh(existing)
                continue
            inventory.certkeys[ca.certkey] = {
                "certkey": ca.certkey, "cert": ca.file, "serial": ca.cert.serial,
                "subject": ca.cert.subject, "issuer": ca.cert.issuer}
            logger.info("added CA certkey %s for '%s'", ca.certkey, ca.cert.common_name)
        self._link(plan.links[1:], undo)

    def _install_leaf(self, plan: Plan, undo: _Undo) -> None:
        name = plan.certkey
        if plan.current is None:
            body: JsonObj = {"certkey": name, "cert": plan.cert_file, "key": plan.key_file,
                             "inform": "PEM", "expirymonitor": "ENABLED",
                             "notificationperiod": NOTIFICATION_DAYS}
            undo.push(f"remove certkey {name}", lambda: self._remove(name))
            try:
                self.client.add("sslcertkey", body)
            except NitroApiError as exc:
                if _contents_owner(exc):
                    undo.drop_last()  # the add did nothing: the certificate lives elsewhere
                raise
            self.inventory.certkeys[name] = {"certkey": name, "cert": plan.cert_file,
                                             "key": plan.key_file}
            return
        if _holds(plan.current, plan.bundle.leaf):
            return  # same certificate; only links or files needed attention
        old_cert, old_key = _leaf_files(plan.current)
        wanted_parent = plan.cas[0].certkey if plan.cas else None
        linked = self.inventory.link_of(name)
        if linked and linked != wanted_parent:
            self._unlink(name, undo)  # the issuer changes: the old link cannot survive
        nodomaincheck = plan.own and _names_changed(plan.current, plan.bundle.leaf)
        # Pushed before the attempt: a request that reached the appliance but lost its answer
        # has changed the certkey too; restoring the same files is harmless otherwise.
        undo.push(f"restore certkey {name} to {old_cert}",
                  lambda: self._update(name, old_cert, old_key, False, plan.own))
        self._update(name, plan.cert_file, plan.key_file, nodomaincheck, plan.own)

    def _update(self, name: str, cert: str, key: str, nodomaincheck: bool, own: bool) -> None:
        body: JsonObj = {"certkey": name, "cert": cert, "inform": "PEM"}
        if key:
            body["key"] = key
        if nodomaincheck:
            body["nodomaincheck"] = True
        try:
            self.client.action("sslcertkey", "update", body)
        except NitroApiError as exc:
            if exc.errorcode != DOMAIN_CHANGED or nodomaincheck or not own:
                if exc.errorcode == DOMAIN_CHANGED:
                    raise DeployError(
                        "update", f"certkey {name} holds a certificate for other names",
                        hint="it was adopted through NS_CERTKEY_NAMES; check that entry, or "
                             "drop it to let ns-letsencrypt create its own certkey",
                    ) from exc
                raise
            body["nodomaincheck"] = True  # our own certkey: the names legitimately changed
            self.client.action("sslcertkey", "update", body)
        obj = self.inventory.certkeys.setdefault(name, {"certkey": name})
        obj.update({"cert": cert, "key": key or obj.get("key")})

    def _link(self, pairs: Iterable[tuple[str, str]], undo: _Undo) -> None:
        for child, parent in pairs:
            current = self.inventory.link_of(child)
            if current == parent:
                continue
            if current:
                self._unlink(child, undo)
            undo.push(f"unlink {child}", partial(self._unlink_quietly, child))
            self._send_link(child, parent)
            self.inventory.certkeys.setdefault(child, {"certkey": child})["linkcertkeyname"] = (
                parent)
            logger.info("linked %s -> %s", child, parent)

    def _send_link(self, child: str, parent: str) -> None:
        """Link ``child`` to ``parent``, looking at the appliance before giving up.

        Newer firmware may link a new certkey to its issuer on its own, and the errorcode for
        linking a certkey that is already linked is unconfirmed: when the link is refused,
        the certkey's current link decides (already ``parent``: done; another: relink once).
        """
        body = {"certkey": child, "linkcertkeyname": parent}
        try:
            self.client.action("sslcertkey", "link", body)
            return
        except (NitroAuthError, NitroPermissionError):
            raise
        except NitroApiError:
            found = self.client.get_one("sslcertkey", child, attrs=_CERTKEY_ATTRS)
            linked = str((found or {}).get("linkcertkeyname") or "")
            if linked == parent:
                return
            if not linked:
                raise
        logger.info("%s was linked to %s; linking it to %s instead", child, linked, parent)
        self._unlink_quietly(child)
        self.client.action("sslcertkey", "link", body)

    def _unlink(self, name: str, undo: _Undo) -> None:
        previous = self.inventory.link_of(name)
        if previous:
            undo.push(f"relink {name} -> {previous}", lambda: self._relink(name, previous))
        self._unlink_quietly(name)

    def _unlink_quietly(self, name: str) -> None:
        try:
            self.client.action("sslcertkey", "unlink", {"certkey": name})
        except NitroApiError as exc:
            if exc.errorcode not in (NOT_LINKED, *ALREADY_GONE):
                raise
        if name in self.inventory.certkeys:
            self.inventory.certkeys[name].pop("linkcertkeyname", None)

    def _relink(self, name: str, parent: str) -> None:
        self._unlink_quietly(name)
        self.client.action("sslcertkey", "link", {"certkey": name, "linkcertkeyname": parent})

    def _verify(self, plan: Plan) -> None:
        found = self.client.get_one("sslcertkey", plan.certkey)
        if found is None:
            raise DeployError("verify", f"certkey {plan.certkey} is missing after the change")
        wanted = certs.normalize_serial(plan.bundle.leaf.serial)
        if certs.normalize_serial(str(found.get("serial", ""))) != wanted:
            raise DeployError("verify", f"certkey {plan.certkey} reports serial "
                              f"{found.get('serial')}, expected {plan.bundle.leaf.serial}")
        parent = plan.cas[0].certkey if plan.cas else None
        if parent and found.get("linkcertkeyname") != parent:
            raise DeployError("verify", f"certkey {plan.certkey} is linked to "
                              f"{found.get('linkcertkeyname')}, expected {parent}")
        self.inventory.certkeys[plan.certkey] = found

    # -- cleanup ------------------------------------------------------------------------

    def _cleanup(self, plan: Plan, old_files: tuple[str, str],
                 old_chain: list[str]) -> list[str]:
        """Delete superseded files and expired CA certkeys nothing references; never raises.

        A superseded intermediate that is still valid stays, with its file: Let's Encrypt
        issues from a few intermediates in turn, so a later renewal is likely to link it again
        instead of uploading and adding it (two requests saved then, two deletions saved now).
        It goes once it has expired, here or in any later deploy, or at once with ``cleanup``.
        """
        keep = {ca.certkey for ca in plan.cas}
        removed, candidates = self._remove_expired_cas(keep)
        kept = [name for name in old_chain if name not in keep
                and name in self.inventory.certkeys and self._is_our_ca(name)]
        if kept:
            logger.info("%s: kept the superseded CA certkey(s) %s: still valid, and likely to "
                        "issue a later renewal ('ns-letsencrypt cleanup' removes unused ones)",
                        plan.bundle.name, ", ".join(kept))
        candidates = list(old_files) + candidates
        # a CA file uploaded for nothing: the appliance had the certificate under another name
        candidates += [ca.file for ca in plan.cas if ca.file != _base(
            self.inventory.certkeys.get(ca.certkey, {}).get("cert"))]
        for filename in dict.fromkeys(candidates):
            if not filename or self.inventory.file_users(filename):
                continue
            if self._try(f"delete superseded file {filename}",
                         partial(self._delete_file, filename)):
                removed.append(filename)
        return removed

    def _remove_expired_cas(self, keep: set[str]) -> tuple[list[str], list[str]]:
        """Remove our expired CA certkeys that no certkey links to, dependents first.

        Returns the certkeys removed and their files (deleted by the caller once unused).
        Costs no request when there is none: the inventory already holds their expiry.
        """
        doomed = [name for name, obj in self.inventory.certkeys.items()
                  if name not in keep and self._is_our_ca(name) and _expired(obj)]
        removed: list[str] = []
        files: list[str] = []
        progress = True
        while progress:  # a chain of expired CAs goes child first, one pass per level
            progress = False
            for name in [n for n in doomed if not self.inventory.linked_from(n)]:
                doomed.remove(name)
                ca_file = _base(self.inventory.certkeys[name].get("cert"))
                if self._try(f"remove expired CA certkey {name}",
                             partial(self._retire_ca, name)):
                    removed.append(name)
                    files.append(ca_file)
                    progress = True
        return removed, files

    def _retire_ca(self, name: str) -> None:
        """Remove an unreferenced CA certkey; some builds refuse while it is itself linked."""
        try:
            self._remove(name)
        except NitroApiError as exc:
            parent = self.inventory.link_of(name)
            if exc.errorcode != REFERENCED or not parent:
                raise
            self._unlink_quietly(name)
            try:
                self._remove(name)
            except NitroApiError:
                self._relink(name, parent)
                raise

    def _is_our_ca(self, name: str) -> bool:
        obj = self.inventory.certkeys.get(name) or {}
        return name.startswith(self.settings.certkey_prefix) and not obj.get("key")

    def _try(self, what: str, action: Callable[[], None]) -> bool:
        try:
            action()
            return True
        except NitroApiError as exc:
            if exc.errorcode == REFERENCED:
                logger.info("kept: cannot %s: still referenced (bound or linked)", what)
            else:
                logger.warning("cleanup: cannot %s: %s", what, exc)
        except NitroError as exc:
            logger.warning("cleanup: cannot %s: %s", what, exc)
        return False

    # -- primitives ---------------------------------------------------------------------

    def _remove(self, name: str) -> None:
        try:
            self.client.delete("sslcertkey", name)
            logger.info("removed certkey %s", name)
        except NitroApiError as exc:
            if exc.errorcode not in ALREADY_GONE:
                raise
            logger.debug("certkey %s is already gone", name)
        self.inventory.certkeys.pop(name, None)

    def _delete_file(self, filename: str) -> None:
        try:
            self.client.delete("systemfile", filename,
                               args={"filelocation": self.settings.cert_path})
        except NitroApiError as exc:
            if exc.errorcode not in ALREADY_GONE and exc.http_status != 404:
                raise
        if self.inventory.files is not None:
            self.inventory.files.discard(filename)
        self.inventory.confirmed.discard(filename)
        logger.info("deleted file %s", filename)

    def _refresh(self, name: str) -> None:
        found = self.client.get_one("sslcertkey", name)
        if found is not None:
            self.inventory.certkeys[name] = found


# -- helpers -------------------------------------------------------------------------------


def _expected(plan: Plan, inventory: Inventory) -> ha.Expected:
    """What an HA secondary must hold for ``plan``: files with content, serial, chain."""
    current = inventory.certkeys.get(plan.certkey)
    if current is not None and _holds(current, plan.bundle.leaf):
        cert_file, key_file = _leaf_files(current)
    else:
        cert_file, key_file = plan.cert_file, plan.key_file
    files = [(cert_file, plan.bundle.leaf.pem), (key_file, plan.bundle.key.pem)]
    for ca in plan.cas:
        stored = inventory.certkeys.get(ca.certkey) or {}
        files.append((_base(stored.get("cert")) or ca.file, ca.cert.pem))
    return ha.Expected(plan.certkey, plan.bundle.leaf.serial,
                       tuple((name, content) for name, content in files if name),
                       tuple(ca.certkey for ca in plan.cas))


def _leaf_files(obj: Optional[JsonObj]) -> tuple[str, str]:
    if not obj:
        return ("", "")
    return (_base(obj.get("cert")), _base(obj.get("key")))


def _holds(obj: JsonObj, cert: certs.Certificate) -> bool:
    """True when the certkey ``obj`` already holds ``cert`` (by serial)."""
    return certs.normalize_serial(str(obj.get("serial", ""))) == certs.normalize_serial(cert.serial)


def _names_changed(current: JsonObj, leaf: certs.Certificate) -> bool:
    subject = _cn(current.get("subject"))
    sans = current.get("sandns")
    if isinstance(sans, str):
        sans = [sans]
    if subject is not None and subject != leaf.common_name:
        return True
    return isinstance(sans, list) and {str(s).lower() for s in sans} != set(leaf.names)


def _contents_owner(exc: NitroApiError) -> Optional[str]:
    """The existing certkey named by 273 ``[certkeyName Contents, X]``, if that is the error."""
    if exc.errorcode != 273 or not exc.bracket:
        return None
    match = _CONTENTS_CLASH.search(exc.bracket)
    return match.group(1).strip() if match else None


def _expired(obj: JsonObj) -> bool:
    """Whether a certkey's certificate has expired (``daystoexpiration`` 0 or less).

    Without the field (not returned, not a number) it counts as valid: keeping an unused
    intermediate costs nothing, removing a needed one would break a chain.
    """
    try:
        return int(obj.get("daystoexpiration", 1)) <= 0
    except (TypeError, ValueError):
        return False


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "on")
    return bool(value)


def _deploy_error(step: str, plan: Plan, exc: Exception, failures: list[str]) -> DeployError:
    if isinstance(exc, DeployError):
        message, hint = exc.message.split("': ", 1)[-1], exc.hint
        step = exc.step
    else:
        # the hint travels separately: str() of our errors would carry it a second time
        message = exc.message if isinstance(exc, NsLeError) else str(exc)
        hint = getattr(exc, "hint", None)
    kept = "the previous certificate keeps serving" if plan.current is not None else (
        "nothing was left behind")
    if failures:
        kept = f"rollback incomplete ({'; '.join(failures)}): check certkey {plan.certkey}"
    return DeployError(step, f"{plan.bundle.name} -> certkey {plan.certkey}: {message}; {kept}",
                       hint)


# -- module-level entry points -------------------------------------------------------------


def deploy_cert(
    client: NitroClient, settings: Settings, domain: Optional[str], keyfile: str, certfile: str,
    chainfile: str, alias: Optional[str] = None, *, report_unsaved: bool = True,
) -> DeployResult:
    """Deploy one certificate (dehydrated's ``deploy_cert`` hook); no config save.

    Call :func:`appliance.finish_run` once at the end of the run with ``result.changed``.
    """
    bundle = load_bundle(keyfile, certfile, chainfile, domain, alias)
    return Deployer(client, settings, report_unsaved=report_unsaved).deploy(bundle)
