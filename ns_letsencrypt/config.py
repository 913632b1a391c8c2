"""Settings: the whole configuration, loaded once, validated up front, then frozen.

Sources, highest precedence first: command-line flags, ``NS_*`` environment variables, a
``.env`` file (``--env-file`` or ``<install dir>/.env``) read with ``dotenv_values``, the legacy
``mynsconfig.py`` of the original tool read *as data* (never imported or executed), defaults.
Every problem is collected and reported at once, naming the source and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional

VSERVER_TYPES = ("lb", "cs", "global")
PREFLIGHT_MODES = ("on", "warn", "off")
SAVE_MODES = ("always", "changed", "never")
AUTH_MODES = ("session", "header")


@dataclass(frozen=True)
class Settings:
    """Everything ns-letsencrypt needs to know, with the setting names that feed each field."""

    url: str  # NS_URL, e.g. https://10.0.0.5 (legacy: connectiontype + nitroNSIP)
    username: str  # NS_USER (legacy: nitroUser)
    password: str = field(repr=False)  # NS_PASSWORD or NS_PASSWORD_FILE (legacy: nitroPass)
    auth: str = "session"  # NS_AUTH: session (login + cookie) or header (X-NITRO-USER/PASS)
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
    save_config: str = "changed"  # NS_SAVE_CONFIG: always | changed | never
    allow_key_over_http: bool = False  # NS_ALLOW_KEY_OVER_HTTP: send private keys over http://
    certkey_max_len: int = 31  # NS_CERTKEY_MAX_LEN
    certkey_names: Mapping[str, str] = field(default_factory=dict)  # NS_CERTKEY_NAMES
    # NS_CERTKEY_NAMES="www.example.com=le-server-www,shop.example.org=le-shop": adopt an
    # existing certkey (e.g. the original tool's le-server-* names) for that certificate.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    # field name -> where its value came from ("flag", "env NS_URL", ".env /x/.env", ...)

    @property
    def timeout(self) -> tuple[float, float]:
        """The (connect, read) timeout pair for requests."""
        return (self.timeout_connect, self.timeout_read)
