"""HA pairs: finding the primary, and proving the secondary holds what the primary serves.

Owns what is specific to a NetScaler HA pair (research/nitro-binding-ha.md §3 and §6):

- :func:`follow_primary`: when ``NS_URL`` names the secondary, read the primary's NSIP from
  ``hanode`` and go on with the same scheme, port and trust settings, saying so in one line
  (a secondary accepts writes and loses them at the next sync, so nothing is ever written
  there);
- :func:`peer_settings`: how to reach the other node read-only (``NS_HA_PEER_URL``, else its
  NSIP from ``hanode`` with NS_URL's scheme and port);
- :class:`PeerCheck`: after ``sync HA files ssl`` and after a deploy, log in to the peer and
  compare every file the certkey and its CA certkeys reference (same content) and the certkey
  itself (same serial and link). A miss is repaired once (file sync again; a forced
  configuration sync when only the certkey is wrong) and re-checked; what is still wrong is
  reported per ``NS_HA_VERIFY`` (``on``: DeployError, exit 8; ``warn``: a warning; ``off``: no
  check at all);
- :func:`still_primary`: the re-check before more writes on a node that may have failed over.

The peer is only read (plus the pair-wide sync calls sent to the primary); writes go to the
primary alone.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Optional

from .config import Settings
from .errors import ApplianceNotReady, DeployError, NitroApiError, NitroError, NsLeError
from .nitro import JsonObj, NitroClient
from .session import open_client

logger = logging.getLogger(__name__)

FORCE_SYNC = {"force": True, "save": "YES"}  # hasync?action=Force (research §3.1)


# -- the nodes ----------------------------------------------------------------------------


def node_state(node: JsonObj) -> str:
    return str(node.get("state") or "").strip().lower()


def local_node(nodes: Sequence[JsonObj]) -> Optional[JsonObj]:
    """Node id 0 is always the node we talk to (nitro-reference 6.3)."""
    return next((n for n in nodes if str(n.get("id", "")).strip() == "0"), None)


def peer_node(nodes: Sequence[JsonObj]) -> Optional[JsonObj]:
    return next((n for n in nodes if str(n.get("id", "")).strip() not in ("", "0")), None)


def node_url(settings: Settings, address: str) -> str:
    """NS_URL with its host replaced by ``address`` (same scheme and port)."""
    parts = urllib.parse.urlsplit(settings.url)
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, "", "", ""))


def with_url(settings: Settings, url: str) -> Settings:
    """The same settings for another node of the pair (credentials and trust unchanged)."""
    sources = dict(settings.sources)
    sources["url"] = f"HA node of {settings.url}"
    return dataclasses.replace(settings, url=url, sources=sources)


def peer_settings(settings: Settings, nodes: Sequence[JsonObj]) -> Optional[Settings]:
    """How to reach the other node, or None (standalone, or its address is unknown)."""
    if settings.ha_peer_url:
        return with_url(settings, settings.ha_peer_url)
    peer = peer_node(nodes)
    if peer is None or not peer.get("ipaddress"):
        return None
    return with_url(settings, node_url(settings, str(peer["ipaddress"])))


def primary_loader(load_settings: Callable[[], Settings], *,
                   lenient: bool = False) -> Callable[[], Settings]:
    """Wrap a settings loader so that it yields settings reaching the primary (loaded once).

    ``lenient`` (clean_challenge, which must never fail): when the primary cannot be used,
    log it and go on with NS_URL; the sweep of the next run removes what stays behind.
    """
    loaded: list[Settings] = []

    def load() -> Settings:
        if not loaded:
            settings = load_settings()
            try:
                loaded.append(follow_primary(settings))
            except ApplianceNotReady as exc:
                if not lenient:
                    raise
                logger.warning("%s; going on with NS_URL", exc.message)
                loaded.append(settings)
        return loaded[0]

    return load


def follow_primary(settings: Settings) -> Settings:
    """Settings that reach the pair's primary: ``settings`` itself unless NS_URL is the secondary.

    Costs one ``GET nsconfig`` (plus ``GET hanode`` on a pair; within a scheduled run both are
    read once for all its processes). When NS_URL cannot be read, ``settings`` is returned
    unchanged: the operation that follows reports that problem as it always has.

    Raises:
        ApplianceNotReady: NS_URL is the secondary and the primary cannot be used (exit 6).
    """
    from .appliance import _ha_nodes  # nsconfig first: a standalone box needs no hanode

    try:
        with open_client(settings, brief=True) as client:
            nodes = _ha_nodes(client)
    except NitroError:
        return settings
    local = local_node(nodes)
    if len(nodes) <= 1 or local is None or node_state(local) in ("primary", ""):
        return settings
    peer = peer_node(nodes)
    if peer is None or node_state(peer) != "primary" or not peer.get("ipaddress"):
        raise ApplianceNotReady(
            f"the appliance at NS_URL ({settings.url}) is the HA {node_state(local)} node and "
            "hanode names no primary to go to",
            "point NS_URL at the primary's NSIP or a SNIP with management access")
    primary = with_url(settings, settings.ha_peer_url or node_url(settings,
                                                                  str(peer["ipaddress"])))
    logger.warning("NS_URL %s is the HA secondary; using the primary at %s", settings.url,
                   primary.url)
    try:
        with open_client(primary, brief=True) as client:
            if node_state(local_node(client.get("hanode")) or {}) not in ("primary", ""):
                raise ApplianceNotReady(f"the HA peer at {primary.url} is not the primary either")
    except NitroError as exc:
        raise ApplianceNotReady(
            f"NS_URL ({settings.url}) is the HA secondary and the primary at {primary.url} "
            f"cannot be used: {exc.message}",
            "point NS_URL at the primary, or let this host reach the primary's NSIP with the "
            "same scheme, port and trust (NS_TLS_PIN may list one fingerprint per node)",
        ) from exc
    return primary


def still_primary(client: NitroClient) -> None:
    """Refuse more writes when the node we talk to is no longer the primary (a failover).

    Raises:
        ApplianceNotReady: it is now the secondary; nothing more is written this run.
    """
    local = local_node(client.get("hanode", "0", fresh=True)) or {}
    state = node_state(local)
    if state not in ("primary", ""):
        raise ApplianceNotReady(
            f"the appliance at {client.base_url} stopped being the HA primary during the run "
            f"(now {state}); nothing more is written",
            "the next run deploys to the new primary")


# -- status -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerView:
    """The other node as ``status`` shows it: where, its role, and its certkeys (or why not)."""

    url: str
    role: str
    local_role: str
    certkeys: dict[str, JsonObj]
    error: Optional[str] = None

    def compare(self, certkey: str, serial: str, link: Optional[str]) -> Optional[str]:
        """None when the peer holds ``certkey`` with this serial and link, else what differs."""
        if self.error:
            return f"cannot read it: {self.error}"
        found = self.certkeys.get(certkey)
        if found is None:
            return f"certkey {certkey} missing"
        if _serial(str(found.get("serial", ""))) != _serial(serial):
            return f"holds serial {found.get('serial')}"
        if link and str(found.get("linkcertkeyname") or "") != link:
            return f"not linked to {link}"
        return None


def peer_view(client: NitroClient, settings: Settings) -> Optional[PeerView]:
    """The HA peer's certkeys, read-only (None on a standalone appliance: one GET nsconfig)."""
    from .appliance import _ha_nodes

    nodes = _ha_nodes(client)
    if len(nodes) <= 1:
        return None
    local, peer = local_node(nodes) or {}, peer_node(nodes) or {}
    target = peer_settings(settings, nodes)
    if target is None:
        return PeerView("the HA peer", node_state(peer) or "unknown", node_state(local), {},
                        "its address is unknown: set NS_HA_PEER_URL")
    try:
        with _read_only(target) as other:
            items = other.get("sslcertkey", attrs=("certkey", "serial", "linkcertkeyname"))
    except (NitroError, NsLeError) as exc:
        return PeerView(target.url, node_state(peer) or "unknown", node_state(local), {},
                        exc.message)
    return PeerView(target.url, node_state(peer) or "unknown", node_state(local),
                    {str(i.get("certkey")): i for i in items})


# -- the peer check ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What the secondary must hold for one certificate."""

    certkey: str
    serial: str
    files: tuple[tuple[str, bytes], ...]  # (name in NS_CERT_PATH, content)
    chain: tuple[str, ...]  # CA certkeys, nearest first: certkey -> chain[0] -> chain[1] ...


class PeerCheck:
    """Compare the secondary with what the primary now serves; repair once; report the rest."""

    def __init__(self, client: NitroClient, settings: Settings, nodes: Sequence[JsonObj]):
        self.client = client  # the primary (sync calls go there)
        self.settings = settings
        self.peer = peer_settings(settings, nodes)
        self.where = self.peer.url if self.peer else "the HA secondary"
        self._files_seen: set[str] = set()  # certkeys whose files the peer was seen to hold

    @property
    def enabled(self) -> bool:
        return self.settings.ha_verify != "off"

    def files(self, expected: Expected) -> None:
        """After the file sync: the secondary has every file (else sync once more)."""
        if not self.enabled:
            return
        missing = self._missing_files(expected)
        if missing:
            logger.info("the HA secondary %s does not hold everything yet (%s); syncing the "
                        "files again", self.where, "; ".join(missing))
            self.sync_files()
            missing = self._missing_files(expected)
        if not missing:
            self._files_seen.add(expected.certkey)  # no need to read them again after deploy
        self._report("ha-sync", expected, missing)

    def certkey(self, expected: Expected) -> bool:
        """After the deploy: files and certkey on the secondary match; True when repaired."""
        if not self.enabled:
            return False
        seen = expected.certkey in self._files_seen
        missing = ([] if seen else self._missing_files(expected)) + self._certkey_problems(
            expected)
        if not missing:
            return False
        logger.info("the HA secondary %s does not match the primary (%s); syncing files and "
                    "configuration", self.where, "; ".join(missing))
        self.sync_files()
        self._force_config_sync()
        missing = self._missing_files(expected) + self._certkey_problems(expected)
        self._report("ha-verify", expected, missing)
        return True

    def sync_files(self) -> None:
        try:
            self.client.action("hafiles", "sync", {"mode": ["ssl"]})
        except NitroApiError as exc:
            logger.warning("HA file sync failed (%s); the secondary fetches the files within "
                           "about a minute", exc)

    def _force_config_sync(self) -> None:
        try:
            self.client.action("hasync", "Force", dict(FORCE_SYNC))
        except NitroApiError as exc:
            logger.warning("forcing the HA configuration sync failed (%s)", exc)

    def _report(self, step: str, expected: Expected, missing: list[str]) -> None:
        if not missing:
            logger.debug("HA secondary %s holds certkey %s", self.where, expected.certkey)
            return
        message = (f"the HA secondary {self.where} lacks what certkey {expected.certkey} "
                   f"needs: {'; '.join(missing)}")
        hint = ("check the HA pair's file synchronisation (sync HA files ssl) and "
                "'show ha node' on both nodes; the next run repairs the secondary once its "
                "files arrive")
        if self.settings.ha_verify == "on":
            raise DeployError(step, message, hint)
        logger.warning("%s (NS_HA_VERIFY=warn: going on; after a failover this certificate "
                       "would be missing or broken)", message)

    def _missing_files(self, expected: Expected) -> list[str]:
        if self.peer is None:
            return ["its address (no peer in hanode; set NS_HA_PEER_URL)"]
        missing: list[str] = []
        try:
            with _read_only(self.peer) as peer:
                for name, content in expected.files:
                    found = _file_content(peer, self.settings.cert_path, name)
                    if found is None:
                        missing.append(f"file {name} missing")
                    elif found != content and not _same_certificate(found, content):
                        missing.append(f"file {name} has other content")
        except (NitroError, NsLeError) as exc:
            missing.append(f"no read-only access ({exc.message})")
        return missing

    def _certkey_problems(self, expected: Expected) -> list[str]:
        if self.peer is None:
            return []
        try:
            with _read_only(self.peer) as peer:
                items = peer.get("sslcertkey", attrs=("certkey", "serial", "linkcertkeyname"))
        except (NitroError, NsLeError) as exc:
            return [f"no read-only access ({exc.message})"]
        found = {str(i.get("certkey")): i for i in items}
        problems = []
        leaf = found.get(expected.certkey)
        if leaf is None:
            return [f"certkey {expected.certkey} missing"]
        if _serial(str(leaf.get("serial", ""))) != _serial(
                expected.serial):
            problems.append(f"certkey {expected.certkey} holds serial {leaf.get('serial')}")
        names = [expected.certkey, *expected.chain]
        for child, parent in zip(names, names[1:]):
            if parent not in found:
                problems.append(f"CA certkey {parent} missing")
            elif str((found.get(child) or {}).get("linkcertkeyname") or "") != parent:
                problems.append(f"certkey {child} not linked to {parent}")
        return problems


def _serial(text: str) -> str:
    from .certs import normalize_serial  # cryptography: not for every challenge hook process

    return normalize_serial(text)


@contextmanager
def _read_only(settings: Settings) -> Iterator[NitroClient]:
    """A short read-only visit to the other node; its session (if any) ends with it, also
    inside a scheduled run, which would otherwise keep it for processes that never come."""
    client = open_client(settings, brief=True)
    with client:
        try:
            yield client
        finally:
            client.end_session()


def _file_content(client: NitroClient, location: str, name: str) -> Optional[bytes]:
    try:
        found = client.get("systemfile", name, args={"filelocation": location})
    except NitroApiError as exc:
        if exc.http_status == 404 or exc.errorcode in (258, 1540):
            return None
        raise
    stored = found[0].get("filecontent") if found else None
    try:
        return base64.b64decode(str(stored)) if stored is not None else None
    except ValueError:
        return None


def _same_certificate(found: bytes, wanted: bytes) -> bool:
    """A CA file another tool uploaded may hold the same certificate in another layout."""
    from .certs import parse_certificate

    try:
        return parse_certificate(found).fingerprint == parse_certificate(wanted).fingerprint
    except NsLeError:
        return False
