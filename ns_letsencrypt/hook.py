"""The dehydrated hook contract: one hook call (one process) -> the operations it stands for.

dehydrated runs ``hooks/ns-hook.sh <hook> <args...>``, which runs ``ns-letsencrypt hook <hook>
<args...>``. :func:`run_hook` dispatches on the name; unknown names succeed and do nothing,
because dehydrated probes with a made-up name and adds new hooks over time.

Exit status is dehydrated's control flow: non-zero from ``startup_hook`` or ``deploy_challenge``
stops the run before the CA is asked to validate anything. ``clean_challenge`` always exits 0:
it runs after validation, and a non-zero exit would make dehydrated throw away a certificate
the CA has already agreed to issue; what it could not remove (even when the appliance is
unreachable) is logged as a warning and swept by ``exit_hook`` or the next ``startup_hook``.
Settings are loaded lazily, so hooks that need no appliance work without a configuration.

Also the bodies of the ``challenge``, ``clean`` and ``sweep`` commands, which run the same
operations by hand (and for the original tool's ``ns-copytons.py challenge|clean`` verbs).

Call points into the deploy module (when ``ns_letsencrypt.deploy`` exists):
``deploy_cert(client, settings, domain, keyfile, certfile, chainfile, alias=...)`` for the
``deploy_cert`` and ``unchanged_cert`` hooks, and ``finish_run(client, settings, changed)``
once at the end of ``exit_hook`` (saves the configuration).
"""

from __future__ import annotations

import importlib
import logging
import os
import re
from collections.abc import Sequence
from types import ModuleType
from typing import Callable, Optional

from . import challenge
from .config import Settings
from .errors import ChallengeError, ExitStatus, NitroApiError, NitroError
from .nitro import NitroClient
from .session import open_client

logger = logging.getLogger(__name__)

SettingsLoader = Callable[[], Settings]
HookHandler = Callable[[Sequence[str], SettingsLoader], int]

_DETAIL = re.compile(r'^\["error","detail"\]\s+"(.*)"$', re.MULTILINE)


def run_hook(name: str, args: Sequence[str], load_settings: SettingsLoader) -> int:
    """Run the handler of hook ``name``; returns the exit status dehydrated will see."""
    handler = HANDLERS.get(name)
    if handler is None:
        logger.debug("hook %s: nothing to do", name)
        return 0
    return handler(args, load_settings)


# -- run start and end --------------------------------------------------------------------


def startup_hook(args: Sequence[str], load_settings: SettingsLoader) -> int:
    """Stop the run unless the appliance is reachable and ready; then sweep leftovers."""
    from .appliance import connectivity_report
    from .report import Level, overall_status

    settings = load_settings()
    checks = connectivity_report(open_client(settings), settings)
    for check in checks:
        if check.level is not Level.OK:
            hint = f" (hint: {check.hint})" if check.hint else ""
            log = logger.error if check.level is Level.FAIL else logger.warning
            log("startup check %s: %s%s", check.name, check.detail, hint)
    status = overall_status(checks)
    if status:
        logger.error("the appliance is not ready: stopping before any challenge is deployed")
        return int(status)
    with open_client(settings) as client:
        _sweep(client, settings, "startup_hook")
    return 0


def exit_hook(args: Sequence[str], load_settings: SettingsLoader) -> int:
    """Sweep what this run left behind (dehydrated skips clean_challenge on CA errors), then
    let the deploy module save the configuration if the appliance reports unsaved changes."""
    error = args[0] if args else ""
    if error:
        logger.error("dehydrated reported: %s", error)
    settings = load_settings()
    with open_client(settings) as client:
        _sweep(client, settings, "exit_hook")
        _finish_run(client, settings)
    return 0


def _sweep(client: NitroClient, settings: Settings, where: str) -> None:
    try:
        challenge.sweep(client, settings)
    except NitroApiError as exc:
        logger.warning("%s: sweeping leftover challenge objects failed: %s", where, exc)


def _finish_run(client: NitroClient, settings: Settings) -> None:
    """Call point for saving the configuration once per run (deploy.finish_run).

    No state passes between hook processes, so "this run changed something" is what the
    appliance says: unsaved changes (or unknown) count as changed.
    """
    module = _deploy_module()
    if module is None:
        return
    from .appliance import unsaved_changes

    module.finish_run(client, settings, unsaved_changes(client) is not False)


# -- challenges ---------------------------------------------------------------------------


def deploy_challenge(args: Sequence[str], load_settings: SettingsLoader) -> int:
    """Deploy all challenges of this call (one triple, or all with HOOK_CHAIN=yes).

    The startup checks already ran in startup_hook, so this costs login, one read of the
    bindings, three bulk writes and logout. A failed pre-flight (NS_PREFLIGHT=on) removes what
    was deployed and fails, so dehydrated stops before asking the CA.
    """
    challenges = challenge.parse_triples(args)
    challenge.validate(challenges)  # before loading settings or logging in: no write at all
    settings = load_settings()
    with open_client(settings) as client:
        deployment = challenge.deploy(client, settings, challenges)
        try:
            challenge.preflight(client, settings, challenges, deployment)
        except ChallengeError:
            for problem in challenge.clean(client, settings, challenges):
                logger.warning("removing the failed challenge: %s", problem)
            raise
    return 0


def clean_challenge(args: Sequence[str], load_settings: SettingsLoader) -> int:
    """Remove what deploy_challenge made; never fails (see the module docstring)."""
    challenges = challenge.parse_triples(args)
    settings = load_settings()
    try:
        with open_client(settings) as client:
            problems = challenge.clean(client, settings, challenges)
    except (NitroError, ChallengeError) as exc:
        problems = [str(exc)]
    for problem in problems:
        logger.warning("clean_challenge: %s (left for the sweep in exit_hook)", problem)
    return 0


def invalid_challenge(args: Sequence[str], load_settings: SettingsLoader) -> int:
    """Say why the CA refused a challenge (dehydrated 0.7 may name the wrong domain)."""
    result = args[1] if len(args) > 1 else ""
    match = _DETAIL.search(result)
    detail = match.group(1) if match else result.strip().replace("\n", " ")[:500]
    logger.error("the CA could not validate a challenge of %s: %s",
                 args[0] if args else "?", detail or "no detail given")
    return 0


def request_failure(args: Sequence[str], load_settings: SettingsLoader) -> int:
    """Log an HTTP error dehydrated got from the CA."""
    status, body, method = [*args, "", "", ""][:3]
    logger.error("the CA answered a %s request with HTTP %s: %s", method or "?",
                 status or "?", " ".join(body.split())[:500])
    return 0


# -- certificates -------------------------------------------------------------------------


def deploy_cert(args: Sequence[str], load_settings: SettingsLoader) -> int:
    """Install the new certificate: DOMAIN KEYFILE CERTFILE FULLCHAINFILE CHAINFILE TIMESTAMP."""
    return _deploy_certificate("deploy_cert", args, load_settings)


def unchanged_cert(args: Sequence[str], load_settings: SettingsLoader) -> int:
    """Same files as last time: deploy again, which is a no-op unless the appliance lost them."""
    return _deploy_certificate("unchanged_cert", args, load_settings)


def _deploy_certificate(hook: str, args: Sequence[str], load_settings: SettingsLoader) -> int:
    module = _deploy_module()
    domain, keyfile, certfile, _fullchain, chainfile = [*args, "", "", "", "", ""][:5]
    if module is None:
        logger.info("%s for %s: certificate deployment is not implemented yet; not deployed",
                    hook, domain or "?")
        return 0
    settings = load_settings()
    with open_client(settings) as client:
        # dehydrated exports the certificate's alias (its directory name) to the hook.
        result = module.deploy_cert(client, settings, domain, keyfile, certfile, chainfile,
                                    alias=os.environ.get("alias") or None)
    logger.info("%s: %s -> certkey %s (%s)", hook, result.name, result.certkey, result.action)
    return 0


def _deploy_module() -> Optional[ModuleType]:
    """``ns_letsencrypt.deploy`` when it exists (it is developed separately)."""
    try:
        return importlib.import_module(f"{__package__}.deploy")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.deploy":
            raise  # the deploy module exists but is broken: that must not pass silently
        return None


def generate_csr(args: Sequence[str], load_settings: SettingsLoader) -> int:
    """Print nothing: dehydrated then generates the CSR itself."""
    return 0


# -- the same operations as commands ------------------------------------------------------


def clean_names(domains: Sequence[str], load_settings: SettingsLoader) -> int:
    """``clean DOMAIN...``: remove our challenge objects for these names, whatever the token."""
    settings = load_settings()
    with open_client(settings) as client:
        problems = challenge.clean_domains(client, settings, domains)
    for problem in problems:
        logger.warning("clean: %s", problem)
    return int(ExitStatus.CHALLENGE) if problems else 0


def sweep_now(load_settings: SettingsLoader, grace: float) -> int:
    """``sweep``: remove leftovers now; prints the names removed, one per line."""
    settings = load_settings()
    with open_client(settings) as client:
        removed = challenge.sweep(client, settings, grace=grace)
    for name in removed:
        print(name)
    return 0


HANDLERS: dict[str, HookHandler] = {
    "startup_hook": startup_hook,
    "deploy_challenge": deploy_challenge,
    "clean_challenge": clean_challenge,
    "invalid_challenge": invalid_challenge,
    "request_failure": request_failure,
    "deploy_cert": deploy_cert,
    "unchanged_cert": unchanged_cert,
    "generate_csr": generate_csr,
    "exit_hook": exit_hook,
}
