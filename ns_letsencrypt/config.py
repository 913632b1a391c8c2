"""Settings: the whole configuration, loaded once, validated up front, then frozen.

Sources, highest precedence first: command-line flags, ``NS_*`` environment variables, a
``.env`` file (``--env-file`` or ``<install dir>/.env``) read with ``dotenv_values``, the legacy
``mynsconfig.py`` of the original tool read *as data* (never imported or executed), defaults.
Every problem is collected and reported at once, naming the source and the key.

This module owns reading and validating settings; it never talks to the appliance. An empty
value (``NS_VSERVER=``) counts as "not set" at that level, so a lower source or the default
applies. Relative paths written in a file (``NS_PASSWORD_FILE``, ``NS_CA_BUNDLE``) are relative
to that file's directory; from the environment or a flag, to the working directory.
"""

from __future__ import annotations

import ast
import io
import ipaddress
import json
import logging
import math
import os
import posixpath
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from dataclasses import replace as dataclasses_replace
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import quote, urlsplit

from .errors import ConfigError
from .naming import HASH_LEN, is_valid_name

logger = logging.getLogger(__name__)

VSERVER_TYPES = ("lb", "cs", "global")
PREFLIGHT_MODES = ("on", "warn", "off")
VERIFY_SERVED_MODES = ("on", "warn", "off")
SAVE_MODES = ("always", "changed", "never")
AUTH_MODES = ("auto", "session", "header")
NOTIFY_EVENTS = ("failure", "expiry", "renewal")
HA_VERIFY_MODES = ("on", "warn", "off")  # NS_HA_VERIFY (issue 10)
ROLES = ("all", "certs", "challenges")  # NS_<T>_ROLE (issue 10)


@dataclass(frozen=True)
class Settings:
    """Everything ns-letsencrypt needs to know, with the setting names that feed each field."""

    url: str  # NS_URL, e.g. https://10.0.0.5 (legacy: connectiontype + nitroNSIP)
    username: str  # NS_USER (legacy: nitroUser)
    password: str = field(repr=False)  # NS_PASSWORD or NS_PASSWORD_FILE (legacy: nitroPass)
    auth: str = "auto"  # NS_AUTH: auto | session (login + cookie) | header (X-NITRO-USER/PASS)
    ca_bundle: Optional[str] = None  # NS_CA_BUNDLE: CA file that signed the management cert
    tls_pin: Optional[str] = None  # NS_TLS_PIN: SHA-256 of the management cert, 64 hex digits
    tls_insecure: bool = False  # NS_TLS_VERIFY=insecure: no verification (logged loudly)
    timeout_connect: float = 5.0  # NS_TIMEOUT="connect,read" seconds, or one number for both
    timeout_read: float = 60.0
    retries: int = 2  # NS_RETRIES: extra attempts for idempotent requests on network errors
    vserver: Optional[str] = None  # NS_VSERVER: HTTP vserver for challenges (legacy: nsvip)
    vserver_type: str = "lb"  # NS_VSERVER_TYPE: lb | cs | global (legacy viptype: lb | csw)
    cert_path: str = "/nsconfig/ssl"  # NS_CERT_PATH (legacy: nscertpath)
    certkey_prefix: str = "le-"  # NS_CERTKEY_PREFIX: prefix of managed certkeys (nspairname)
    challenge_prefix: str = "le-acme-"  # NS_CHALLENGE_PREFIX: temporary responder objects
    priority_start: int = 10  # NS_PRIORITY_START: lowest policy priority we use (polpristart)
    preflight: str = "warn"  # NS_PREFLIGHT: on | warn | off
    preflight_address: Optional[str] = None  # NS_PREFLIGHT_ADDRESS: host[:port] to probe via
    verify_served: str = "off"  # NS_VERIFY_SERVED: on | warn | off (TLS check of the VIP)
    verify_address: Optional[str] = None  # NS_VERIFY_ADDRESS: host[:port], else <name>:443
    verify_ca_bundle: Optional[str] = None  # NS_VERIFY_CA_BUNDLE: roots for it, else system's
    save_config: str = "changed"  # NS_SAVE_CONFIG: always | changed | never
    allow_key_over_http: bool = False  # NS_ALLOW_KEY_OVER_HTTP: send private keys over http://
    certkey_max_len: int = 31  # NS_CERTKEY_MAX_LEN
    certkey_names: Mapping[str, str] = field(default_factory=dict)  # NS_CERTKEY_NAMES
    # NS_CERTKEY_NAMES="www.example.com=le-server-www,shop.example.org=le-shop": adopt an
    # existing certkey (e.g. the original tool's le-server-* names) for that certificate.
    # --- SSL vserver bindings (issue 9) ---
    bind: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # NS_BIND / --bind
    # NS_BIND="www.example.com=vs-www-ssl,cs-main-ssl shopalias=cs-main-ssl": certificate (first
    # name or alias of its domains.txt line) -> the SSL vservers that must serve it.
    # -- DNS-01 (issue 11): how wildcard and dns-01 certificates are answered --------------
    challenge: str = "http-01"  # NS_CHALLENGE: http-01 | dns-01, for lines without a wildcard
    dns: Optional[str] = None  # NS_DNS: adns | rfc2136 | lexicon:<provider>
    dns_server: Optional[str] = None  # NS_DNS_SERVER: host[:port] of the primary (rfc2136)
    dns_tsig_key_file: Optional[str] = None  # NS_DNS_TSIG_KEY_FILE: BIND key file (rfc2136)
    dns_zone: Optional[str] = None  # NS_DNS_ZONE: else found by SOA
    dns_ttl: int = 60  # NS_DNS_TTL: seconds
    dns_wait: float = 120.0  # NS_DNS_WAIT: seconds until every server shows the values
    dns_nameservers: tuple[str, ...] = ()  # NS_DNS_NAMESERVERS: host[:port] ... to poll
    # -- issue 13, certificate lifecycle (ns_letsencrypt/lifecycle/) --
    ari: bool = True  # NS_ARI: on | off, follow the CA's ACME Renewal Information (RFC 9773)
    notify: tuple[str, ...] = field(default=(), repr=False)  # NS_NOTIFY: apprise URLs (secret)
    notify_on: frozenset[str] = frozenset({"failure", "expiry"})  # NS_NOTIFY_ON
    metrics_file: Optional[str] = None  # NS_METRICS_FILE: node_exporter textfile (*.prom)
    # --- HA pairs (issue 10) ---
    ha_verify: str = "warn"  # NS_HA_VERIFY: on | warn | off (check the secondary's copy)
    ha_peer_url: Optional[str] = None  # NS_HA_PEER_URL: the peer's NITRO URL, else from hanode
    # --- several appliances (issue 10) ---
    target_names: tuple[str, ...] = ()  # NS_TARGETS="dc1 dc2": one appliance or HA pair each
    role: str = "all"  # NS_ROLE / NS_<T>_ROLE: all | certs | challenges
    target: str = ""  # this target's name ("" for the single appliance of NS_URL)
    targets: tuple[Settings, ...] = field(default=(), repr=False)  # one Settings per target
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    # field name -> where its value came from ("flag", "env NS_URL", ".env /x/.env", ...)

    @property
    def timeout(self) -> tuple[float, float]:
        """The (connect, read) timeout pair for requests."""
        return (self.timeout_connect, self.timeout_read)


# -- the public entry points ------------------------------------------------------------


def load_settings(
    *,
    env_file: Optional[str] = None,
    legacy_file: Optional[str] = None,
    overrides: Optional[Mapping[str, str]] = None,
    environ: Optional[Mapping[str, str]] = None,
    install_dir: Optional[Path] = None,
) -> Settings:
    """Read every source, validate everything, and return the frozen settings.

    ``overrides`` are command-line flags keyed by their ``NS_*`` names; ``environ`` defaults
    to ``os.environ``; ``install_dir`` (where ``.env`` and ``mynsconfig.py`` are looked for)
    defaults to ``$NS_LE_HOME`` or the repository root.

    Raises:
        ConfigError: listing every problem found, each naming its key and source.
    """
    environ = os.environ if environ is None else environ
    home = _install_dir(install_dir, environ)
    problems: list[str] = []
    layers = [  # highest precedence first
        _flag_layer(overrides or {}, problems),
        _environ_layer(environ),
        _dotenv_layer(_pick_file(env_file, home / ".env"), problems),
        _legacy_layer(_pick_file(legacy_file, home / "mynsconfig.py"), problems),
    ]
    secrets = [layer["NS_PASSWORD"].value for layer in layers if "NS_PASSWORD" in layer]
    secrets += [url for layer in layers if "NS_NOTIFY" in layer  # issue 13: URLs hold tokens
                for url in layer["NS_NOTIFY"].value.split()]
    settings = _settings_from(layers, problems, secrets, need_url="NS_TARGETS" not in
                              _merged(layers))
    if settings is not None and settings.target_names:
        settings = _with_targets(settings, layers, problems, secrets)
    if settings is None:  # there were problems
        raise ConfigError(
            [_redact(problem, secrets) for problem in problems],
            hint="every setting is described in .env.example",
        )
    return settings


def redact(text: str, settings: Settings) -> str:
    """``text`` with the NITRO password and the NS_NOTIFY URLs (also URL- or JSON-escaped)
    replaced by ``***``."""
    return _redact(text, [settings.password, *settings.notify])


def _redact(text: str, secrets: list[str]) -> str:
    forms = {
        form
        for secret in secrets
        if secret
        for form in (secret, quote(secret, safe=""), json.dumps(secret)[1:-1])
    }
    for form in sorted(forms, key=len, reverse=True):  # longest first: no half-replaced forms
        text = text.replace(form, "***")
    return text


def _install_dir(install_dir: Optional[Path], environ: Mapping[str, str]) -> Path:
    if install_dir is not None:
        return Path(install_dir)
    home = environ.get("NS_LE_HOME", "").strip()
    return Path(home).expanduser() if home else Path(__file__).resolve().parent.parent


def _pick_file(explicit: Optional[str], default: Path) -> Optional[Path]:
    """The named file (which must then be readable), else the default one if it exists."""
    if explicit is not None:
        return Path(explicit).expanduser()
    return default if default.exists() else None


# -- where a value came from ----------------------------------------------------------

FLAG, ENVIRON, DOTENV, LEGACY = "flag", "env", ".env", "mynsconfig.py"


@dataclass(frozen=True)
class _Raw:
    """One setting as written in one source, before validation."""

    value: str
    name: str  # as the user wrote it: "NS_TIMEOUT", or a legacy name such as "polpristart"
    kind: str  # FLAG | ENVIRON | DOTENV | LEGACY
    path: Optional[Path] = None  # the file it was read from, if any

    @property
    def source(self) -> str:
        """Where the value came from, as ``Settings.sources`` records it."""
        if self.kind == FLAG:
            return "flag"
        if self.kind == ENVIRON:
            return f"env {self.name}"
        if self.kind == DOTENV:
            return f".env {self.path}"
        return f"mynsconfig.py {self.path} ({self.name})"

    @property
    def origin(self) -> str:
        if self.kind == FLAG:
            return "command line"
        if self.kind == ENVIRON:
            return "environment"
        return f"{self.kind} {self.path}"

    @property
    def where(self) -> str:
        """How a problem message starts: the key and where it was written."""
        return f"{self.name} (from {self.origin})"

    def file_path(self) -> Path:
        """The path this value names; a relative one is relative to the file it is written in."""
        path = Path(self.value.strip()).expanduser()
        if not path.is_absolute() and self.path is not None:
            return self.path.parent / path
        return path


class _Invalid(Exception):
    """A value failed validation; the message says why and never contains a password."""


def _shown(text: str) -> str:
    """A user's value, quoted for a message and cut short if long."""
    return json.dumps(text if len(text) <= 80 else text[:77] + "...", ensure_ascii=False)


# -- validation of single values --------------------------------------------------------

PREFIX_MAX_LEN = 40
PRIORITY_MAX = 2147483000
_NAME_OR_SPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.#@=: -]*")
_NAME_RULE = 'start with a letter, digit or "_", then only letters, digits and _ - . # @ = :'
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_DOMAIN = re.compile(r"(\*\.)?([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*"
                     r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def _parse_url(raw: _Raw) -> str:
    text = raw.value.strip()
    if "@" in text:  # never echo: it may hold a password
        raise _Invalid("must not contain a user name or password; use NS_USER and NS_PASSWORD")
    if "://" not in text:
        raise _Invalid(f'needs a scheme: write "https://{text}" '
                       f'(or "http://{text}" for plain HTTP)')
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _Invalid(f"the scheme must be https:// or http://, got {_shown(text)}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _Invalid("must be scheme, host and optional port only (the client adds "
                       f"/nitro/v1/...), got {_shown(text)}")
    if not _valid_host(parts.hostname or "", bracketed=parts.netloc.startswith("[")):
        raise _Invalid(f"has no valid host name or IP address, got {_shown(text)}")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise _Invalid(f"the port must be a number from 1 to 65535, got {_shown(text)}")
    return f"{scheme}://{parts.netloc.lower()}"


def _valid_host(host: str, *, bracketed: bool = False) -> bool:
    """A DNS name, an IPv4 address, or (written in brackets) an IPv6 address."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
        if bracketed or len(host) > 253 or all(label.isdigit() for label in labels):
            return False
        return all(_LABEL.fullmatch(label) for label in labels)
    return (address.version == 6) == bracketed


def _parse_host_port(raw: _Raw) -> str:
    text = raw.value.strip()
    match = re.fullmatch(r"\[([^\]]*)\](?::(.*))?", text)
    if match:
        host, port, bracketed = match.group(1), match.group(2), True
    elif text.count(":") == 1:
        host, port = text.split(":")
        bracketed = False
    else:  # a plain name, or a bare IPv6 address
        host, port, bracketed = text, None, ":" in text
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise _Invalid(f"the port must be a number from 1 to 65535, got {_shown(text)}")
    if not _valid_host(host, bracketed=bracketed):
        raise _Invalid("must be a host name or IP address with an optional :port, "
                       f"got {_shown(text)}")
    return text


def split_host_port(address: str, default_port: int) -> tuple[str, int]:
    """(host, port) of a validated ``host[:port]`` setting; IPv6 hosts come without brackets."""
    match = re.fullmatch(r"\[([^\]]*)\](?::(\d+))?", address)
    if match:
        return match.group(1), int(match.group(2) or default_port)
    if address.count(":") == 1:
        host, port = address.split(":")
        return host, int(port)
    return address, default_port


def _parse_text(raw: _Raw) -> str:
    text = raw.value.strip()
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise _Invalid("must not contain control characters")
    return text


def _parse_pin(raw: _Raw) -> str:
    # Several fingerprints (blanks or commas between them) pin the nodes of an HA pair: each
    # connection accepts exactly the one its node presents (nitro.NitroClient).
    pins = []
    for item in filter(None, re.split(r"[\s,]+", raw.value.strip())):
        digits = item.replace(":", "").lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digits):
            raise _Invalid("must be a SHA-256 fingerprint: 64 hex digits, colons allowed, "
                           f"got {_shown(item)} (an HA pair: one per node, comma-separated)")
        pins.append(digits)
    if not pins:
        raise _Invalid("must be a SHA-256 fingerprint: 64 hex digits, colons allowed")
    return ",".join(dict.fromkeys(pins))


def _parse_ca_bundle(raw: _Raw) -> str:
    path = raw.file_path()
    if not path.is_file():
        raise _Invalid(f"{path} does not exist or is not a file; name a PEM file of CA "
                       "certificates")
    if not os.access(path, os.R_OK):
        raise _Invalid(f"{path} is not readable")
    return str(path)


def _parse_tls_verify(raw: _Raw) -> bool:
    """True means insecure: ``tls_insecure`` is the field this feeds."""
    return _choice(("yes", "insecure"))(raw) == "insecure"


def _parse_timeout(raw: _Raw) -> tuple[float, float]:
    text = raw.value.strip()
    try:
        numbers = [float(part) for part in text.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2) or not all(math.isfinite(number) for number in numbers):
        raise _Invalid(f'must be a number or "connect,read", got {_shown(text)}')
    if min(numbers) <= 0:
        raise _Invalid(f"seconds must be greater than 0, got {_shown(text)}")
    return numbers[0], numbers[-1]


def _parse_cert_path(raw: _Raw) -> str:
    text = raw.value.strip()
    if not text.startswith("/"):
        raise _Invalid(f"must be an absolute path on the appliance such as /nsconfig/ssl, "
                       f"got {_shown(text)}")
    return "/" + posixpath.normpath(text).lstrip("/")


def _parse_bool(raw: _Raw) -> bool:
    text = raw.value.strip().lower()
    if text in ("yes", "true", "1"):
        return True
    if text in ("no", "false", "0"):
        return False
    raise _Invalid(f"must be yes or no (true/false, 1/0), got {_shown(raw.value.strip())}")


def _choice(choices: tuple[str, ...], aliases: Optional[Mapping[str, str]] = None,
            ) -> Callable[[_Raw], str]:
    """A parser for one of ``choices`` (any case); ``aliases`` maps old spellings."""

    def parse(raw: _Raw) -> str:
        text = raw.value.strip().lower()
        text = (aliases or {}).get(text, text)
        if text not in choices:
            raise _Invalid(f"must be one of {' | '.join(choices)}, got {_shown(raw.value.strip())}")
        return text

    return parse


def _int_in(low: int, high: int) -> Callable[[_Raw], int]:
    """A parser for a whole number from ``low`` to ``high``."""

    def parse(raw: _Raw) -> int:
        text = raw.value.strip()
        if not re.fullmatch(r"[+-]?\d{1,12}", text) or not low <= int(text) <= high:
            raise _Invalid(f"must be a whole number from {low} to {high}, got {_shown(text)}")
        return int(text)

    return parse


def _name(max_len: int, *, spaces: bool = False) -> Callable[[_Raw], str]:
    """A parser for a NetScaler object name (or name prefix) of at most ``max_len``.

    Names we create (prefixes) must not contain spaces; an existing vserver's name may.
    """

    def parse(raw: _Raw) -> str:
        text = raw.value.strip()
        valid = _NAME_OR_SPACE.fullmatch(text) if spaces else is_valid_name(text, len(text))
        if not valid:
            rule = _NAME_RULE + (" and spaces" if spaces else " (no spaces)")
            raise _Invalid(f"must {rule}, got {_shown(text)}")
        if len(text) > max_len:
            raise _Invalid(f"must be at most {max_len} characters, got {len(text)}: {_shown(text)}")
        return text

    return parse


def _parse_certkey_names(raw: _Raw) -> dict[str, str]:
    names: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in raw.value.split(","))):
        domain, equals, certkey = (part.strip() for part in entry.partition("="))
        domain = domain.lower().rstrip(".")
        if not equals or not _DOMAIN.fullmatch(domain) or not certkey:
            raise _Invalid('entries must look like "www.example.com=le-www", separated by '
                           f"commas, got {_shown(entry)}")
        if not is_valid_name(certkey, len(certkey)):
            raise _Invalid(f"certkey names must {_NAME_RULE} (no spaces), got {_shown(certkey)}")
        if domain in names:
            raise _Invalid(f"{domain} is listed twice")
        names[domain] = certkey
    return names


_CERT_NAME = re.compile(r"[a-z0-9_*][a-z0-9_.*-]*")


def _parse_bind(raw: _Raw) -> dict[str, tuple[str, ...]]:
    """``CERT=VSERVER[,VSERVER...]`` entries separated by blanks or ``;`` (NS_BIND)."""
    wanted: dict[str, tuple[str, ...]] = {}
    for entry in filter(None, re.split(r"[\s;]+", raw.value.strip())):
        cert, equals, rest = entry.partition("=")
        cert = cert.lower().rstrip(".")
        vservers = [name for name in rest.split(",") if name]
        if not equals or not _CERT_NAME.fullmatch(cert) or not vservers:
            raise _Invalid('entries must look like "www.example.com=vs-www-ssl[,cs-ssl]" (the '
                           "first name or alias of a domains.txt line, then SSL vservers), "
                           f"separated by blanks or ';', got {_shown(entry)}")
        bad = [name for name in vservers if not is_valid_name(name, 127)]
        if bad:
            raise _Invalid(f"vserver names must {_NAME_RULE} (no spaces), got {_shown(bad[0])}")
        merged = [*wanted.get(cert, ()), *vservers]
        wanted[cert] = tuple(dict.fromkeys(merged))
    return wanted


# -- DNS-01 settings (issue 11) --------------------------------------------------------

CHALLENGE_TYPES = ("http-01", "dns-01")
_DNS_MODE = re.compile(r"adns|rfc2136|lexicon:[a-z0-9][a-z0-9_-]*")


def _parse_dns_mode(raw: _Raw) -> str:
    text = raw.value.strip().lower()
    if not _DNS_MODE.fullmatch(text):
        raise _Invalid(f"must be adns, rfc2136 or lexicon:<provider>, got {_shown(text)}")
    return text


def _parse_zone(raw: _Raw) -> str:
    text = raw.value.strip().lower().rstrip(".")
    if not _valid_host(text) or text.startswith("*"):
        raise _Invalid(f"must be a DNS zone name such as example.com, got {_shown(text)}")
    return text


def _parse_seconds(raw: _Raw) -> float:
    text = raw.value.strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or not 0 < seconds <= 3600:
        raise _Invalid(f"must be a number of seconds from 0 to 3600, got {_shown(text)}")
    return seconds


def _parse_nameservers(raw: _Raw) -> tuple[str, ...]:
    parts = raw.value.replace(",", " ").split()
    return tuple(_parse_host_port(_Raw(part, raw.name, raw.kind, raw.path)) for part in parts)


def _check_dns(values: Mapping[str, Any], at: Callable[[str], str],
               problems: list[str]) -> None:
    """NS_DNS=rfc2136 needs its server and key; dns-01 by default needs NS_DNS."""
    if values.get("dns") == "rfc2136":
        for key, name in (("NS_DNS_SERVER", "dns_server"),
                          ("NS_DNS_TSIG_KEY_FILE", "dns_tsig_key_file")):
            if not values.get(name):
                problems.append(f"{at('NS_DNS')} is rfc2136, which needs {key}")
    if values.get("challenge") == "dns-01" and not values.get("dns"):
        problems.append(f"{at('NS_CHALLENGE')} is dns-01, which needs NS_DNS "
                        "(adns, rfc2136 or lexicon:<provider>)")


def _parse_notify(raw: _Raw) -> tuple[str, ...]:
    """apprise URLs separated by whitespace. They hold tokens: a message never shows one."""
    urls = tuple(raw.value.split())
    for number, url in enumerate(urls, start=1):
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", url):
            raise _Invalid(f"entry {number} is not a URL such as json://host/path or "
                           "mailtos://user:pass@host (value not shown: it may hold a secret)")
    return urls


def _parse_notify_on(raw: _Raw) -> frozenset[str]:
    events = [part for part in re.split(r"[\s,]+", raw.value.strip().lower()) if part]
    unknown = [event for event in events if event not in NOTIFY_EVENTS]
    if unknown:
        raise _Invalid(f"must be any of {', '.join(NOTIFY_EVENTS)}, separated by commas, got "
                       f"{_shown(raw.value.strip())}")
    return frozenset(events)


def _parse_metrics_file(raw: _Raw) -> str:
    path = raw.file_path()
    if path.suffix != ".prom":
        raise _Invalid(f"must end in .prom (node_exporter's textfile collector reads only "
                       f"those), got {_shown(str(path))}")
    if not path.parent.is_dir():
        raise _Invalid(f"{path.parent} is not a directory")
    return str(path)


# NS_* name -> (Settings field, parser). NS_PASSWORD(_FILE) are resolved separately.
_PARSERS: dict[str, tuple[str, Callable[[_Raw], Any]]] = {
    "NS_URL": ("url", _parse_url),
    "NS_USER": ("username", _parse_text),
    "NS_AUTH": ("auth", _choice(AUTH_MODES)),
    "NS_CA_BUNDLE": ("ca_bundle", _parse_ca_bundle),
    "NS_TLS_PIN": ("tls_pin", _parse_pin),
    "NS_TLS_VERIFY": ("tls_insecure", _parse_tls_verify),
    "NS_TIMEOUT": ("timeout", _parse_timeout),  # fills timeout_connect and timeout_read
    "NS_RETRIES": ("retries", _int_in(0, 10)),
    "NS_VSERVER": ("vserver", _name(127, spaces=True)),
    "NS_VSERVER_TYPE": ("vserver_type", _choice(VSERVER_TYPES, {"csw": "cs"})),
    "NS_CERT_PATH": ("cert_path", _parse_cert_path),
    "NS_CERTKEY_PREFIX": ("certkey_prefix", _name(PREFIX_MAX_LEN)),
    "NS_CHALLENGE_PREFIX": ("challenge_prefix", _name(PREFIX_MAX_LEN)),
    "NS_PRIORITY_START": ("priority_start", _int_in(1, PRIORITY_MAX)),
    "NS_PREFLIGHT": ("preflight", _choice(PREFLIGHT_MODES)),
    "NS_PREFLIGHT_ADDRESS": ("preflight_address", _parse_host_port),
    "NS_VERIFY_SERVED": ("verify_served", _choice(VERIFY_SERVED_MODES)),
    "NS_VERIFY_ADDRESS": ("verify_address", _parse_host_port),
    "NS_VERIFY_CA_BUNDLE": ("verify_ca_bundle", _parse_ca_bundle),
    "NS_SAVE_CONFIG": ("save_config", _choice(SAVE_MODES)),
    "NS_ALLOW_KEY_OVER_HTTP": ("allow_key_over_http", _parse_bool),
    "NS_CERTKEY_MAX_LEN": ("certkey_max_len", _int_in(8, 127)),
    "NS_CERTKEY_NAMES": ("certkey_names", _parse_certkey_names),
    "NS_BIND": ("bind", _parse_bind),  # SSL vserver bindings (issue 9)
    # DNS-01 (issue 11)
    "NS_CHALLENGE": ("challenge", _choice(CHALLENGE_TYPES)),
    "NS_DNS": ("dns", _parse_dns_mode),
    "NS_DNS_SERVER": ("dns_server", _parse_host_port),
    "NS_DNS_TSIG_KEY_FILE": ("dns_tsig_key_file", lambda raw: str(raw.file_path())),
    "NS_DNS_ZONE": ("dns_zone", _parse_zone),
    "NS_DNS_TTL": ("dns_ttl", _int_in(1, 86400)),
    "NS_DNS_WAIT": ("dns_wait", _parse_seconds),
    "NS_DNS_NAMESERVERS": ("dns_nameservers", _parse_nameservers),
    # issue 13, certificate lifecycle
    "NS_ARI": ("ari", lambda raw: _choice(("on", "off"))(raw) == "on"),
    "NS_NOTIFY": ("notify", _parse_notify),
    "NS_NOTIFY_ON": ("notify_on", _parse_notify_on),
    "NS_METRICS_FILE": ("metrics_file", _parse_metrics_file),
    # HA pairs (issue 10)
    "NS_HA_VERIFY": ("ha_verify", _choice(HA_VERIFY_MODES)),
    "NS_HA_PEER_URL": ("ha_peer_url", _parse_url),
    # several appliances (issue 10)
    "NS_TARGETS": ("target_names", lambda raw: _parse_targets(raw)),
    "NS_ROLE": ("role", _choice(ROLES)),
}
SETTING_NAMES = frozenset(_PARSERS) | {"NS_PASSWORD", "NS_PASSWORD_FILE"}
# Room a certkey name needs after the prefix: at least one character, "-" and the hash.
_CERTKEY_ROOM = HASH_LEN + 2


# -- combining the sources ------------------------------------------------------------

Layer = dict[str, _Raw]


def _settings_from(layers: list[Layer], problems: list[str],
                   secrets: list[str], need_url: bool = True) -> Optional[Settings]:
    """Validate the winning value of every key and build Settings (None if anything failed).

    The password found is appended to ``secrets``, so that no message can show it.
    """
    merged: Layer = {}
    for layer in reversed(layers):
        merged.update(layer)
    values: dict[str, Any] = {}
    sources = {f.name: "default" for f in fields(Settings) if f.name != "sources"}
    for key, (name, parse) in _PARSERS.items():
        raw = merged.get(key)
        if raw is None:
            continue
        try:
            values[name] = parse(raw)
        except _Invalid as exc:
            problems.append(f"{raw.where}: {exc}")
            continue
        for field_name in ("timeout_connect", "timeout_read") if name == "timeout" else (name,):
            sources[field_name] = raw.source
    password = _resolve_password(layers, problems) if need_url or _any_password(layers) else None
    if password is not None:
        values["password"], sources["password"] = password
        secrets.append(password[0])
    _check_required(merged, problems, need_url)
    _check_combinations(values, merged, problems)
    if problems:
        return None
    if "timeout" in values:
        values["timeout_connect"], values["timeout_read"] = values.pop("timeout")
    if not need_url:  # NS_TARGETS: each target's Settings carries its own address and user
        values.setdefault("url", "")
        values.setdefault("username", "")
        values.setdefault("password", "")
    return Settings(**values, sources=sources)


def _check_required(merged: Layer, problems: list[str], need_url: bool = True) -> None:
    if not need_url:
        return  # NS_TARGETS: checked for each target
    if "NS_URL" not in merged:
        problems.append("NS_URL is required: the appliance's management address, "
                        "e.g. NS_URL=https://10.0.0.5")
    if "NS_USER" not in merged:
        problems.append("NS_USER is required: the NITRO user name")


def _check_combinations(values: Mapping[str, Any], merged: Layer, problems: list[str]) -> None:
    """Rules that involve more than one setting; each names every key involved."""
    # A key whose own value was rejected is already reported; a rule about it would only guess.
    failed = {key for key in merged if key in _PARSERS and _PARSERS[key][0] not in values}

    def at(key: str) -> str:
        return merged[key].where if key in merged else f"{key} (default)"

    insecure = values.get("tls_insecure", False)
    for key, field_name in (("NS_TLS_PIN", "tls_pin"), ("NS_CA_BUNDLE", "ca_bundle")):
        if insecure and values.get(field_name):
            problems.append(f"{at(key)} and {at('NS_TLS_VERIFY')}: NS_TLS_VERIFY=insecure turns "
                            f"off the verification {key} asks for; remove one of them")
    vserver_type = values.get("vserver_type", "lb")
    if vserver_type in ("lb", "cs") and not {"NS_VSERVER", "NS_VSERVER_TYPE"} & failed and (
            "vserver" not in values):
        problems.append(f"{at('NS_VSERVER_TYPE')} is {vserver_type}, which needs NS_VSERVER: "
                        "the HTTP vserver that answers the challenges (or NS_VSERVER_TYPE=global)")
    if not {"NS_CERTKEY_MAX_LEN", "NS_CERTKEY_PREFIX", "NS_CERTKEY_NAMES"} & failed:
        _check_certkey_lengths(values, at, problems)
    if not {"NS_DNS", "NS_CHALLENGE", "NS_DNS_SERVER", "NS_DNS_TSIG_KEY_FILE"} & failed:
        _check_dns(values, at, problems)


def _check_certkey_lengths(values: Mapping[str, Any], at: Callable[[str], str],
                           problems: list[str]) -> None:
    max_len = values.get("certkey_max_len", 31)
    prefix = values.get("certkey_prefix", "le-")
    if len(prefix) + _CERTKEY_ROOM > max_len:
        problems.append(f"{at('NS_CERTKEY_PREFIX')}: {_shown(prefix)} leaves fewer than "
                        f"{_CERTKEY_ROOM} characters for the domain part and hash of certkey names "
                        f"({at('NS_CERTKEY_MAX_LEN')} is {max_len})")
    too_long = [name for name in values.get("certkey_names", {}).values() if len(name) > max_len]
    if too_long:
        problems.append(f"{at('NS_CERTKEY_NAMES')}: longer than {max_len} characters "
                        f"(NS_CERTKEY_MAX_LEN): {', '.join(too_long)}")


def _resolve_password(layers: list[Layer], problems: list[str]) -> Optional[tuple[str, str]]:
    """(password, source) from the highest source that sets NS_PASSWORD or NS_PASSWORD_FILE."""
    for layer in layers:
        direct, from_file = layer.get("NS_PASSWORD"), layer.get("NS_PASSWORD_FILE")
        if direct and from_file:
            problems.append(f"NS_PASSWORD and NS_PASSWORD_FILE (from {direct.origin}) are both "
                            "set; set exactly one")
            return None
        if direct:
            return direct.value, direct.source
        if from_file:
            password = _read_password_file(from_file, problems)
            return None if password is None else (password, from_file.source)
    problems.append("NS_PASSWORD or NS_PASSWORD_FILE is required: the NITRO user's password "
                    "(NS_PASSWORD_FILE=/path/to/file keeps it out of the environment)")
    return None


def _read_password_file(raw: _Raw, problems: list[str]) -> Optional[str]:
    path = raw.file_path()
    text = _read_text(path, f"{raw.where}: {path}", problems)
    if text is None:
        return None
    lines = text.splitlines()
    password = lines[0].strip() if lines else ""
    if not password:
        problems.append(f"{raw.where}: {path} is empty; its first line must be the password")
        return None
    _warn_if_exposed(path)
    return password


# -- reading the sources ----------------------------------------------------------------


def _flag_layer(overrides: Mapping[str, str], problems: list[str]) -> Layer:
    layer: Layer = {}
    for key, value in overrides.items():
        if key not in SETTING_NAMES:
            problems.append(f"{key} (from command line): not a setting")
        elif value.strip():
            layer[key] = _Raw(value, key, FLAG)
    return layer


def _environ_layer(environ: Mapping[str, str]) -> Layer:
    layer: Layer = {}
    for key, value in environ.items():
        if key in SETTING_NAMES or _target_key(key):
            if value.strip():
                layer[key] = _Raw(value, key, ENVIRON)
        elif key.startswith("NS_"):
            # Other software may use NS_* too; only a near miss is worth a warning.
            import difflib  # only for a misspelt name

            guess = difflib.get_close_matches(key, sorted(SETTING_NAMES), n=1, cutoff=0.85)
            if guess:
                logger.warning("environment variable %s is not a setting; did you mean %s?",
                               key, guess[0])
    return layer


def _dotenv_layer(path: Optional[Path], problems: list[str]) -> Layer:
    if path is None:
        return {}
    text = _read_text(path, f".env {path}", problems)
    if text is None or not _dotenv_parses(text, path, problems):
        return {}
    # No ${VAR} interpolation: a password may contain "$", and values must not depend on
    # whatever environment cron happens to provide.
    from dotenv import dotenv_values  # imported only when there is a .env to read

    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    layer: Layer = {}
    unknown = []
    for key, value in values.items():
        if key not in SETTING_NAMES and not _target_key(key):
            unknown.append(key)
        elif value is None:
            problems.append(f"{key} (from .env {path}): has no value; write {key}=value")
        elif value.strip():
            layer[key] = _Raw(value, key, DOTENV, path)
    _warn_script_settings(path, [key for key in unknown if key in SCRIPT_SETTINGS])
    unknown = [key for key in unknown if key not in SCRIPT_SETTINGS]
    if unknown:
        logger.warning(".env %s: ignoring unknown settings %s (every setting is listed in "
                       ".env.example)", path, ", ".join(unknown))
    if "NS_PASSWORD" in layer:
        _warn_if_exposed(path)
    return layer


# Read by ns-cronjob.sh and ns-forcerenew.sh from their environment, before any .env is read.
SCRIPT_SETTINGS = frozenset({"NS_LOG_LEVEL", "NS_LOG_FILE", "NS_LOG_MAX_KB", "NS_LOCK_WAIT"})


def _warn_script_settings(path: Path, keys: list[str]) -> None:
    if keys:
        logger.warning(".env %s: ignoring %s: the scripts read it from their environment "
                       "(the crontab line, or Environment= in the systemd unit)", path,
                       ", ".join(keys))


def _dotenv_parses(text: str, path: Path, problems: list[str]) -> bool:
    """False after recording each line python-dotenv cannot parse (it would skip them)."""
    from dotenv.parser import parse_stream

    bad = [binding.original.line for binding in parse_stream(io.StringIO(text)) if binding.error]
    for line in bad:  # the line itself is not shown: it may hold the password
        problems.append(f".env {path} line {line}: not a NAME=value line (quote values that "
                        "contain spaces or #)")
    return not bad


def _read_text(path: Path, label: str, problems: list[str]) -> Optional[str]:
    """The file's text with LF line ends, or None after recording why it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        problems.append(f"{label}: cannot read ({exc.strerror or exc})")
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # The offending byte is not shown: it may be part of a password.
        line = data[: exc.start].count(b"\n") + 1
        problems.append(f"{label}: not UTF-8 text (invalid byte on line {line}); save it as UTF-8")
        return None
    return text.replace("\r\n", "\n")


def _warn_if_exposed(path: Path) -> None:
    """Warn when a file holding the password can be read by anyone but its owner."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        logger.warning("%s holds the NITRO password and is readable by group or others "
                       "(mode %04o); run: chmod 600 %s", path, mode, path)


# -- the legacy mynsconfig.py -----------------------------------------------------------

# Legacy name -> NS_* name; connectiontype + nitroNSIP together become NS_URL.
_LEGACY_RENAMES = {
    "nitroUser": "NS_USER",
    "nitroPass": "NS_PASSWORD",
    "nspairname": "NS_CERTKEY_PREFIX",
    "nscertpath": "NS_CERT_PATH",
    "polpristart": "NS_PRIORITY_START",
    "nsvip": "NS_VSERVER",
    "viptype": "NS_VSERVER_TYPE",
}
_LEGACY_URL = ("connectiontype", "nitroNSIP")
# Names now derived per certificate (files, CA certkeys) or from NS_CHALLENGE_PREFIX.
_LEGACY_SUPERSEDED = ("nscert", "nskey", "nschainname", "nschain", "nsrespact", "nsresppol")
_LEGACY_KNOWN = (*_LEGACY_URL, *_LEGACY_RENAMES, *_LEGACY_SUPERSEDED)


def _legacy_layer(path: Optional[Path], problems: list[str]) -> Layer:
    if path is None:
        return {}
    assigned, layer = _read_legacy(path, problems)
    _note_legacy_names(path, list(assigned))
    if "NS_PASSWORD" in layer:
        _warn_if_exposed(path)
    return layer


def _read_legacy(path: Path, problems: list[str]) -> tuple[dict[str, object], Layer]:
    """The file's assignments, and the NS_* settings they stand for."""
    text = _read_text(path, f"mynsconfig.py {path}", problems)
    if text is None:
        return {}, {}
    assigned = _legacy_assignments(text, path, problems)
    strings = _legacy_strings(assigned, path, problems)
    layer = {
        _LEGACY_RENAMES[name]: _Raw(value, name, LEGACY, path)
        for name, value in strings.items()
        if name in _LEGACY_RENAMES and value.strip()
    }
    url = _legacy_url(strings, path, problems)
    if url is not None:
        layer["NS_URL"] = url
    return assigned, layer


def _legacy_assignments(text: str, path: Path, problems: list[str]) -> dict[str, object]:
    """Every ``name = literal`` of the file, parsed with ``ast`` and never executed."""
    try:
        tree = ast.parse(text, filename=str(path))
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None) or "?"
        reason = getattr(exc, "msg", None) or "unreadable"
        problems.append(f'mynsconfig.py {path} line {line}: not valid Python ({reason}); the file '
                        'may only hold lines like name = "value"')
        return {}
    assigned: dict[str, object] = {}
    for node in tree.body:
        name, value = _plain_assignment(node)
        if name is not None:
            if name in assigned:
                logger.warning("mynsconfig.py %s line %d: %s is assigned again; the last value "
                               "is used", path, node.lineno, name)
            assigned[name] = value
        elif not _is_string_comment(node):
            problems.append(f"mynsconfig.py {path} line {node.lineno}: {_describe(node)} is not a "
                            "plain assignment of a literal; the file is read as data and never "
                            "run, so remove it (or move the settings to .env)")
    return assigned


def _plain_assignment(node: ast.stmt) -> tuple[Optional[str], object]:
    """(name, value) for ``name = "text"`` or ``name = 10``; (None, None) for anything else."""
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target, value = node.targets[0], node.value
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        target, value = node.target, node.value
    else:
        return None, None
    if not isinstance(target, ast.Name) or not _is_literal(value):
        return None, None
    return target.id, ast.literal_eval(value)


def _is_literal(value: ast.expr) -> bool:
    """A string or a (possibly negative) number: nothing that could compute or call."""
    kinds: tuple[type, ...] = (str, int, float)
    if isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub):
        value, kinds = value.operand, (int, float)
    return isinstance(value, ast.Constant) and type(value.value) in kinds


def _is_string_comment(node: ast.stmt) -> bool:
    """A bare string (a docstring): as harmless as a comment."""
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(
        node.value.value, str)


def _describe(node: ast.stmt) -> str:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return "an import"
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        return "a function call"
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        return "an assignment of a computed value"
    return f"a statement ({type(node).__name__})"


def _legacy_strings(assigned: Mapping[str, object], path: Path,
                    problems: list[str]) -> dict[str, str]:
    """The known variables as text, after checking their types; notes what is obsolete."""
    strings: dict[str, str] = {}
    for name, value in assigned.items():
        if name == "polpristart" and isinstance(value, int) and not isinstance(value, bool):
            strings[name] = str(value)
        elif isinstance(value, str):
            strings[name] = value
        elif name in _LEGACY_KNOWN:
            problems.append(f"{name} (from mynsconfig.py {path}): must be a quoted string, "
                            f"got a {type(value).__name__}")
    return strings


def _note_legacy_names(path: Path, names: list[str]) -> None:
    """One note each: the .env names that replace the legacy ones, superseded and unknown."""
    renames = [f"{name} -> {_LEGACY_RENAMES[name]}" for name in names if name in _LEGACY_RENAMES]
    if any(name in _LEGACY_URL for name in names):
        renames.insert(0, "connectiontype + nitroNSIP -> NS_URL")
    if renames:
        logger.warning("mynsconfig.py %s is deprecated; 'ns-letsencrypt migrate-config' puts "
                       "these settings in .env: %s (see .env.example), then remove it", path,
                       ", ".join(renames))
    superseded = [name for name in names if name in _LEGACY_SUPERSEDED]
    if superseded:
        logger.info("mynsconfig.py %s: %s no longer used: certificate files and CA certkeys are "
                    "now named per certificate, and challenge objects share "
                    "NS_CHALLENGE_PREFIX", path, ", ".join(superseded))
    unknown = [name for name in names if name not in _LEGACY_KNOWN]
    if unknown:
        logger.warning("mynsconfig.py %s: ignoring unknown variables %s", path, ", ".join(unknown))


def _legacy_url(strings: Mapping[str, str], path: Path, problems: list[str]) -> Optional[_Raw]:
    """NS_URL from connectiontype (default https) and nitroNSIP."""
    scheme = strings.get("connectiontype", "").strip().lower() or "https"
    address = strings.get("nitroNSIP", "").strip()
    if scheme not in ("http", "https"):
        problems.append(f'connectiontype (from mynsconfig.py {path}): must be "https" or "http", '
                        f"got {_shown(strings['connectiontype'])}")
        return None
    if not address:
        if "connectiontype" in strings:
            logger.warning("mynsconfig.py %s: connectiontype is ignored without nitroNSIP", path)
        return None
    url = address if "://" in address else f"{scheme}://{address}"
    return _Raw(url, "nitroNSIP", LEGACY, path)


# -- migrate-config: what a legacy file becomes in .env ---------------------------------


@dataclass(frozen=True)
class LegacySettings:
    """The NS_* settings a mynsconfig.py stands for (``ns-letsencrypt migrate-config``)."""

    path: Path
    values: Mapping[str, str]  # NS_* name -> value as the legacy file gives it
    origins: Mapping[str, str]  # NS_* name -> the legacy variable(s) it comes from
    superseded: list[str]  # assigned, no longer used
    unknown: list[str]  # assigned, not a variable of the original tool


def read_legacy_settings(path: Path) -> LegacySettings:
    """Read ``path`` as ``load_settings`` does (as data), without the notes it logs.

    Raises:
        ConfigError: listing every problem of the file (values never shown).
    """
    problems: list[str] = []
    assigned, layer = _read_legacy(path, problems)
    if problems:
        secrets = [layer["NS_PASSWORD"].value] if "NS_PASSWORD" in layer else []
        raise ConfigError([_redact(problem, secrets) for problem in problems],
                          hint="fix the file, then run migrate-config again")
    origins = {key: raw.name for key, raw in layer.items()}
    if "NS_URL" in origins and "connectiontype" in assigned:
        origins["NS_URL"] = "connectiontype + nitroNSIP"
    return LegacySettings(
        path=path,
        values={key: raw.value.strip() for key, raw in layer.items()},
        origins=origins,
        superseded=[name for name in assigned if name in _LEGACY_SUPERSEDED],
        unknown=[name for name in assigned if name not in _LEGACY_KNOWN],
    )


def default_install_dir() -> Path:
    """Where ``.env`` and ``mynsconfig.py`` are looked for: $NS_LE_HOME or the repository."""
    return _install_dir(None, os.environ)
# -- several appliances (issue 10): NS_TARGETS ------------------------------------------
# Each target's settings are the NS_* settings with its name after "NS_" (NS_DC1_URL ...),
# falling back to the unprefixed value; NS_<T>_URL has no fallback (two targets on one
# address would be one appliance twice).

_TARGET_NAME = re.compile(r"[A-Za-z0-9]+")
_TARGET_KEY = re.compile(r"NS_([A-Z0-9]+)_([A-Z0-9_]+)")


def _target_key(key: str) -> Optional[tuple[str, str]]:
    """``NS_DC1_URL`` -> (``DC1``, ``NS_URL``); None for a plain setting or anything else."""
    match = _TARGET_KEY.fullmatch(key)
    if key in SETTING_NAMES or match is None:
        return None
    setting = f"NS_{match.group(2)}"
    if setting not in SETTING_NAMES or setting == "NS_TARGETS":
        return None
    return match.group(1), setting


def _parse_targets(raw: _Raw) -> tuple[str, ...]:
    names: list[str] = []
    for name in filter(None, re.split(r"[\s,]+", raw.value.strip())):
        if not _TARGET_NAME.fullmatch(name):
            raise _Invalid(f"target names are letters and digits only, got {_shown(name)}")
        if name.upper() in (n.upper() for n in names):
            raise _Invalid(f"{_shown(name)} is listed twice (names are compared without case)")
        names.append(name)
    if not names:
        raise _Invalid('names the targets, e.g. NS_TARGETS="dc1 dc2"')
    return tuple(names)


def _any_password(layers: list[Layer]) -> bool:
    return any("NS_PASSWORD" in layer or "NS_PASSWORD_FILE" in layer for layer in layers)


def _merged(layers: list[Layer]) -> Layer:
    merged: Layer = {}
    for layer in reversed(layers):
        merged.update(layer)
    return merged


def _with_targets(settings: Settings, layers: list[Layer], problems: list[str],
                  secrets: list[str]) -> Optional[Settings]:
    """``settings`` with one derived Settings per NS_TARGETS name (None after problems)."""
    targets = []
    for name in settings.target_names:
        prefix = name.upper()
        own = [{setting: raw for key, raw in layer.items()
                if (found := _target_key(key)) and found[0] == prefix
                for setting in (found[1],)} for layer in layers]
        if not any("NS_URL" in layer for layer in own):
            problems.append(f"NS_TARGETS names {name}, but NS_{prefix}_URL is not set: each "
                            "target needs its own management address")
            continue
        base = [{k: v for k, v in layer.items() if k != "NS_URL"} for layer in layers]
        derived = _settings_from(own + base, problems, secrets)
        if derived is not None:
            targets.append(dataclasses_replace(derived, target=name, target_names=()))
    if problems:
        return None
    return dataclasses_replace(settings, targets=tuple(targets))
