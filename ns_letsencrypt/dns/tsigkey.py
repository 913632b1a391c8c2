"""Reading a TSIG key from a BIND key file (``tsig-keygen`` output, ``NS_DNS_TSIG_KEY_FILE``).

The file holds one clause ``key "<name>" { algorithm <alg>; secret "<base64>"; };``; the
algorithm defaults to hmac-sha256 when the clause has none. The secret never appears in a
message: problems name the file and the line of the clause only. A file that group or others
may read is warned about, as the NITRO password file is.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_ALGORITHM = "hmac-sha256"
ALGORITHMS = ("hmac-md5", "hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384",
              "hmac-sha512")
# A quoted string first, so that "//" or "#" inside a base64 secret is not taken for a comment.
_COMMENT = re.compile(r'("[^"]*")|(#|//)[^\n]*|/\*.*?\*/', re.DOTALL)
_KEY = re.compile(r'key\s+"?([A-Za-z0-9_.-]+)"?\s*\{(.*?)\}\s*;', re.DOTALL)
_ALGORITHM = re.compile(r"algorithm\s+\"?([A-Za-z0-9.-]+)\"?\s*;")
_SECRET = re.compile(r'secret\s+"([^"]*)"\s*;')


@dataclass(frozen=True)
class TsigKey:
    """A TSIG key: its name, algorithm, and the secret (never shown)."""

    name: str
    algorithm: str
    secret: str = field(repr=False)


def read_key_file(path: Path) -> TsigKey:
    """The first key clause of ``path``.

    Raises:
        ConfigError: the file is unreadable, or holds no complete, valid key clause.
    """
    where = f"NS_DNS_TSIG_KEY_FILE {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"{where}: cannot read ({reason})",
                          "the hook runs as the user of dehydrated; make the file readable "
                          "by that user only (chmod 600)") from None
    warn_if_exposed(path)
    match = _KEY.search(_COMMENT.sub(lambda m: m.group(1) or "", text))
    if match is None:
        raise ConfigError(f'{where}: no key clause (key "name" {{ algorithm ...; secret "..."; '
                          "}};) found", "write it with: tsig-keygen -a hmac-sha256 <keyname>")
    name, body = match.group(1), match.group(2)
    algorithm = (_ALGORITHM.search(body) or _default()).group(1).lower()
    secret = _SECRET.search(body)
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"{where}: key {name}: unknown algorithm {algorithm!r}",
                          f"use one of {', '.join(ALGORITHMS)}")
    if secret is None or not _is_base64(secret.group(1)):
        raise ConfigError(f"{where}: key {name}: the secret is missing or not base64",
                          "write the file again with tsig-keygen")
    return TsigKey(name, algorithm, secret.group(1))


def warn_if_exposed(path: Path) -> bool:
    """Warn (and return True) when group or others may read the key file."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return False
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        logger.warning("%s holds the TSIG secret and is readable by group or others "
                       "(mode %04o); run: chmod 600 %s", path, mode, path)
        return True
    return False


def _default() -> re.Match[str]:
    match = _ALGORITHM.match(f"algorithm {DEFAULT_ALGORITHM};")
    assert match is not None
    return match


def _is_base64(text: str) -> bool:
    try:
        return bool(text) and bool(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return False
