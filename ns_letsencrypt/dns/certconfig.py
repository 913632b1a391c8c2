"""Which challenge each certificate of domains.txt uses, told to dehydrated per certificate.

A line with a wildcard name uses dns-01 (the CA offers nothing else for it); every other line
uses ``NS_CHALLENGE`` (http-01 by default). dehydrated reads ``CHALLENGETYPE`` from the
certificate's own config file, ``<CERTDIR>/<alias or first name>/config``, after the
``startup_hook`` ran and before it orders (0.7.0 and 0.7.2 alike), so the startup hook writes
those files: one marked line that this module owns. A ``CHALLENGETYPE`` line the admin wrote
without the marker wins and is left alone. A line whose first name is a wildcard needs an
alias, because dehydrated names the certificate's directory after it.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import ConfigError

MARKER = "# ns-letsencrypt: challenge type from domains.txt and NS_CHALLENGE (rewritten each run)"
_OWN_LINE = re.compile(r'^CHALLENGETYPE="?(http-01|dns-01)"?\s*$')
_ANY_CHALLENGE = re.compile(r"^\s*(export\s+)?CHALLENGETYPE=")


@dataclass(frozen=True)
class CertLine:
    """One certificate of domains.txt."""

    number: int
    names: tuple[str, ...]
    alias: Optional[str]

    @property
    def directory(self) -> str:
        """The name of its directory under CERTDIR (dehydrated's rule)."""
        return self.alias or self.names[0]

    @property
    def has_wildcard(self) -> bool:
        return any(name.startswith("*.") for name in self.names)


def read_domains(path: Path) -> list[CertLine]:
    """The certificates of a domains.txt, read the way dehydrated reads it.

    Raises:
        ConfigError: every line whose first name is a wildcard and that has no alias.
    """
    lines: list[CertLine] = []
    problems: list[str] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        names_part, _, alias_part = text.partition(">")
        names = tuple(name.lower() for name in names_part.split())
        alias = alias_part.strip() or None
        if not names:
            continue
        if names[0].startswith("*.") and alias is None:
            stem = "star_" + names[0][2:].replace(".", "_")
            problems.append(f"{path} line {number}: the first name {names[0]} is a wildcard and "
                            f"the line has no alias; append '> {stem}' (dehydrated names the "
                            "certificate directory after the alias or the first name)")
            continue
        lines.append(CertLine(number, names, alias))
    if problems:
        raise ConfigError(problems)
    return lines


def challenge_of(line: CertLine, default: str) -> str:
    """dns-01 for a certificate with a wildcard, else the configured default."""
    return "dns-01" if line.has_wildcard else default


def write_configs(lines: Sequence[CertLine], certs_dir: Path, default: str) -> list[Path]:
    """Make each certificate's config say its challenge type; returns the files changed.

    A certificate that uses http-01 while dehydrated's global config does too needs no line:
    ours is removed (an admin's own CHALLENGETYPE stays, whatever it says).
    """
    changed = []
    for line in lines:
        path = certs_dir / line.directory / "config"
        wanted = challenge_of(line, default)
        if _update(path, wanted if wanted == "dns-01" or default != "http-01" else None):
            changed.append(path)
    return changed


def _update(path: Path, challenge: Optional[str]) -> bool:
    """Rewrite our marked line of ``path`` to say ``challenge`` (None: no line)."""
    try:
        old = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        old = []
    kept: list[str] = []
    skip_next = False
    for text in old:
        if text == MARKER:
            skip_next = True
            continue
        if skip_next and _OWN_LINE.match(text):
            skip_next = False
            continue
        skip_next = False
        kept.append(text)
    if any(_ANY_CHALLENGE.match(text) for text in kept):
        return False  # the admin chose; never override
    new = kept + ([MARKER, f'CHALLENGETYPE="{challenge}"'] if challenge else [])
    if new == old:
        return False
    if not new and not path.exists():
        return False
    _write_atomically(path, "".join(f"{text}\n" for text in new))
    return True


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
