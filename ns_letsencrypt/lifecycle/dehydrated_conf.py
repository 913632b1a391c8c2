"""The values of dehydrated's config.sh the lifecycle needs, read the way dehydrated reads them.

config.sh is bash, so bash sources it (with ``BASEDIR`` preset to the install directory, as
tools/common.sh does) and prints the variables; nothing here parses shell. The CA presets are
dehydrated 0.7's. Trust for the CA's TLS certificate is dehydrated's: a ``--cacert FILE`` in
``CURL_OPTS`` (private CAs, the test stack's pebble), else the system's roots.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from ..errors import ConfigError

# dehydrated 0.7's CA presets (its CA_* variables)
CA_PRESETS = {
    "letsencrypt": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt-test": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "zerossl": "https://acme.zerossl.com/v2/DV90",
    "buypass": "https://api.buypass.com/acme/directory",
    "buypass-test": "https://api.test4.buypass.no/acme/directory",
}
_NAMES = ("CA", "CURL_OPTS", "ACME_PROFILE", "EAB_KID", "BASEDIR", "CERTDIR", "DOMAINS_TXT")
_PRINT = 'set +u; . "$1" >/dev/null; shift; for v in "$@"; do printf "%s\\0" "${!v:-}"; done'


@dataclass(frozen=True)
class DehydratedConfig:
    """The CA and paths of one config.sh (EAB_HMAC_KEY is never read: it is a secret)."""

    ca_url: str
    verify: Union[str, bool]  # a CA file for requests, or True for the system's roots
    profile: Optional[str]
    eab_kid_set: bool
    basedir: Path
    certs_dir: Path
    domains_txt: Path


def read_config(config: Path, home: Path) -> DehydratedConfig:
    """Source ``config`` with bash and return what it sets (dehydrated's defaults otherwise)."""
    if not config.is_file():
        raise ConfigError(f"{config} not found", hint="pass --config, or set NS_LE_HOME to the "
                                                       "directory holding config.sh")
    try:
        done = subprocess.run(["bash", "-c", _PRINT, "_", str(config), *_NAMES],
                              capture_output=True,
                              env={"BASEDIR": str(home), "PATH": "/usr/bin:/bin"},
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"{config} could not be read by bash: {exc}") from None
    if done.returncode != 0:
        raise ConfigError(f"{config} could not be read by bash (exit status {done.returncode})")
    values = dict(zip(_NAMES, done.stdout.decode("utf-8", "replace").split("\0")))
    basedir = Path(values.get("BASEDIR") or home)
    ca = values.get("CA") or "letsencrypt"
    return DehydratedConfig(
        ca_url=CA_PRESETS.get(ca, ca),
        verify=cacert_of(values.get("CURL_OPTS", "")) or True,
        profile=values.get("ACME_PROFILE") or None,
        eab_kid_set=bool(values.get("EAB_KID")),
        basedir=basedir,
        certs_dir=Path(values.get("CERTDIR") or basedir / "certs"),
        domains_txt=Path(values.get("DOMAINS_TXT") or basedir / "domains.txt"),
    )


def cacert_of(curl_opts: str) -> Optional[str]:
    """The file of ``--cacert FILE`` (or ``--cacert=FILE``) in CURL_OPTS, if any."""
    try:
        words = shlex.split(curl_opts)
    except ValueError:
        words = curl_opts.split()
    for index, word in enumerate(words):
        if word == "--cacert" and index + 1 < len(words):
            return words[index + 1]
        if word.startswith("--cacert="):
            return word.split("=", 1)[1]
    return None
