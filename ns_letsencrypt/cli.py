"""Command line: argparse, logging set-up, and the one place that catches broadly.

``main(argv=None) -> int`` parses, runs one command, and maps every ``NsLeError`` to a one-line
message on stderr and its exit status. Tracebacks appear only with ``--debug``. Heavy modules
are imported inside the command functions so that ``--version`` and ``--help`` start fast.
stdout carries data only (reports, JSON); logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Callable, Optional

from . import __version__
from .errors import ExitStatus, NsLeError

if TYPE_CHECKING:
    from .config import Settings

logger = logging.getLogger("ns_letsencrypt")

Command = Callable[[argparse.Namespace], int]


def _settings(args: argparse.Namespace) -> Settings:
    """Load the configuration once, from the sources the global flags name."""
    from .config import load_settings

    return load_settings(
        env_file=args.env_file,
        legacy_file=args.legacy_config,
        overrides=_flag_overrides(args),
    )


def _flag_overrides(args: argparse.Namespace) -> dict[str, str]:
    """Global flags that override configuration values (never secrets: argv is public)."""
    pairs = {"NS_URL": args.url, "NS_USER": args.user, "NS_VSERVER": args.vserver,
             "NS_VSERVER_TYPE": args.vserver_type, "NS_BIND": args.bind}
    return {key: value for key, value in pairs.items() if value is not None}


def _add_global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"ns-letsencrypt {__version__}")
    parser.add_argument("--env-file", metavar="PATH",
                        help="read settings from this .env file (default: <install dir>/.env)")
    parser.add_argument("--legacy-config", metavar="PATH",
                        help="read a legacy mynsconfig.py as data (default: <install dir>/"
                             "mynsconfig.py when present)")
    parser.add_argument("--url", help="NITRO base URL, e.g. https://10.0.0.5 (NS_URL)")
    parser.add_argument("--user", help="NITRO user name (NS_USER); the password is never a flag")
    parser.add_argument("--vserver", help="challenge vserver name (NS_VSERVER)")
    parser.add_argument("--vserver-type", choices=("lb", "cs", "global"),
                        help="challenge bind point (NS_VSERVER_TYPE)")
    parser.add_argument("--bind", metavar="ENTRIES",
                        help='SSL vserver bindings (NS_BIND): "CERT=VSERVER[,VSERVER...] ..."')
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output on stderr (-vv: every NITRO request)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and every NITRO request (never bodies)")


def build_parser(argv: Optional[Sequence[str]] = None) -> argparse.ArgumentParser:
    """The parser; each command registers itself in COMMANDS below.

    With ``argv``, only the command named there gets its options: configuring a command
    imports its module, and ``--version`` or a hook must not pay for every command's imports
    (requests, cryptography) at every start.
    """
    parser = argparse.ArgumentParser(
        prog="ns-letsencrypt",
        description="Let's Encrypt certificates for Citrix NetScaler ADC, driven by dehydrated.",
    )
    _add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = _command_in(argv) if argv is not None else None
    for name, (help_text, configure, _run) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if argv is None or name == chosen:
            configure(command_parser)
    return parser


_VALUE_OPTIONS = frozenset({"--env-file", "--legacy-config", "--url", "--user", "--vserver",
                            "--vserver-type", "--bind"})


def _command_in(argv: Sequence[str]) -> Optional[str]:
    """The command named in ``argv`` (the first word that is not a global option or its value)."""
    tokens = iter(argv)
    for token in tokens:
        if token in _VALUE_OPTIONS:
            next(tokens, None)
        elif not token.startswith("-"):
            return token
    return None


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.INFO
    if args.quiet:
        level = logging.ERROR
    elif args.debug or args.verbose >= 2 or _env_debug():
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger("ns_letsencrypt")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    from .runlog import attach  # in a run of the scripts: warnings kept, notes once per run

    attach(root)


def _env_debug() -> bool:
    """NS_LOG_LEVEL=debug (the scripts' setting) also logs every NITRO request."""
    return os.environ.get("NS_LOG_LEVEL", "").strip().lower() == "debug"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command; return its exit status (see errors.ExitStatus)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return int(ExitStatus.CONFIG)
    _setup_logging(args)
    run = COMMANDS[args.command][2]
    try:
        return run(args)
    except NsLeError as exc:
        if args.debug:
            raise
        print(f"ns-letsencrypt {args.command}: error: {exc}", file=sys.stderr)
        return int(exc.exit_status)
    except KeyboardInterrupt:
        print(f"ns-letsencrypt {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the outermost boundary: a bug, reported without a traceback
        if args.debug:
            raise
        print(
            f"ns-letsencrypt {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(run again with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return int(ExitStatus.INTERNAL)


# -- commands -------------------------------------------------------------------------
# Each entry: name -> (help, configure(subparser), run(args) -> exit status).
# Command implementations live in their own modules; these functions only glue.

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Command]] = {}


def _configure_test(parser: argparse.ArgumentParser) -> None:
    from .cmd_test import configure

    configure(parser)


def _run_test(args: argparse.Namespace) -> int:
    from .cmd_test import run

    return run(args, lambda: _settings(args))


COMMANDS["test"] = (
    "check that the appliance is reachable, accepts the credentials and is ready",
    _configure_test,
    _run_test,
)


def _configure_register(parser: argparse.ArgumentParser) -> None:
    from .register import configure

    configure(parser)


def _run_register(args: argparse.Namespace) -> int:
    from .register import run

    return run(args)


COMMANDS["register"] = (
    "register the ACME account with the CA (runs dehydrated --register --accept-terms)",
    _configure_register,
    _run_register,
)


def _configure_hook(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hook_name", metavar="HOOK", help="the dehydrated hook name")
    parser.add_argument("hook_args", metavar="ARG", nargs=argparse.REMAINDER,
                        help="the hook's arguments as dehydrated passes them")


def _run_hook(args: argparse.Namespace) -> int:
    from .hook import run_hook

    return run_hook(args.hook_name, args.hook_args, lambda: _settings(args))


def _configure_challenge(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("triples", metavar="DOMAIN TOKEN KEY_AUTH", nargs="+",
                        help="one or more DOMAIN TOKEN KEY_AUTHORIZATION triples")


def _run_challenge(args: argparse.Namespace) -> int:
    from .hook import run_hook

    # like the hook: on every challenge target (NS_TARGETS), each on its HA primary
    return run_hook("deploy_challenge", args.triples, lambda: _settings(args))


def _configure_clean(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("domains", metavar="DOMAIN", nargs="+",
                        help="remove the challenge objects answering for these names")


def _run_clean(args: argparse.Namespace) -> int:
    from .hook import clean_names
    from .targets import over_challenge_targets

    return over_challenge_targets("clean", lambda: _settings(args),
                                  lambda load: clean_names(args.domains, load))


def _configure_sweep(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grace", type=float, default=7200.0, metavar="SECONDS",
                        help="remove other installations' challenge objects once older than "
                             "this (default: 7200); this installation's go at once")


def _run_sweep(args: argparse.Namespace) -> int:
    from .hook import sweep_now
    from .targets import over_challenge_targets

    return over_challenge_targets("sweep", lambda: _settings(args),
                                  lambda load: sweep_now(load, args.grace))


COMMANDS["hook"] = ("run one dehydrated hook (what hooks/ns-hook.sh calls)",
                    _configure_hook, _run_hook)
COMMANDS["challenge"] = ("deploy HTTP-01 challenge responders by hand",
                         _configure_challenge, _run_challenge)
COMMANDS["clean"] = ("remove the HTTP-01 challenge responders of some names",
                     _configure_clean, _run_clean)
COMMANDS["sweep"] = ("remove leftover HTTP-01 challenge objects (crashed or killed runs)",
                     _configure_sweep, _run_sweep)


def _configure_status(parser: argparse.ArgumentParser) -> None:
    from .status import configure

    configure(parser)


def _run_status(args: argparse.Namespace) -> int:
    from .status import run

    return run(args, lambda: _settings(args))


COMMANDS["status"] = (
    "list the managed certificates on the appliance: expiry, chain, local match "
    "(exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)",
    _configure_status,
    _run_status,
)


def _configure_cleanup(parser: argparse.ArgumentParser) -> None:
    from .cleanup import configure

    configure(parser)


def _run_cleanup(args: argparse.Namespace) -> int:
    from .cleanup import run

    return run(args, lambda: _settings(args))


COMMANDS["cleanup"] = (
    "list (or with --yes remove) leftover challenge objects, unused files and CA certkeys "
    "with our prefixes; --staging also staging certificates",
    _configure_cleanup,
    _run_cleanup,
)


def _configure_policy(parser: argparse.ArgumentParser) -> None:
    from .policy import configure

    configure(parser)


def _run_policy(args: argparse.Namespace) -> int:
    from .policy import run

    return run(args, lambda: _settings(args))


COMMANDS["policy"] = (
    "print the NetScaler CLI commands for a least-privilege command policy and API user",
    _configure_policy,
    _run_policy,
)


def _configure_deploy(parser: argparse.ArgumentParser) -> None:
    from .cmd_deploy import configure_deploy

    configure_deploy(parser)


def _run_deploy(args: argparse.Namespace) -> int:
    from .cmd_deploy import run_deploy

    return run_deploy(args, lambda: _settings(args))


def _configure_reconcile(parser: argparse.ArgumentParser) -> None:
    from .cmd_deploy import configure_reconcile

    configure_reconcile(parser)


def _run_reconcile(args: argparse.Namespace) -> int:
    from .cmd_deploy import run_reconcile

    return run_reconcile(args, lambda: _settings(args))


COMMANDS["deploy"] = (
    "install one certificate (cert, key, chain) on the appliance and save the configuration",
    _configure_deploy,
    _run_deploy,
)
COMMANDS["reconcile"] = (
    "redeploy every certificate of dehydrated's domains.txt that the appliance lacks or holds "
    "in an older version (one process, list calls)",
    _configure_reconcile,
    _run_reconcile,
)


def _configure_save_config(parser: argparse.ArgumentParser) -> None:
    from .cmd_deploy import configure_save_config

    configure_save_config(parser)


def _run_save_config(args: argparse.Namespace) -> int:
    from .cmd_deploy import run_save_config

    return run_save_config(args, lambda: _settings(args))


COMMANDS["save-config"] = (
    "save the appliance's running configuration (unless NS_SAVE_CONFIG=never)",
    _configure_save_config,
    _run_save_config,
)


# -- certbot (issue 12) -----------------------------------------------------------------------


def _configure_certbot(parser: argparse.ArgumentParser) -> None:
    from .certbot import configure

    configure(parser)


def _run_certbot(args: argparse.Namespace) -> int:
    from .certbot import run

    return run(args, lambda: _settings(args))


COMMANDS["certbot"] = (
    "certbot's hooks: 'certbot auth' (--manual-auth-hook), 'certbot cleanup' "
    "(--manual-cleanup-hook), 'certbot deploy' (--deploy-hook)",
    _configure_certbot,
    _run_certbot,
)


# -- migrate-config (issue 14) ----------------------------------------------------------


def _configure_migrate(parser: argparse.ArgumentParser) -> None:
    from .migrate import configure

    configure(parser)


def _run_migrate(args: argparse.Namespace) -> int:
    from .migrate import run

    return run(args)


COMMANDS["migrate-config"] = (
    "write .env (mode 600) from a legacy mynsconfig.py, every setting mapped; an existing "
    ".env is only replaced with --force",
    _configure_migrate,
    _run_migrate,
)


# -- issue 13, certificate lifecycle (ns_letsencrypt/lifecycle/) ---------------------------


def _lifecycle_command(name: str) -> tuple[Callable[[argparse.ArgumentParser], None], Command]:
    def configure(parser: argparse.ArgumentParser) -> None:
        from .lifecycle import commands

        getattr(commands, f"configure_{name}")(parser)

    def run(args: argparse.Namespace) -> int:
        from .lifecycle import commands

        result: int = getattr(commands, f"run_{name}")(args, lambda: _settings(args))
        return result

    return configure, run


COMMANDS["ari"] = (
    "check each certificate's ACME Renewal Information (RFC 9773); --due prints the "
    "domains.txt lines to renew now", *_lifecycle_command("ari"))
COMMANDS["ca"] = (
    "show what the configured CA's directory offers: profiles, ARI, EAB, terms of service",
    *_lifecycle_command("ca"))
COMMANDS["run-end"] = (
    "end of a scheduled run: notifications (NS_NOTIFY), metrics (NS_METRICS_FILE), state; "
    "always exits 0", *_lifecycle_command("run_end"))


# -- end-run: one NITRO session per scheduled run (issue 13); the cron scripts end it ----


def _configure_end_run(parser: argparse.ArgumentParser) -> None:
    from .endrun import configure

    configure(parser)


def _run_end_run(args: argparse.Namespace) -> int:
    from .endrun import run

    return run(args, lambda: _settings(args))


COMMANDS["end-run"] = (
    "log out of the NITRO session a scheduled run kept open (the cron scripts' exit trap "
    "runs it)",
    _configure_end_run,
    _run_end_run,
)
