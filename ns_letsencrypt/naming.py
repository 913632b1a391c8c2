"""Deterministic, collision-free, length-safe names for objects and files on the NetScaler.

Names are derived from the whole input (never a truncated first label), restricted to
``[A-Za-z0-9_.-]`` so that URL encoding never matters, and shortened with a hash of the full
input when they would exceed the appliance's limit. Different inputs never share a name.
"""

from __future__ import annotations

import hashlib
import re

# Limits from the NITRO reference: certkey names 31 (classic), file names 63,
# policy/action names 127.
CERTKEY_MAX = 31
FILENAME_MAX = 63
POLICY_MAX = 127
HASH_LEN = 8

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_VALID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.#:@=-]*$")


def short_hash(text: str, length: int = HASH_LEN) -> str:
    """A short, stable hex digest of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def sanitize(text: str) -> str:
    """Replace every character outside ``[A-Za-z0-9_.-]`` by ``_`` (``*`` becomes ``star``)."""
    return _UNSAFE.sub("_", text.replace("*", "star"))


def object_name(prefix: str, key: str, max_len: int) -> str:
    """``prefix + key`` when it is safe and fits; otherwise a shortened form with a hash.

    The hash is taken over the *unsanitised* key, so two keys that sanitise or truncate to the
    same text still get different names.
    """
    clean = sanitize(key)
    name = prefix + clean
    if clean == key and len(name) <= max_len:
        return name
    suffix = "-" + short_hash(key)
    room = max_len - len(prefix) - len(suffix)
    if room < 1:
        raise ValueError(f"prefix {prefix!r} leaves no room for a name within {max_len} characters")
    return prefix + clean[:room].rstrip("-.") + suffix


def is_valid_name(name: str, max_len: int = POLICY_MAX) -> bool:
    """True when ``name`` obeys NetScaler's naming rules for entity names."""
    return bool(_VALID.match(name)) and len(name) <= max_len


def certkey_name(prefix: str, cert_name: str, max_len: int = CERTKEY_MAX) -> str:
    """The certkey of a leaf certificate, from its whole primary name (or dehydrated alias)."""
    return object_name(prefix, cert_name, max_len)


def ca_certkey_name(prefix: str, common_name: str, fingerprint: str,
                    max_len: int = CERTKEY_MAX) -> str:
    """The certkey of an intermediate: its subject CN plus a short fingerprint.

    The fingerprint makes the name unique per certificate, so a re-issued intermediate with the
    same CN (e.g. a new cross-sign) never takes over the old certkey.
    """
    suffix = "-" + fingerprint[:HASH_LEN].lower()
    room = max_len - len(prefix) - len(suffix)
    if room < 1:
        raise ValueError(f"prefix {prefix!r} leaves no room for a name within {max_len} characters")
    stem = sanitize(common_name or "ca")[:room].rstrip("-._") or "ca"
    return prefix + stem + suffix


def file_name(stem: str, tag: str, extension: str, max_len: int = FILENAME_MAX) -> str:
    """``<stem>-<tag>.<extension>`` within ``max_len``; the stem gives way, never the tag.

    Callers pass a ``tag`` derived from the file's content (a fingerprint), so each generation
    gets its own name and no file is ever overwritten in place.
    """
    tail = f"-{sanitize(tag)}.{extension}"
    room = max_len - len(tail)
    if room < 1:
        raise ValueError(f"tag {tag!r} leaves no room for a file name within {max_len} characters")
    return sanitize(stem)[:room] + tail
