"""``ns-letsencrypt migrate-config``: write ``.env`` from the original tool's ``mynsconfig.py``.

Every variable is mapped as the deprecation note of config.py names it (``connectiontype`` +
``nitroNSIP`` -> ``NS_URL``, ``nitroUser`` -> ``NS_USER`` ...). The new file is created with
mode 600 in the install directory (or at ``--env-file``); an existing ``.env`` is only replaced
with ``--force``, and then kept as ``.env.bak``. What was written is printed, secrets as ``***``.
Once the legacy file is removed, its deprecation warning is gone; until then ``.env`` wins.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

from .config import LegacySettings, default_install_dir, read_legacy_settings
from .errors import ConfigError

_SECRETS = frozenset({"NS_PASSWORD"})
# The order of .env.example, so that the written file reads like it.
_ORDER = ("NS_URL", "NS_USER", "NS_PASSWORD", "NS_VSERVER_TYPE", "NS_VSERVER",
          "NS_PRIORITY_START", "NS_CERT_PATH", "NS_CERTKEY_PREFIX")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true",
                        help="replace an existing .env (the old one is kept as .env.bak)")


def run(args: argparse.Namespace) -> int:
    home = default_install_dir()
    legacy = Path(args.legacy_config or home / "mynsconfig.py").expanduser()
    target = Path(args.env_file or home / ".env").expanduser()  # where it will be read
    if not legacy.is_file():
        raise ConfigError(f"no legacy configuration at {legacy}: nothing to migrate",
                          hint="name it with --legacy-config PATH")
    settings = read_legacy_settings(legacy)
    backup = _write(target, render(settings), force=args.force)
    for line in _report(settings, target, backup):
        print(line)
    return 0


def render(settings: LegacySettings) -> str:
    """The text of the new .env: a header, then one NAME='value' line per setting."""
    today = datetime.date.today().isoformat()
    lines = [f"# Written by 'ns-letsencrypt migrate-config' on {today} from {settings.path}.",
             "# Every setting is described in .env.example. Keep this file private (mode 600).",
             ""]
    for key in _ordered(settings):
        lines.append(f"# from {settings.origins[key]}")
        lines.append(f"{key}={_quoted(key, _value(settings, key))}")
    return "\n".join(lines) + "\n"


def _ordered(settings: LegacySettings) -> Iterator[str]:
    yield from (key for key in _ORDER if key in settings.values)
    yield from sorted(key for key in settings.values if key not in _ORDER)


def _value(settings: LegacySettings, key: str) -> str:
    value = settings.values[key]
    if key == "NS_VSERVER_TYPE" and value.lower() == "csw":
        return "cs"  # the original tool's name for a content switching vserver
    return value


def _quoted(key: str, value: str) -> str:
    """Single quotes: python-dotenv then takes everything literally but \\\\ and \\'."""
    if "\n" in value or "\r" in value:
        raise ConfigError(f"{key}: the value has a line break, which .env cannot hold",
                          hint="fix the value in the legacy file first")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _write(target: Path, text: str, *, force: bool) -> Optional[Path]:
    """Create ``target`` (mode 600) with ``text``; returns the backup of a replaced file."""
    refuse = ConfigError(f"{target} already exists; not overwritten",
                         hint="run again with --force to replace it; the old file is then "
                              f"kept as {target.name}.bak")
    if target.exists() and not force:
        raise refuse
    temporary = target.with_name(f".{target.name}.migrate-{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        return _install(temporary, target, force=force, refuse=refuse)
    finally:
        temporary.unlink(missing_ok=True)


def _install(temporary: Path, target: Path, *, force: bool, refuse: ConfigError) -> Optional[Path]:
    if not force:
        try:
            os.link(temporary, target)  # fails if .env appeared meanwhile: never overwritten
        except FileExistsError:
            raise refuse from None
        return None
    backup = None
    if target.exists():
        backup = target.with_name(target.name + ".bak")
        shutil.copyfile(target, backup)
        os.chmod(backup, 0o600)
    os.replace(temporary, target)
    return backup


def _report(settings: LegacySettings, target: Path, backup: Optional[Path]) -> Iterator[str]:
    yield f"wrote {target} (mode 600) from {settings.path}:"
    for key in _ordered(settings):
        shown = "*** (not shown)" if key in _SECRETS else _value(settings, key)
        yield f"  {key}={shown}  (from {settings.origins[key]})"
    if backup is not None:
        yield f"the previous {target.name} is kept as {backup}"
    if settings.superseded:
        yield f"not carried over, no longer used: {', '.join(settings.superseded)}"
    if settings.unknown:
        yield f"not carried over, unknown: {', '.join(settings.unknown)}"
    yield (f"next: check with 'ns-letsencrypt test', then remove {settings.path} "
           "(its deprecation warning goes with it)")
