"""SSL vserver bindings from ``NS_BIND``: every listed vserver serves its certificate's certkey.

Owns the desired state (``NS_BIND`` entries, matched to a certificate by the first name or
alias of its ``domains.txt`` line), reading the listed vservers (SNI state and certificate
bindings), and the writes that make them serve our certkey:

- SNI enabled (``snienable`` on the vserver, or on its SSL profile): bind with ``snicert``;
  when the vserver has no default server certificate at all, bind ours as the default too, so
  that clients without SNI get a certificate;
- SNI disabled: bind ours as the default server certificate. A default bound before (a
  hand-installed certificate) is replaced the way CTX109711 describes: bind the new one (the
  appliance answers 1546 "replaces the previous binding", which is success), read the bindings
  again, and unbind the old one only if it is still the default of the same key type. The
  vserver is never left without a default; the old certkey is kept and named in the log.

Reads come before writes, and each listed vserver is read once per run (one ``GET
sslvserver`` for the SNI state of all of them, one binding list per vserver), so a run where
everything is bound sends no write. Nothing is read when ``NS_BIND`` is empty. Bindings are
never removed because an entry left ``NS_BIND``: that is the admin's call (``cleanup`` lists
certkeys of ours that are bound nowhere). Renewals update the certkey in place and never get
here with anything to do.

:func:`check` validates the entries against ``domains.txt`` and the appliance for
``startup_hook`` and ``test`` (reads only), one failed check per problem.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .config import Settings
from .errors import (
    ApplianceNotReady,
    DeployError,
    ExitStatus,
    NitroApiError,
    NitroAuthError,
    NitroNotFound,
)
from .nitro import JsonObj, NitroClient
from .report import Check, failed, passed

logger = logging.getLogger(__name__)

RESOURCE = "sslvserver_sslcertkey_binding"
REPLACED = 1546  # "Current certificate replaces the previous binding": success
ALREADY_BOUND = 273
NOT_BOUND = frozenset({1542, 258})  # unbinding what is not bound: already done
_VSERVER_ATTRS = ("vservername", "snienable", "sslprofile")
_WILDCARD_VIPS = frozenset({"0.0.0.0", "::"})  # noqa: S104 - a vserver on every address
_HINT = "NS_BIND lists SSL vservers: lb, cs, VPN or authentication vservers of type SSL"


# -- desired state ------------------------------------------------------------------------


def vservers_for(settings: Settings, *names: str) -> tuple[str, ...]:
    """The vservers NS_BIND lists for a certificate known by any of ``names`` (alias, first
    name), in order, without repeats."""
    wanted: list[str] = []
    for name in dict.fromkeys(n.lower() for n in names if n):
        wanted += settings.bind.get(name, ())
    return tuple(dict.fromkeys(wanted))


def listed_vservers(settings: Settings) -> list[str]:
    """Every vserver NS_BIND names, in order."""
    return list(dict.fromkeys(vs for names in settings.bind.values() for vs in names))


# -- what the appliance has ---------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """One server or CA certificate bound to a vserver (a binding is keyed by all three)."""

    certkey: str
    sni: bool = False
    ca: bool = False


@dataclass
class Vserver:
    """A listed SSL vserver as this run knows it."""

    name: str
    sni: bool
    bindings: list[Bound] = field(default_factory=list)

    def defaults(self) -> list[str]:
        """Certkeys bound as default (non-SNI) server certificates."""
        return [b.certkey for b in self.bindings if not b.sni and not b.ca]

    def has(self, certkey: str, *, sni: bool) -> bool:
        return Bound(certkey, sni) in self.bindings


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "enabled", "on", "1")
    return bool(value)


def parse_bindings(rows: Iterable[JsonObj]) -> list[Bound]:
    """Binding rows as GET returns them (booleans may come as strings on some builds)."""
    return [Bound(str(row.get("certkeyname")), _truthy(row.get("snicert")),
                  _truthy(row.get("ca"))) for row in rows if row.get("certkeyname")]


def read_sni(client: NitroClient, names: Sequence[str]) -> dict[str, bool]:
    """SNI state of the named SSL vservers that exist (one GET, plus one for SSL profiles
    when any of them has one: with a profile attached, its ``snienable`` counts)."""
    wanted = set(names)
    found = {str(item.get("vservername")): item for item in
             client.get("sslvserver", attrs=_VSERVER_ATTRS)
             if str(item.get("vservername")) in wanted}
    profiles: dict[str, bool] = {}
    if any(item.get("sslprofile") for item in found.values()):
        profiles = {str(p.get("name")): _truthy(p.get("snienable")) for p in
                    client.get("sslprofile", attrs=("name", "snienable"))}
    sni = {}
    for name, item in found.items():
        profile = str(item.get("sslprofile") or "")
        sni[name] = profiles.get(profile, False) if profile else _truthy(item.get("snienable"))
    return sni


def read_bindings(client: NitroClient, vserver: str) -> list[Bound]:
    return parse_bindings(client.get(RESOURCE, vserver))


def describe_missing(client: NitroClient, name: str) -> str:
    """Why ``name`` is no SSL vserver: another kind of vserver, or none at all (461)."""
    for kind in ("lb", "cs"):
        try:
            found = client.get_one(f"{kind}vserver", name, attrs=("name", "servicetype"))
        except NitroApiError:
            found = None
        if found is not None:
            servicetype = str(found.get("servicetype") or "non-SSL")
            return f"'{name}' is a {servicetype} {kind} vserver, not an SSL vserver"
    return f"no SSL vserver named '{name}' (461 No such Vserver)"


# -- one run ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What ensuring one certificate's bindings found and did."""

    vservers: list[str] = field(default_factory=list)  # the vservers that now serve it
    changed: list[str] = field(default_factory=list)  # one line per write, for the log


class Binder:
    """Binds within one run: each listed vserver is read once, then kept current locally.

    ``key_type(certkey)`` gives a certkey's public-key type (``RSA``, ``ECC``) or None when
    unknown; replacing a default only ever unbinds a certificate of the same key type.
    ``before_write()`` runs before every write (the deployer's once-per-run HA check).
    """

    def __init__(self, client: NitroClient, settings: Settings,
                 key_type: Callable[[str], Optional[str]],
                 before_write: Callable[[], None] = lambda: None) -> None:
        self.client = client
        self.settings = settings
        self.key_type = key_type
        self._before_write = before_write  # e.g. refuse to write to an HA secondary
        self._sni: Optional[dict[str, bool]] = None
        self._vservers: dict[str, Vserver] = {}
        self.wrote = False  # any bind or unbind sent this run (even one that then failed)

    def vserver(self, name: str) -> Vserver:
        """The vserver's SNI state and bindings (read on first use).

        Raises:
            ApplianceNotReady: ``name`` is not an SSL vserver.
        """
        if name not in self._vservers:
            if self._sni is None:
                self._sni = read_sni(self.client, listed_vservers(self.settings))
            if name not in self._sni:
                raise ApplianceNotReady(f"NS_BIND: {describe_missing(self.client, name)}",
                                        _HINT)
            self._vservers[name] = Vserver(name, self._sni[name],
                                           read_bindings(self.client, name))
        return self._vservers[name]

    def ensure(self, names: Sequence[str], certkey: str, *, first: bool = False) -> Outcome:
        """Make every vserver NS_BIND lists for the certificate (known by ``names``) serve
        ``certkey``. ``first``: the certkey was just added (missing bindings are expected).

        One vserver's problem does not keep the others from being bound.

        Raises:
            DeployError: a listed vserver is not an SSL vserver, or a bind or unbind was
                refused (step ``bind``); the certkey itself stays deployed.
        """
        outcome = Outcome()
        problems: list[str] = []
        for name in vservers_for(self.settings, *names):
            try:
                vs = self.vserver(name)
            except ApplianceNotReady as exc:  # not an SSL vserver
                logger.error("%s: %s", certkey, exc)
                problems.append(exc.message)
                continue
            try:  # an HA secondary (ApplianceNotReady) stops everything, like a lost session
                outcome.changed += self._ensure_one(vs, certkey)
            except NitroAuthError:
                raise  # not this vserver's problem: every further call would fail the same way
            except (NitroApiError, DeployError) as exc:
                logger.error("%s: binding to SSL vserver %s failed: %s", certkey, name, exc)
                problems.append(f"{name}: {exc.message}")
                continue
            outcome.vservers.append(name)
        for line in outcome.changed:
            (logger.info if first else logger.warning)("%s", line)
        if problems:
            raise DeployError("bind", f"certkey {certkey} could not be bound: "
                              + "; ".join(problems),
                              "check that the NITRO user may bind (see 'ns-letsencrypt policy')")
        return outcome

    # -- the rules ------------------------------------------------------------------------

    def _ensure_one(self, vs: Vserver, certkey: str) -> list[str]:
        if vs.sni:
            done = []
            if not vs.has(certkey, sni=True):
                self._bind(vs, certkey, sni=True)
                done.append(f"bound certkey {certkey} to SSL vserver {vs.name} as an SNI "
                            "certificate")
            if not vs.defaults():
                self._bind(vs, certkey, sni=False)
                done.append(f"bound certkey {certkey} to SSL vserver {vs.name} as its default "
                            "certificate too (it had none, for clients without SNI)")
            return done
        if certkey in vs.defaults():
            # Another default of the same key type next to ours is what an interrupted
            # replacement leaves on firmware that keeps both: finish the replacement.
            return [self._drop_previous(vs, certkey)] if self._previous(vs, certkey) else []
        return [self._replace_default(vs, certkey)]

    def _previous(self, vs: Vserver, certkey: str) -> list[str]:
        kind = self.key_type(certkey)
        return [name for name in vs.defaults() if name != certkey and self._same_kind(name, kind)]

    def _replace_default(self, vs: Vserver, certkey: str) -> str:
        previous = self._previous(vs, certkey)
        self._bind(vs, certkey, sni=False)
        # The appliance decides what a second default does (replace, 1546); look, then act.
        vs.bindings = read_bindings(self.client, vs.name)
        if certkey not in vs.defaults():
            raise DeployError("bind", f"SSL vserver {vs.name} does not list certkey {certkey} "
                              "as its default certificate after binding it")
        for old in self._previous(vs, certkey):
            self._unbind_default(vs, old)
        return self._replaced(vs, certkey, previous)

    def _drop_previous(self, vs: Vserver, certkey: str) -> str:
        previous = self._previous(vs, certkey)
        for old in previous:
            self._unbind_default(vs, old)
        return self._replaced(vs, certkey, previous)

    @staticmethod
    def _replaced(vs: Vserver, certkey: str, previous: list[str]) -> str:
        if not previous:
            return f"bound certkey {certkey} to SSL vserver {vs.name} as its default certificate"
        kept = ", ".join(previous)
        return (f"bound certkey {certkey} to SSL vserver {vs.name} as its default certificate, "
                f"replacing {kept} (the certkey {kept} is kept; remove it when no longer needed)")

    def _same_kind(self, other: str, kind: Optional[str]) -> bool:
        # Unknown counts as different: never take away the other key type's default.
        return kind is not None and self.key_type(other) == kind

    # -- writes ---------------------------------------------------------------------------

    def _bind(self, vs: Vserver, certkey: str, *, sni: bool) -> None:
        body: JsonObj = {"vservername": vs.name, "certkeyname": certkey}
        if sni:
            body["snicert"] = True
        self._before_write()
        self.wrote = True
        try:
            self.client.bind(RESOURCE, body)
        except NitroApiError as exc:
            if exc.errorcode not in (REPLACED, ALREADY_BOUND):
                raise
        vs.bindings.append(Bound(certkey, sni))

    def _unbind_default(self, vs: Vserver, certkey: str) -> None:
        self._before_write()
        self.wrote = True
        try:
            self.client.delete(RESOURCE, vs.name, args={"certkeyname": certkey})
        except NitroNotFound:
            pass
        except NitroApiError as exc:
            if exc.errorcode not in NOT_BOUND:
                raise
        vs.bindings = [b for b in vs.bindings if b != Bound(certkey)]


# -- validation for startup_hook and test ---------------------------------------------------


def check(client: NitroClient, settings: Settings, cert_names: Optional[Mapping[str, str]],
          key_types: Optional[Mapping[str, str]] = None) -> list[Check]:
    """Every NS_BIND problem as one failed check (reads only; nothing when NS_BIND is empty).

    ``cert_names`` maps each first name and alias of domains.txt to its certificate name (None:
    no domains.txt to check against); ``key_types`` maps certificate names to the key type of
    the local certificate, where known (an RSA and an ECDSA certificate may share a default
    slot, one per key type).
    """
    if not settings.bind:
        return []
    checks: list[Check] = []
    for cert in settings.bind:
        if cert_names is not None and cert not in cert_names:
            checks.append(failed("bind", f"NS_BIND entry {cert}={','.join(settings.bind[cert])}"
                                 f": no domains.txt line has the first name or alias {cert}",
                                 "name a certificate by the first name or the alias of its "
                                 "domains.txt line", ExitStatus.CONFIG))
    names = listed_vservers(settings)
    sni = read_sni(client, names)
    for name in names:
        if name not in sni:
            users = [cert for cert, listed in settings.bind.items() if name in listed]
            checks.append(failed("bind", f"NS_BIND entry {users[0]}={name}: "
                                 f"{describe_missing(client, name)}", _HINT,
                                 ExitStatus.NOT_READY))
    checks += _slot_conflicts(settings, sni, cert_names or {}, key_types or {})
    if not checks:
        detail = ", ".join(f"{n} ({'SNI' if sni[n] else 'default certificate'})" for n in names)
        checks.append(passed("bind", f"NS_BIND: SSL vservers ready: {detail}"))
    return checks


def _slot_conflicts(settings: Settings, sni: Mapping[str, bool], cert_names: Mapping[str, str],
                    key_types: Mapping[str, str]) -> list[Check]:
    """Two certificates for the one default slot of an SNI-disabled vserver (per key type)."""
    checks = []
    for name, enabled in sni.items():
        if enabled:
            continue
        claims = list(dict.fromkeys(cert_names.get(cert, cert) for cert, listed in
                                    settings.bind.items() if name in listed))
        kinds = [key_types.get(cert) for cert in claims]
        if len(claims) > 1 and (None in kinds or len(set(kinds)) < len(kinds)):
            checks.append(failed(
                "bind", f"NS_BIND entries {' and '.join(claims)} both claim the default "
                f"certificate of SSL vserver {name}, which has SNI disabled",
                f"enable SNI on {name} (set ssl vserver {name} -SNIEnable ENABLED), or list it "
                "for one certificate only", ExitStatus.CONFIG))
    return checks


def domains_index(domains: Optional[Path], certs_dir: Optional[Path],
                  ) -> tuple[Optional[dict[str, str]], dict[str, str]]:
    """(first name or alias -> certificate name, certificate name -> local key type) from
    dehydrated's domains.txt and CERTDIR; (None, {}) without a domains.txt."""
    from .certs import read_certificate
    from .errors import InputError
    from .reconcile import parse_domains

    if domains is None or not domains.is_file():
        return None, {}
    index: dict[str, str] = {}
    kinds: dict[str, str] = {}
    for line in parse_domains(domains):
        index[line.names[0]] = line.cert_name
        if line.alias:
            index[line.alias] = line.cert_name
        cert_file = certs_dir / line.cert_name / "cert.pem" if certs_dir else None
        if cert_file is not None and cert_file.is_file():
            try:
                kinds[line.cert_name] = read_certificate(cert_file).key_type
            except InputError:
                continue
    return index, kinds


def address_of(client: NitroClient, vserver: str) -> Optional[tuple[str, int]]:
    """The VIP and port of an SSL vserver (its lb or cs vserver), if NITRO tells a usable one."""
    for kind in ("lb", "cs"):
        try:
            found = client.get_one(f"{kind}vserver", vserver, attrs=("name", "ipv46", "port"))
        except NitroApiError:
            continue
        if found is None:
            continue
        host = str(found.get("ipv46") or "")
        try:
            port = int(found.get("port") or 0)
        except (TypeError, ValueError):
            port = 0
        if host and host not in _WILDCARD_VIPS and 0 < port < 65536:
            return host, port
        return None
    return None
