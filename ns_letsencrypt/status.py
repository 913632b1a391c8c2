"""``ns-letsencrypt status``: the managed certificates on the appliance, for humans and monitoring.

One row per leaf certkey whose name starts with ``settings.certkey_prefix`` (a leaf is a certkey
with a private key; intermediates appear in its chain instead), plus one row per local
certificate directory that has no certkey on the appliance. Two list calls read everything:
``GET sslcertkey`` and ``GET sslvserver_sslcertkey_binding?bulkbindings=yes`` (where each
certkey is bound, with SNI or as default), nothing per certkey; with ``NS_BIND`` one more
(``GET sslvserver``, SNI state) tells whether each entry is satisfied (WARNING if not).
On an HA pair (``nsconfig`` says so, then ``GET hanode``) each row also says whether the other
node holds the certkey with the same serial and link, read there with one list call (WARNING if
not: a failover would serve something else).

Chain rule. Starting at the leaf, follow ``linkcertkeyname``. Each link must exist, its subject
must equal the issuer of the certificate before it, must not be expired and must not repeat.
The chain is *complete* when it ends at a self-signed certificate, or at a certificate whose
issuer is not installed on the appliance at all (a root the clients already trust; we never
install roots). It is *broken* when the leaf has no link, a link is wrong, or the last linked
certificate's issuer is installed on the appliance but not linked.

Local match. ``<certs dir>/<name>/cert.pem`` (dehydrated's CERTDIR) is matched to the certkey
the deploy step names after ``<name>``; it matches when the serial numbers are equal.

States and exit codes follow the monitoring-plugin convention: 0 OK, 1 WARNING (fewer than
``--warn`` days left, the appliance serves another certificate than the local one, a local
certificate is missing on the appliance), 2 CRITICAL (expired, fewer than ``--crit`` days left,
chain broken), 3 UNKNOWN (no configuration, appliance unreachable, access denied).
"""

from __future__ import annotations

import argparse
import datetime
import enum
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .certs import normalize_serial, read_certificate
from .config import Settings
from .errors import ConfigError, InputError, NsLeError
from .naming import certkey_name
from .nitro import JsonObj, NitroClient

logger = logging.getLogger(__name__)

SettingsLoader = Callable[[], Settings]


class State(enum.IntEnum):
    """Monitoring-plugin states; the value is the exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class Thresholds:
    """Days left below which a certificate is WARNING or CRITICAL."""

    warn: int = 30
    crit: int = 10


@dataclass
class CertStatus:
    """What we know about one managed certificate."""

    certkey: str
    names: list[str] = field(default_factory=list)
    issuer: str = ""
    serial: str = ""
    days: Optional[int] = None
    expired: bool = False
    chain: list[str] = field(default_factory=list)  # linked certkeys, leaf side first
    chain_linked: bool = False
    chain_complete: bool = False
    chain_problem: Optional[str] = None
    local_serial: Optional[str] = None
    local_match: Optional[bool] = None  # None: no local certificate to compare with
    on_appliance: bool = True
    state: State = State.OK
    problems: list[str] = field(default_factory=list)
    bindings: list[str] = field(default_factory=list)  # "vserver (SNI)" / "vserver (default)"
    ha_peer: Optional[dict[str, Any]] = None  # HA pair: the other node's copy (issue 10)
    target: str = ""  # NS_TARGETS: the target this row was read from (issue 10)

    @property
    def label(self) -> str:
        """The certkey, with its target in front when the run has several."""
        return f"{self.target}:{self.certkey}" if self.target else self.certkey


# -- reading --------------------------------------------------------------------------


def collect(client: NitroClient, settings: Settings, certs_dir: Optional[Path],
            thresholds: Thresholds) -> list[CertStatus]:
    """Status of every managed certificate, rated against ``thresholds``."""
    certkeys = client.get("sslcertkey")
    rows = [_leaf_status(ck, certkeys) for ck in certkeys if _is_managed_leaf(ck, settings)]
    local = local_certificates(certs_dir, settings) if certs_dir else {}
    _compare_local(rows, local)
    _add_bindings(client, settings, rows, certs_dir)
    _add_ha_peer(client, settings, rows)
    for row in rows:
        rate(row, thresholds)
    return sorted(rows, key=lambda row: row.certkey)


def local_certificates(certs_dir: Path, settings: Settings) -> dict[str, tuple[str, str]]:
    """certkey name -> (local serial, cert.pem path) for each dehydrated certificate directory."""
    found: dict[str, tuple[str, str]] = {}
    if not certs_dir.is_dir():
        return found
    for cert_file in sorted(certs_dir.glob("*/cert.pem")):
        name = cert_file.parent.name
        try:
            cert = read_certificate(cert_file)
        except InputError as exc:  # an empty cert.pem from a failed run: say so, go on
            logger.warning("ignoring %s: %s", cert_file, exc)
            continue
        certkey = managed_certkey_name(settings, name, cert.primary_name)
        found[certkey] = (cert.serial, str(cert_file))
    return found


def managed_certkey_name(settings: Settings, cert_name: str, primary_name: str) -> str:
    """The certkey deploy uses for dehydrated's certificate ``cert_name`` (dir name or alias):
    an NS_CERTKEY_NAMES entry for it or its first name, else the prefixed name."""
    for key in (cert_name, primary_name):
        adopted = settings.certkey_names.get(key)
        if adopted:
            return adopted
    return certkey_name(settings.certkey_prefix, cert_name, settings.certkey_max_len)


def _is_managed_leaf(certkey: Mapping[str, Any], settings: Settings) -> bool:
    name = str(certkey.get("certkey", ""))
    managed = name.startswith(settings.certkey_prefix) or name in settings.certkey_names.values()
    return managed and bool(certkey.get("key"))


def _leaf_status(leaf: JsonObj, certkeys: Sequence[JsonObj]) -> CertStatus:
    row = CertStatus(
        certkey=str(leaf["certkey"]),
        names=_names(leaf),
        issuer=str(leaf.get("issuer", "")),
        serial=normalize_serial(str(leaf.get("serial", ""))),
        days=_days_left(leaf),
        expired=_is_expired(leaf),
    )
    check_chain(row, leaf, certkeys)
    return row


def check_chain(row: CertStatus, leaf: JsonObj, certkeys: Sequence[JsonObj]) -> None:
    """Fill the chain fields of ``row`` by following the links (rule in the module docstring)."""
    by_name = {str(ck.get("certkey")): ck for ck in certkeys}
    installed_subjects = {_dn(ck.get("subject")): str(ck.get("certkey")) for ck in certkeys}
    row.chain_linked = bool(leaf.get("linkcertkeyname"))
    current, seen = leaf, {row.certkey}
    while True:
        link = current.get("linkcertkeyname")
        if not link:
            row.chain_problem = _end_of_chain_problem(current, row, installed_subjects)
            break
        target = by_name.get(str(link))
        row.chain_problem = _link_problem(current, str(link), target, seen)
        if row.chain_problem or target is None:
            break
        row.chain.append(str(link))
        seen.add(str(link))
        current = target
    row.chain_complete = row.chain_problem is None


def _end_of_chain_problem(last: JsonObj, row: CertStatus,
                          installed_subjects: Mapping[str, str]) -> Optional[str]:
    issuer = _dn(last.get("issuer"))
    if issuer == _dn(last.get("subject")):
        return None  # self-signed: a root, nothing further to link
    if not row.chain:
        return "not linked to its issuer"
    holder = installed_subjects.get(issuer)
    if holder:
        return f"{last.get('certkey')} is not linked to its issuer {holder}"
    return None  # the issuer is a root the appliance does not hold: clients have it


def _link_problem(current: JsonObj, link: str, target: Optional[JsonObj],
                  seen: set[str]) -> Optional[str]:
    name = current.get("certkey")
    if target is None:
        return f"{name} links to {link}, which does not exist"
    if link in seen:
        return f"{name} links back to {link} (loop)"
    if _dn(target.get("subject")) != _dn(current.get("issuer")):
        return f"{name} links to {link}, which is not its issuer"
    if _is_expired(target):
        return f"intermediate {link} has expired"
    return None


def _compare_local(rows: list[CertStatus], local: Mapping[str, tuple[str, str]]) -> None:
    by_name = {row.certkey: row for row in rows}
    for name, (serial, path) in sorted(local.items()):
        row = by_name.get(name)
        if row is None:
            rows.append(CertStatus(certkey=name, local_serial=serial, on_appliance=False,
                                   problems=[f"{path} is not deployed on the appliance"]))
            continue
        row.local_serial = serial
        row.local_match = normalize_serial(serial) == row.serial


def _add_bindings(client: NitroClient, settings: Settings, rows: list[CertStatus],
                  certs_dir: Optional[Path]) -> None:
    """Where each certkey is bound (one bulk GET), and a warning per unmet NS_BIND entry."""
    from . import bindings
    from .errors import NitroApiError

    try:
        found = client.get(bindings.RESOURCE, bulkbindings=True)
    except NitroApiError as exc:  # older firmware may not list every bind point at once
        logger.info("cannot list SSL vserver bindings (%s); bindings not shown", exc)
        return
    bound: dict[str, set[tuple[str, bool]]] = {}
    for item in found:
        for binding in bindings.parse_bindings([item]):
            if not binding.ca:
                bound.setdefault(binding.certkey, set()).add((str(item.get("vservername")),
                                                            binding.sni))
    by_name = {row.certkey: row for row in rows}
    for row in rows:
        row.bindings = [f"{vs} ({'SNI' if sni else 'default'})"
                        for vs, sni in sorted(bound.get(row.certkey, ()))]
    if not settings.bind:
        return
    sni = bindings.read_sni(client, bindings.listed_vservers(settings))
    for cert, vservers in settings.bind.items():
        entry = by_name.get(_bound_certkey(settings, cert, certs_dir))
        if entry is None or not entry.on_appliance:
            continue
        for vs in vservers:
            wanted = (vs, sni.get(vs, False))
            if wanted not in bound.get(entry.certkey, set()):
                how = "an SNI certificate" if wanted[1] else "its default certificate"
                where = vs if vs in sni else f"{vs} (no such SSL vserver)"
                entry.problems.append(f"NS_BIND {cert}={vs}: not bound to {where} as {how}")


def _add_ha_peer(client: NitroClient, settings: Settings, rows: list[CertStatus]) -> None:
    """On an HA pair, whether the other node holds each certkey alike (WARNING if not)."""
    from . import ha

    view = ha.peer_view(client, settings)
    if view is None:
        return
    for row in rows:
        if not row.on_appliance:
            continue
        differs = view.compare(row.certkey, row.serial, row.chain[0] if row.chain else None)
        row.ha_peer = {"url": view.url, "role": view.role, "this_node": view.local_role,
                       "match": differs is None, "problem": differs}
        if differs:
            row.problems.append(f"HA {view.role} {view.url}: {differs}")


def _bound_certkey(settings: Settings, cert: str, certs_dir: Optional[Path]) -> str:
    """The certkey of NS_BIND's ``cert`` (its local certificate tells the first name)."""
    cert_file = certs_dir / cert / "cert.pem" if certs_dir else None
    primary = cert
    if cert_file is not None and cert_file.is_file():
        try:
            primary = read_certificate(cert_file).primary_name
        except InputError:
            pass
    return managed_certkey_name(settings, cert, primary)


def collect_targets(settings: Settings, certs_dir: Optional[Path],
                    thresholds: Thresholds) -> list[CertStatus]:
    """Every NS_TARGETS target's rows (read in parallel); an unreadable target is UNKNOWN."""
    from . import targets
    from .session import open_client

    found: dict[str, list[CertStatus]] = {}

    def read(target: Settings) -> int:
        with open_client(target) as client:
            found[target.target] = collect(client, target, certs_dir, thresholds)
        return 0

    rows: list[CertStatus] = []
    for outcome in targets.run_on(settings.targets, read):
        name = outcome.target.target
        if outcome.error is not None:
            rows.append(CertStatus(certkey="-", target=name, on_appliance=False,
                                   state=State.UNKNOWN, problems=[outcome.error.message]))
            continue
        for row in found.get(name, []):
            row.target = name
            rows.append(row)
    return rows


# -- rating ---------------------------------------------------------------------------


def rate(row: CertStatus, thresholds: Thresholds) -> None:
    """Set ``row.state`` and explain every problem in ``row.problems``."""
    critical: list[str] = []
    warning: list[str] = list(row.problems)  # e.g. "not deployed", found while reading
    if row.on_appliance:
        if row.expired:
            critical.append("expired" if row.days is None or row.days >= 0
                            else f"expired {-row.days} days ago")
        elif row.days is None:
            warning.append("expiry date unknown")
        elif row.days < thresholds.crit:
            critical.append(f"expires in {row.days} days")
        elif row.days < thresholds.warn:
            warning.append(f"expires in {row.days} days")
        if row.chain_problem:
            critical.append(f"chain broken: {row.chain_problem}")
        if row.local_match is False:
            warning.append(f"serves serial {row.serial}, local cert.pem has {row.local_serial}")
    row.problems = critical + warning
    row.state = State.CRITICAL if critical else State.WARNING if warning else State.OK


def overall(rows: Sequence[CertStatus]) -> State:
    """The worst state of all rows (OK when there are none)."""
    return max((row.state for row in rows), default=State.OK)


# -- rendering ------------------------------------------------------------------------


def render_table(rows: Sequence[CertStatus]) -> str:
    """A fixed-width table, one row per certificate."""
    header = ("CERTKEY", "NAMES", "ISSUER", "SERIAL", "DAYS", "CHAIN", "LOCAL", "STATE")
    lines = [header] + [_table_row(row) for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
           for line in lines]
    for row in rows:
        out.extend(f"  {row.label}: {problem}" for problem in row.problems)
        if row.bindings:
            out.append(f"  {row.label}: bound to {', '.join(row.bindings)}")
        if row.ha_peer and row.ha_peer["match"]:
            out.append(f"  {row.label}: HA {row.ha_peer['role']} {row.ha_peer['url']} holds "
                       "the same serial and link")
    return "\n".join(out)


def _table_row(row: CertStatus) -> tuple[str, ...]:
    if not row.on_appliance:
        chain = "-"
    elif row.chain_complete:
        chain = "complete" if row.chain else "self-signed"
    else:
        chain = "BROKEN"
    local = {None: "-", True: "match", False: "DIFFERS"}[row.local_match]
    if not row.on_appliance:
        local = "MISSING"
    days = "-" if row.days is None else str(row.days)
    return (row.label, ",".join(row.names) or "-", _short_dn(row.issuer) or "-",
            row.serial or "-", days, chain, local, row.state.name)


def render_nagios(rows: Sequence[CertStatus], thresholds: Thresholds) -> str:
    """``NS-LETSENCRYPT <STATE> - <summary> | <perfdata>`` and one long-output line per row."""
    state = overall(rows)
    problems = [f"{row.label} {p}" for row in rows for p in row.problems]
    deployed = [row for row in rows if row.on_appliance]
    summary = f"{len(deployed)} certificate{'s' if len(deployed) != 1 else ''}"
    nearest = min((row for row in deployed if row.days is not None),
                  key=lambda row: row.days or 0, default=None)
    if nearest is not None:
        summary += f", nearest expiry {nearest.days} days ({nearest.label})"
    if problems:
        summary = "; ".join(problems)
    perf = [f"certificates={len(deployed)}"] + [
        f"'{row.label}'={row.days};{thresholds.warn}:;{thresholds.crit}:"
        for row in deployed if row.days is not None
    ]
    lines = [f"NS-LETSENCRYPT {state.name} - {summary} | {' '.join(perf)}"]
    lines.extend(f"{row.state.name}: {row.label} {','.join(row.names)}".rstrip()
                 for row in rows)
    return "\n".join(lines)


def render_json(rows: Sequence[CertStatus]) -> str:
    """One JSON object: overall state, exit code, and every row."""
    certificates = []
    for row in rows:
        item = asdict(row)
        item["state"] = row.state.name
        certificates.append(item)
    state = overall(rows)
    return json.dumps({"state": state.name, "exit_status": int(state),
                       "certificates": certificates}, indent=2)


def unknown(message: str, args: argparse.Namespace) -> str:
    """The UNKNOWN report in the chosen output format."""
    if args.json:
        return json.dumps({"state": "UNKNOWN", "exit_status": int(State.UNKNOWN),
                           "error": message, "certificates": []}, indent=2)
    return f"NS-LETSENCRYPT UNKNOWN - {message}"


# -- helpers --------------------------------------------------------------------------


def _names(certkey: Mapping[str, Any]) -> list[str]:
    """The names a certkey covers: its SAN DNS names (newer firmware), else the subject CN."""
    sans = certkey.get("sandns")
    if isinstance(sans, str):
        sans = [part.strip() for part in sans.split(",")]
    if isinstance(sans, list) and sans:
        return [str(name) for name in sans if str(name)]
    cn = _rdn(str(certkey.get("subject", "")), "CN")
    return [cn] if cn else []


def _days_left(certkey: Mapping[str, Any]) -> Optional[int]:
    value = certkey.get("daystoexpiration")
    try:
        return int(value) if value is not None and str(value).strip() != "" else _days_from_date(
            certkey.get("clientcertnotafter"))
    except (TypeError, ValueError):
        return _days_from_date(certkey.get("clientcertnotafter"))


def appliance_time(text: Any) -> Optional[datetime.datetime]:
    """An OpenSSL-style date of the appliance (``Mar  4 12:00:00 2025 GMT``) in UTC, or None."""
    if not text:
        return None
    try:
        when = datetime.datetime.strptime(" ".join(str(text).split()), "%b %d %H:%M:%S %Y GMT")
    except ValueError:
        return None
    return when.replace(tzinfo=datetime.timezone.utc)


def _days_from_date(text: Any) -> Optional[int]:
    when = appliance_time(text)
    if when is None:
        return None
    return int((when - datetime.datetime.now(datetime.timezone.utc)).total_seconds() // 86400)


def _is_expired(certkey: Mapping[str, Any]) -> bool:
    if str(certkey.get("status", "")).lower() == "expired":
        return True
    days = _days_left(certkey)
    return days is not None and days < 0


def _dn(value: Any) -> str:
    """A distinguished name normalised for comparison: NITRO's spacing varies between builds."""
    parts = [part.strip() for part in str(value or "").split(",")]
    return ",".join("=".join(side.strip() for side in part.split("=", 1)) for part in parts
                    if part).lower()


def _rdn(dn: str, key: str) -> str:
    for part in dn.split(","):
        name, _, value = part.partition("=")
        if name.strip().upper() == key:
            return value.strip()
    return ""


def _short_dn(dn: str) -> str:
    return _rdn(dn, "CN") or dn


# -- command glue ---------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``ns-letsencrypt status``."""
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON object")
    output.add_argument("--nagios", action="store_true",
                        help="print a monitoring-plugin line (state, summary, perfdata) first")
    output.add_argument("--prometheus", action="store_true",  # issue 13
                        help="print what NS_METRICS_FILE holds (Prometheus text format)")
    parser.add_argument("--warn", type=int, default=30, metavar="DAYS",
                        help="WARNING when fewer days are left (default 30)")
    parser.add_argument("--crit", type=int, default=10, metavar="DAYS",
                        help="CRITICAL when fewer days are left (default 10)")
    parser.add_argument("--certs-dir", type=Path, metavar="DIR",
                        help="dehydrated's CERTDIR to compare with (default: <NS_LE_HOME or "
                             "install dir>/certs; 'none' to skip)")


def run(args: argparse.Namespace, load_settings: SettingsLoader) -> int:
    """Print the status; the exit code is the monitoring state (3 when nothing could be read)."""
    from .register import home_dir
    from .session import open_client

    if args.crit > args.warn:
        raise ConfigError(f"--crit {args.crit} is above --warn {args.warn}",
                          hint="CRITICAL must need fewer days left than WARNING")
    thresholds = Thresholds(warn=args.warn, crit=args.crit)
    certs_dir: Optional[Path] = args.certs_dir or home_dir() / "certs"
    if str(certs_dir) == "none":
        certs_dir = None
    if args.prometheus:
        return _print_prometheus(load_settings, certs_dir)
    try:
        settings = load_settings()
        if settings.targets:
            rows = collect_targets(settings, certs_dir, thresholds)
        else:
            with open_client(settings) as client:
                rows = collect(client, settings, certs_dir, thresholds)
    except NsLeError as exc:  # monitoring needs UNKNOWN (3), not the tool's own exit codes
        if args.json or args.nagios:
            print(unknown(str(exc), args))
        else:
            print(f"ns-letsencrypt status: UNKNOWN: {exc}", file=sys.stderr)
        return int(State.UNKNOWN)
    if args.json:
        print(render_json(rows))
    elif args.nagios:
        print(render_nagios(rows, thresholds))
    else:
        print(render_table(rows) if rows else "no managed certificates on the appliance")
    return int(overall(rows))


def _print_prometheus(load_settings: SettingsLoader, certs_dir: Optional[Path]) -> int:
    """Issue 13: the metrics of the lifecycle, read live from the appliance (errors raise)."""
    from .lifecycle import ari, inventory, metrics, state
    from .register import home_dir
    from .session import open_client

    settings = load_settings()
    with open_client(settings) as client:
        rows = inventory.read(client, settings, certs_dir)
    data = state.load(state.state_path(home_dir()))
    print(metrics.render(metrics.registry(rows, ari.chosen_times(data), data.get("last_run"))),
          end="")
    return 0
