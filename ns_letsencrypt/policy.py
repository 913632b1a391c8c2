"""``ns-letsencrypt policy``: a least-privilege command policy and API user for this tool.

The NetScaler matches a command policy's regular expression against the CLI form of every
NITRO call (nitro-reference §8.2). :func:`command_patterns` lists one anchored pattern per
kind of call this tool makes, and nothing else: read-only ``show`` of what it inspects;
responder actions and policies only with the challenge prefix; bindings only of those policies
and only on the configured vserver (plus global ``REQ_OVERRIDE`` unbinding, which the sweep
uses for leftovers of older settings); certkeys, links and files only with the certkey prefix
and only in the certificate directory; ``save ns config`` and ``sync HA files ssl``.

The regex contains no backslash and no double quote, so it survives CLI quoting unchanged: a
literal character is written as a one-character class (``[.]``) and an optional quote around
a path as one optional character that cannot extend the path. ``tests/test_policy.py`` checks
it against every command an issuance and a renewal send, and that it refuses commands outside
the prefixes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Callable

from .config import Settings
from .errors import ConfigError, ExitStatus

logger = logging.getLogger(__name__)

SettingsLoader = Callable[[], Settings]
WORD = "[^ ]+"
_SPECIAL = set(".^$*+?()[]{}|\\/")


@dataclass(frozen=True)
class Scope:
    """The names the policy is restricted to (all from the configuration)."""

    certkey_prefix: str = "le-"
    challenge_prefix: str = "le-acme-"
    cert_path: str = "/nsconfig/ssl"
    vserver: str = ""
    vserver_type: str = "lb"

    @classmethod
    def from_settings(cls, settings: Settings) -> Scope:
        return cls(settings.certkey_prefix, settings.challenge_prefix, settings.cert_path,
                   settings.vserver or "", settings.vserver_type)


def literal(text: str) -> str:
    """``text`` as a regex matching itself, written without backslashes."""
    return "".join(f"[{c}]" if c in _SPECIAL else c for c in text)


def command_patterns(scope: Scope) -> list[str]:
    """One anchored regex per kind of command this tool sends."""
    ck = literal(scope.certkey_prefix) + "[^ /]*"  # our certkeys and file names
    ch = literal(scope.challenge_prefix) + "[^ ]*"  # our responder objects
    quote = "[^a-zA-Z0-9_./ -]?"  # an optional quote, but never more path
    path = quote + literal(scope.cert_path.rstrip("/") or "/") + "/?" + quote
    options = "( -[a-zA-Z]+( [^ ]+)?)*"
    patterns = [
        "^show ns (version|config|feature)$",
        "^show HA node( [^ ]+)?$",
        "^save ns config$",
        "^sync HA files ssl$",
        f"^show (lb|cs) vserver( {WORD})?$",
        f"^show responder (action|policy)( {WORD})?$",
        "^show responder global( -type [A-Z_]+)?$",
        f"^add responder action {ch} respondwith .*$",
        f"^add responder policy {ch} .*$",
        f"^rm responder (action|policy) {ch}$",
        f"^unbind responder global {ch}( -type [A-Z_]+)?$",
        f"^show ssl certKey( {WORD})?$",
        f"^add ssl certKey {ck} -cert {ck}( -key {ck})?{options}$",
        f"^update ssl certKey {ck} -cert {ck}( -key {ck})?{options}$",
        f"^link ssl certKey {ck} {WORD}$",
        f"^unlink ssl certKey {ck}$",
        f"^rm ssl certKey {ck}$",
        f"^(add|rm) system file {ck} -fileLocation {path}$",
        f"^show system file( {ck})? -fileLocation {path}$",
    ]
    if scope.vserver_type == "global":
        patterns.append(f"^bind responder global {ch} [0-9]+( {WORD})?( -type [A-Z_]+)?$")
    elif scope.vserver:
        kind, vserver = scope.vserver_type, literal(scope.vserver)
        patterns.append(f"^(bind|unbind) {kind} vserver {vserver} -policyName {ch}{options}$")
    return patterns


def command_regex(scope: Scope) -> str:
    """The whole cmdspec: the patterns joined as alternatives (each keeps its anchors)."""
    return "|".join(f"({pattern})" for pattern in command_patterns(scope))


def cli_commands(scope: Scope, policy_name: str, user: str, priority: int = 10) -> list[str]:
    """The NetScaler CLI commands that create the policy and the user and bind them."""
    return [
        f'add system cmdPolicy {policy_name} ALLOW "{command_regex(scope)}"',
        f"add system user {user} -externalAuth DISABLED -allowedManagementInterface API "
        "-timeout 900",
        f"bind system user {user} {policy_name} {priority}",
        "save ns config",
    ]


def render(scope: Scope, policy_name: str, user: str) -> str:
    """The commands with the comments an administrator needs around them."""
    where = (f"{scope.vserver_type} vserver {scope.vserver}" if scope.vserver_type != "global"
             else "global responder bindings")
    lines = [
        "# Least-privilege NITRO user for ns-letsencrypt. Generated for: certkey prefix "
        f"{scope.certkey_prefix}, challenge prefix {scope.challenge_prefix},",
        f"# certificate directory {scope.cert_path}, challenges on {where}.",
        "# Run on the NetScaler CLI as nsroot (ssh nsroot@<NSIP>). 'add system user' prompts",
        "# for the password: choose a long random one and store it only in NS_PASSWORD_FILE",
        "# (mode 0600) on the ns-letsencrypt host. Never pass it on a command line.",
        "",
        *cli_commands(scope, policy_name, user),
        "",
        f"# Then set NS_USER={user} in .env and check with: ns-letsencrypt test",
        "# A command the policy refuses fails with errorcode 2138 and names the command; if your",
        "# firmware renders a call differently, extend the regex for exactly that command.",
        "# -allowedManagementInterface needs NetScaler 13.0 or later; drop it on older builds.",
    ]
    return "\n".join(lines)


# -- command glue ---------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``ns-letsencrypt policy``."""
    parser.add_argument("--policy-name", default="ns-letsencrypt",
                        help="name of the command policy (default: ns-letsencrypt)")
    parser.add_argument("--api-user", default="ns-letsencrypt",
                        help="name of the API user (default: ns-letsencrypt)")
    parser.add_argument("--json", action="store_true",
                        help="print the regex, its parts and the commands as JSON")


def run(args: argparse.Namespace, load_settings: SettingsLoader) -> int:
    """Print the commands; the configuration supplies prefixes, path and vserver."""
    scope = _scope(args, load_settings)
    if scope.vserver_type != "global" and not scope.vserver:
        raise ConfigError("no challenge vserver configured",
                          hint="set NS_VSERVER (or pass --vserver) so the policy can name it")
    for name in (args.policy_name, args.api_user):
        if not name or len(name) > 31 or " " in name or '"' in name:
            raise ConfigError(f"{name!r} is not a usable name (1-31 characters, no spaces)")
    if args.json:
        print(json.dumps({"scope": dataclasses.asdict(scope), "regex": command_regex(scope),
                          "patterns": command_patterns(scope),
                          "commands": cli_commands(scope, args.policy_name, args.api_user)},
                         indent=2))
    else:
        print(render(scope, args.policy_name, args.api_user))
    return int(ExitStatus.OK)


def _scope(args: argparse.Namespace, load_settings: SettingsLoader) -> Scope:
    """The configured scope; without a loadable configuration, defaults plus the flags."""
    try:
        return Scope.from_settings(load_settings())
    except ConfigError as exc:
        logger.warning("configuration incomplete (%s); using defaults and --vserver/"
                       "--vserver-type", exc.message)
    return Scope(vserver=args.vserver or "", vserver_type=args.vserver_type or "lb")
