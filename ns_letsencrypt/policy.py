"""``ns-letsencrypt policy``: a least-privilege command policy and API user for this tool.

The NetScaler matches a command policy's regular expression against the CLI form of every
NITRO call (nitro-reference §8.2). :func:`command_patterns` lists one anchored pattern per
kind of call this tool makes, and nothing else: read-only ``show`` of what it inspects;
responder actions and policies only with the challenge prefix; bindings only of those policies
and only on the configured vserver (plus global ``REQ_OVERRIDE`` unbinding, which the sweep
uses for leftovers of older settings); certkeys, links and files only with the certkey prefix
or of a certkey adopted through ``NS_CERTKEY_NAMES``, and only in the certificate directory;
``save ns config``, ``sync HA files ssl`` and ``force HA sync`` (HA pairs).

The exact argument rendering of several commands is unconfirmed (§8.2 marks ``add system
file``), so a pattern accepts further options in any order, but only options the command has
that cannot name another object or directory: the object name, the ``-fileLocation`` and the
``-policyName`` appear exactly once. Names may be quoted the way the CLI quotes a name with
spaces (``show lb vserver "vs http"``).

The regex contains no backslash and no double quote, so it survives CLI quoting unchanged: a
literal character is written as a one-character class (``[.]``) and a quote as a class that
matches no other printable character. ``tests/test_policy.py`` checks it against every command
an issuance and a renewal send, and that it refuses commands outside the prefixes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Callable

from . import naming
from .config import Settings
from .deploy import TAG_LEN
from .errors import ConfigError, ExitStatus

logger = logging.getLogger(__name__)

SettingsLoader = Callable[[], Settings]
# Character classes by ASCII range, since the regex may not contain a double quote (0x22):
QUOTE = "[^ -!#-~]"  # no printable character but '"': a quote cannot extend a name or a path
WORD = "[!#-~]+"  # one word: printable, no space, no quote (so no quoted span can hide in it)
NAME_CHARS = "[!#-.0-~]*"  # the rest of one of our names: a word that is not a path either
# Any certkey, vserver or responder object name, quoted when it contains spaces (§4.1, §5.4).
ANY_NAME = f"({WORD}|{QUOTE}[a-zA-Z0-9_][a-zA-Z0-9_#.:@= -]*{QUOTE})"
VALUE = "[!#-,.-~][!#-~]*"  # an option's value: one word that cannot be the next option
_SPECIAL = set(".^$*+?()[]{}|\\/")
# Options whose values name nothing outside our scope, per command (NITRO attribute names).
# (not -bundle: it would create CA certkeys under names taken from the file)
CERTKEY_OPTIONS = "(inform|expiryMonitor|notificationPeriod|noDomainCheck)"
FILE_OPTIONS = "(fileContent|fileEncoding)"
BINDING_OPTIONS = "(priority|gotoPriorityExpression|type|bindpoint)"
GLOBAL_OPTIONS = "(type|priority|gotoPriorityExpression|globalBindType)"


@dataclass(frozen=True)
class Scope:
    """The names the policy is restricted to (all from the configuration)."""

    certkey_prefix: str = "le-"
    challenge_prefix: str = "le-acme-"
    cert_path: str = "/nsconfig/ssl"
    vserver: str = ""
    vserver_type: str = "lb"
    adopted: tuple[str, ...] = ()  # certkeys named in NS_CERTKEY_NAMES
    bind_vservers: tuple[str, ...] = ()  # SSL vservers named in NS_BIND
    adns: bool = False  # NS_DNS=adns: dns-01 TXT records on the appliance (issue 11)

    @classmethod
    def from_settings(cls, settings: Settings) -> Scope:
        from .bindings import listed_vservers

        return cls(settings.certkey_prefix, settings.challenge_prefix, settings.cert_path,
                   settings.vserver or "", settings.vserver_type,
                   tuple(sorted(set(settings.certkey_names.values()))),
                   tuple(listed_vservers(settings)),
                   adns=settings.dns == "adns")


def literal(text: str) -> str:
    """``text`` as a regex matching itself, written without backslashes."""
    return "".join(f"[{c}]" if c in _SPECIAL else c for c in text)


def quoted(text: str) -> str:
    """``text`` literally, with or without the quotes the CLI may put around it."""
    return f"{QUOTE}?{literal(text)}{QUOTE}?"


def one_of(patterns: Iterable[str]) -> str:
    """A group matching any of ``patterns``."""
    return "(" + "|".join(patterns) + ")"


def options(names: str) -> str:
    """Any number of `` -name value`` with ``name`` from the group ``names``, in any order."""
    return f"( -{names} {VALUE})*"


def adopted_files(certkey: str) -> str:
    """The certificate and key files deploy uploads for an adopted certkey (naming.file_name)."""
    tag = "0" * TAG_LEN
    stem = naming.file_name(certkey, tag, "crt")[:-len(f"-{tag}.crt")]
    return literal(stem) + "-[0-9a-f]+[.](crt|key)"


def command_patterns(scope: Scope) -> list[str]:
    """One anchored regex per kind of command this tool sends."""
    own = literal(scope.certkey_prefix) + NAME_CHARS  # our certkeys and file names
    certkey = one_of([own, *(literal(name) for name in scope.adopted)])
    files = one_of([own, *(adopted_files(name) for name in scope.adopted)])
    ch = literal(scope.challenge_prefix) + NAME_CHARS  # our responder objects
    path = QUOTE + "?" + literal(scope.cert_path.rstrip("/") or "/") + "/?" + QUOTE + "?"
    location = f"{options(FILE_OPTIONS)} -fileLocation {path}{options(FILE_OPTIONS)}"
    certkey_args = f"( -(cert|key) {files}| -{CERTKEY_OPTIONS}( {VALUE})?)*"
    patterns = [
        "^show ns (version|config|feature)$",
        f"^show HA node( {WORD})?$",
        "^save ns config$",
        "^sync HA files ssl$",
        # HA pairs (issue 10): the repair when the secondary missed the certkey commands
        "^force HA sync( -force YES| -save YES)*$",
        f"^show (lb|cs) vserver( {ANY_NAME})?$",
        f"^show responder (action|policy)( {ANY_NAME})?$",
        "^show responder global( -type [A-Z_]+)?$",
        f"^add responder action {ch} respondwith .*$",
        f"^add responder policy {ch} .*$",
        f"^rm responder (action|policy) {ch}$",
        f"^unbind responder global {ch}{options(GLOBAL_OPTIONS)}$",
        f"^show ssl certKey( {ANY_NAME})?$",
        f"^(add|update) ssl certKey {certkey}{certkey_args}$",
        # the parent may be anyone's: deploy reuses an installed intermediate under any name
        f"^link ssl certKey {certkey} {ANY_NAME}$",
        f"^(unlink|rm) ssl certKey {certkey}$",
        f"^(add|rm) system file {files}{location}$",
        f"^show system file( {files}| -fileName {files})?{location}$",
    ]
    if scope.bind_vservers:
        patterns += bind_patterns(scope, certkey)
    if scope.vserver_type == "global":
        patterns.append(f"^bind responder global {ch} [0-9]+( {VALUE})?{options(GLOBAL_OPTIONS)}$")
    elif scope.vserver:
        kind, vserver = scope.vserver_type, quoted(scope.vserver)
        binding = options(BINDING_OPTIONS)
        patterns.append(f"^(bind|unbind) {kind} vserver {vserver}{binding} -policyName {ch}"
                        f"{binding}$")
    if scope.adns:
        patterns += adns_patterns()
    return patterns


def bind_patterns(scope: Scope, certkey: str) -> list[str]:
    """NS_BIND: read SSL vservers and profiles; bind our certkeys to the listed vservers (SNI
    or default); unbind any certkey, but only from a listed vserver's default slot (replacing
    a hand-installed default certificate)."""
    listed = one_of(quoted(name) for name in scope.bind_vservers)
    return [
        f"^show ssl (vserver|profile)( {ANY_NAME})?$",
        f"^bind ssl vserver {listed} -certkeyName {certkey}( -SNICert( (YES|true))?)?$",
        f"^unbind ssl vserver {listed} -certkeyName {ANY_NAME}$",
    ]


def adns_patterns() -> list[str]:
    """dns-01 through ADNS: TXT records only under _acme-challenge names, and the reads of the
    pre-flight (ADNS services, SOA and NS records)."""
    owner = "_acme-challenge[.][a-z0-9._-]+"
    value = "[a-z0-9_-]+"  # base64url; the appliance matches case-insensitively
    return [
        f"^add dns txtRec {owner} {value}( -TTL [0-9]+)?$",
        f"^rm dns txtRec {owner}( {value}| -recordId [0-9]+)$",
        f"^show dns txtRec( {owner})?( -type ADNS)?$",
        f"^show dns (soaRec|nsRec)( {ANY_NAME})?( -type ADNS)?$",
        f"^show service( {ANY_NAME})?$",
    ]


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
        *([f"# Adopted certkeys (NS_CERTKEY_NAMES): {', '.join(scope.adopted)}; re-run this "
           "command when that list changes."] if scope.adopted else []),
        *([f"# SSL vservers it may bind to (NS_BIND): {', '.join(scope.bind_vservers)}; re-run "
           "this command when that list changes."] if scope.bind_vservers else []),
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
