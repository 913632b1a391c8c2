"""Finding dehydrated, and registering the ACME account (``ns-letsencrypt register``).

dehydrated is looked for in the same order as ``tools/common.sh`` does for the scripts:
``$DEHYDRATED`` (a path or a command name), ``<code dir>/dehydrated/dehydrated`` when the git
submodule is checked out, then ``dehydrated`` on PATH. Registration runs
``dehydrated --register --accept-terms --config <home>/config.sh``; the contact address reaches
dehydrated only through the environment (``NS_LE_CONTACT_EMAIL``, which config.sh.example
assigns to ``CONTACT_EMAIL``), never by editing a file.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from .errors import ConfigError, ExitStatus, NsLeError

logger = logging.getLogger(__name__)

CODE_DIR = Path(__file__).resolve().parent.parent
EMAIL_VARIABLE = "NS_LE_CONTACT_EMAIL"
_EMAIL = re.compile(r"^[^@\s,;\"'`$\\]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
MISSING_HINT = (
    "get it with 'git submodule update --init' in {code}, or 'apt-get install dehydrated', "
    "or point DEHYDRATED at the script"
)


class RegistrationError(NsLeError):
    """dehydrated could not register the account (its own output says why)."""

    exit_status = ExitStatus.CONFIG


def home_dir(environ: Optional[Mapping[str, str]] = None) -> Path:
    """Where config.sh, domains.txt and dehydrated's state live: NS_LE_HOME or the code dir."""
    environ = os.environ if environ is None else environ
    home = environ.get("NS_LE_HOME", "").strip()
    return Path(home).expanduser() if home else CODE_DIR


def find_dehydrated(
    environ: Optional[Mapping[str, str]] = None, code_dir: Path = CODE_DIR
) -> str:
    """The dehydrated executable to run, in the documented order.

    Raises:
        ConfigError: ``$DEHYDRATED`` names no executable, or no dehydrated was found at all.
    """
    environ = os.environ if environ is None else environ
    path = environ.get("PATH", os.defpath)
    explicit = environ.get("DEHYDRATED", "")
    if explicit:
        found = shutil.which(explicit, path=path)
        if found and not Path(found).is_dir():
            return found
        raise ConfigError(f"DEHYDRATED={explicit} is not an executable file",
                          hint="fix or unset DEHYDRATED")
    submodule = code_dir / "dehydrated" / "dehydrated"
    if submodule.is_file() and os.access(submodule, os.X_OK):
        return str(submodule)
    found = shutil.which("dehydrated", path=path)
    if found:
        return found
    raise ConfigError(
        f"dehydrated not found (looked at $DEHYDRATED, {submodule} and PATH)",
        hint=MISSING_HINT.format(code=code_dir),
    )


def check_email(email: str) -> str:
    """A plausible contact address, safe to place inside dehydrated's JSON and bash."""
    if not _EMAIL.match(email):
        raise ConfigError(f"--email {email!r} is not a valid e-mail address")
    return email


def register(
    config: Path, email: Optional[str], environ: Optional[Mapping[str, str]] = None
) -> None:
    """Create (or confirm) the ACME account of ``config``; dehydrated's output passes through.

    Raises:
        ConfigError: config.sh is missing, or ``email`` is given but config.sh ignores it.
        RegistrationError: dehydrated failed.
    """
    environ = dict(os.environ if environ is None else environ)
    if not config.is_file():
        raise ConfigError(f"{config} not found",
                          hint="copy config.sh.example to config.sh and edit it")
    if email is not None:
        _require_email_variable(config)
        environ[EMAIL_VARIABLE] = check_email(email)
    dehydrated = find_dehydrated(environ)
    command = [dehydrated, "--register", "--accept-terms", "--config", str(config)]
    logger.info("registering the ACME account with %s (accepts the CA's terms of service)",
                dehydrated)
    result = subprocess.run(command, env=environ, check=False)
    if result.returncode != 0:
        raise RegistrationError(
            f"dehydrated --register failed with exit status {result.returncode}",
            hint="see dehydrated's output above; check CA and CURL_OPTS in config.sh",
        )


def _require_email_variable(config: Path) -> None:
    """Refuse --email when config.sh would overwrite it: the flag would silently do nothing."""
    if EMAIL_VARIABLE not in config.read_text(encoding="utf-8", errors="replace"):
        raise ConfigError(
            f"{config} does not read {EMAIL_VARIABLE}, so --email would be ignored",
            hint=f'set CONTACT_EMAIL="${{{EMAIL_VARIABLE}:-}}" in config.sh '
                 "(as config.sh.example does), or write the address there and omit --email",
        )


# -- command glue ---------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``ns-letsencrypt register``."""
    parser.add_argument("--email", help="contact address for the CA account "
                        f"(passed to config.sh as {EMAIL_VARIABLE})")
    parser.add_argument("--config", metavar="PATH", type=Path,
                        help="dehydrated config (default: <NS_LE_HOME or install dir>/config.sh)")


def run(args: argparse.Namespace) -> int:
    """Register; no NetScaler settings are needed for this."""
    config: Path = args.config or home_dir() / "config.sh"
    register(config, args.email)
    return int(ExitStatus.OK)
