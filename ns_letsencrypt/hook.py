"""The dehydrated hook contract: one hook call (one process) -> the operations it stands for.

dehydrated runs ``hooks/ns-hook.sh <hook> <args...>``, which runs ``ns-letsencrypt hook <hook>
<args...>``. :func:`run_hook` dispatches on the name; unknown names succeed and do nothing,
because dehydrated probes with a made-up name and adds new hooks over time.

Exit status is dehydrated's control flow: non-zero from ``startup_hook`` or ``deploy_challenge``
stops the run before the CA is asked to validate anything. ``clean_challenge`` always exits 0:
it runs after validation, and a non-zero exit would make dehydrated throw away a certificate
the CA has already agreed to issue; what it could not remove (even when the appliance is
unreachable) is logged as a warning and swept by ``exit_hook`` or the next ``startup_hook``.
In a signing run the hook script queues http-01 removals for the next hook process instead
of starting Python for them (:mod:`ns_letsencrypt.cleanqueue`); that process removes them
first, through the same ``clean_challenge``.
Settings are loaded lazily, so hooks that need no appliance work without a configuration.

Also the bodies of the ``challenge``, ``clean`` and ``sweep`` commands, which run the same
operations by hand (and for the original tool's ``ns-copytons.py challenge|clean`` verbs).

Certificates go through :mod:`ns_letsencrypt.deploy` (``deploy_cert`` and ``unchanged_cert``);
``exit_hook`` reconciles every certificate and saves the configuration once per run.

Inside a scheduled run (``NS_LE_RUN_DIR``) the hook processes share one NITRO session and what
they read once (:mod:`ns_letsencrypt.runstate`): ``startup_hook`` leaves the RESPONDER and
vserver checks to the first ``deploy_challenge`` (which runs them before deploying anything),
and ``exit_hook`` sweeps again only when a challenge of this run may not have been removed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from . import appliance, challenge, cleanqueue, runlog, runstate, targets
from .config import Settings
from .errors import ChallengeError, ExitStatus, NitroApiError, NitroError, NsLeError
from .nitro import NitroClient
from .report import Check
from .session import open_client

if TYPE_CHECKING:
    from . import reconcile

# deploy and reconcile (and cryptography with them) are imported where a certificate is
# handled: the challenge hooks start one Python process each and should not pay for them.

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
    if name == "startup_hook":
        cleanqueue.discard()
    else:
        _clean_queued(load_settings)
    # each target of NS_TARGETS (or the one appliance), on its HA primary: targets.py, ha.py
    return targets.run_hook(name, handler, args, load_settings)


def _clean_queued(load_settings: SettingsLoader) -> None:
    """Remove the http-01 challenges hooks/ns-hook.sh queued instead of starting Python."""
    queued = cleanqueue.take()
    if not queued:
        return
    # Only http-01 calls are queued; this process may belong to a dns-01 certificate (with
    # dehydrated --keep-going the next certificate's first hook takes the queue).
    kind = os.environ.get("CHALLENGETYPE")
    os.environ["CHALLENGETYPE"] = "http-01"
    try:
        targets.run_hook("clean_challenge", clean_challenge, queued, load_settings)
    except NsLeError as exc:  # clean_challenge logs and returns 0; this is the last resort
        logger.warning("removing the queued challenges: %s (left for the sweep)", exc)
    finally:
        if kind is None:
            del os.environ["CHALLENGETYPE"]
        else:
            os.environ["CHALLENGETYPE"] = kind


# -- run start and end --------------------------------------------------------------------


def startup_hook(args: Sequence[str], load_settings: SettingsLoader) -> int:
    """Stop the run unless the appliance is reachable and ready; then sweep leftovers."""
    from .appliance import connectivity_report

    settings = load_settings()
    domains = _domains_file()
    run = runstate.current(settings)
    # One client for the checks and the sweep: its TLS connection serves both (and within a
    # run its session; outside one the checks log out, and the sweep logs in again).
    client = open_client(settings, run=run)
    checks = connectivity_report(client, settings, domains, _certs_dir(),
                                 with_challenge_checks=run is None)
    status = _report_checks("startup", checks)
    if status:
        logger.error("the appliance is not ready: stopping before any challenge is deployed")
        return int(status)
    from .dns import flow as dns_flow  # dns-01 (issue 11): pre-flight, sweep, per-cert config

    dns_flow.startup(settings, domains, _certs_dir())
    with client:
        _warn_about_unsaved_changes(client, settings)
        if _sweep(client, settings, "startup_hook") and run is not None:
            run.put(runstate.SWEPT, True)
    return 0


def _report_checks(when: str, checks: Sequence[Check]) -> int:
    """Log every check that is not OK; the exit status they call for (0: go on)."""
    from .report import Level, overall_status

    for check in checks:
        if check.level is not Level.OK:
            hint = f" (hint: {check.hint})" if check.hint else ""
            log = logger.error if check.level is Level.FAIL else logger.warning
            log("%s check %s: %s%s", when, check.name, check.detail, hint)
    return int(overall_status(checks))


def _warn_about_unsaved_changes(client: NitroClient, settings: Settings) -> None:
    # Saving at the end of the run persists everything in the running configuration, so an
    # admin's half-finished work made before this run would be saved with ours: say so now.
    if settings.save_config != "never" and appliance.unsaved_changes(client):
        logger.warning(
            "the appliance already has unsaved configuration changes made before this run; "
            "if this run changes anything, saving the configuration will persist them too"
        )


def exit_hook(args: Sequence[str], load_settings: SettingsLoader) -> int:
    """End of a dehydrated run: sweep leftovers, reconcile every certificate, save once.

    dehydrated skips clean_challenge when a CA request fails, hence the sweep. It calls
    deploy_cert only when it issues, so a deploy that failed earlier is retried here by
    comparing every certificate of domains.txt with the appliance (one process, list calls).
    dehydrated ignores this hook's exit status, so after a successful run the cron scripts
    reconcile themselves and tell this hook so (``NS_LE_SCRIPT_RECONCILES=1``): one pass per
    run, and a certificate that cannot be deployed is reported once, with the right status.
    """
    error = args[0] if args else ""
    if error:
        logger.error("dehydrated reported: %s", error)
    settings = load_settings()
    script_reconciles = not error and os.environ.get("NS_LE_SCRIPT_RECONCILES") == "1"
    from .dns import flow as dns_flow

    dns_flow.sweep_quietly(settings, "exit_hook")
    run = runstate.current(settings)
    with open_client(settings, run=run) as client:
        if _may_have_leftovers(run):
            _sweep(client, settings, "exit_hook")
        try:
            # a target with NS_<T>_ROLE=challenges gets no certificates
            skip = script_reconciles or not targets.takes_certs(settings)
            result = None if skip else _reconcile(client, settings, run)
            changed = _issued_this_run() or (result is not None and result.changed)
            appliance.finish_run(client, settings, changed)
        finally:
            if not script_reconciles:  # nothing of this run follows: end its session
                client.end_session()
    if result is not None:
        _note_failures(settings, result)
        result.raise_for_failures()
    return 0


def _note_failures(settings: Settings, result: reconcile.ReconcileResult) -> None:
    """Issue 13: keep the failures of a failed run's reconciliation for its notification."""
    from .lifecycle import inventory, journal

    for name, exc in result.failures:
        journal.record_failure(name, inventory.target_of(settings), exc)


def _may_have_leftovers(run: Optional[runstate.RunState]) -> bool:
    """Whether exit_hook must sweep: always outside a run; within one, unless the startup
    sweep ran and every challenge deployed since was removed completely (then a second
    listing could only find what the first one already judged)."""
    if run is None or not run.get(runstate.SWEPT):
        return True
    if run.get(runstate.PENDING):
        return True
    logger.debug("every challenge of this run was removed; no second sweep")
    return False


def _sweep(client: NitroClient, settings: Settings, where: str) -> bool:
    """Sweep leftovers; False (logged) when the appliance refused."""
    try:
        runlog.record_sweep(challenge.sweep(client, settings), settings)
        return True
    except NitroApiError as exc:
        logger.warning("%s: sweeping leftover challenge objects failed: %s", where, exc)
        return False


def _reconcile(client: NitroClient, settings: Settings,
               run: Optional[runstate.RunState]) -> Optional[reconcile.ReconcileResult]:
    """Reconcile the certificates of ``$BASEDIR/domains.txt`` (None when there is none)."""
    domains = _domains_file()
    if domains is None:
        logger.debug("no $BASEDIR/domains.txt: nothing to reconcile")
        return None
    from . import deploy, reconcile  # cryptography with them: only when there is work

    certs_dir = os.environ.get("CERTDIR") or str(domains.parent / "certs")
    deployer = deploy.Deployer(client, settings, with_files=True, report_unsaved=False)
    runstate.seed_inventory(run, deployer, with_files=True)
    try:
        return reconcile.reconcile(client, settings, domains, certs_dir, deployer=deployer)
    finally:
        runstate.keep_inventory(run, deployer)


def _domains_file() -> Optional[Path]:
    basedir = os.environ.get("BASEDIR")
    path = Path(basedir) / "domains.txt" if basedir else None
    return path if path is not None and path.is_file() else None


def _certs_dir() -> Path:
    """dehydrated's CERTDIR (it exports it to the hook), else <BASEDIR>/certs."""
    basedir = os.environ.get("BASEDIR") or "."
    return Path(os.environ.get("CERTDIR") or Path(basedir) / "certs")


def _issued_this_run() -> bool:
    """Whether dehydrated issued (and deploy_cert deployed) a certificate during this run.

    No state passes between hook processes; dehydrated's own lock file is created when the
    run starts, so a certificate file newer than it was issued by this run.
    """
    basedir = os.environ.get("BASEDIR")
    lock = Path(basedir) / "lock" if basedir else None
    if lock is None or not lock.exists():
        return False
    started = lock.stat().st_mtime
    certs_dir = Path(os.environ.get("CERTDIR") or lock.parent / "certs")
    return any(
        cert.resolve().stat().st_mtime >= started for cert in certs_dir.glob("*/cert.pem")
        if cert.exists()
    )


# -- challenges ---------------------------------------------------------------------------


def deploy_challenge(args: Sequence[str], load_settings: SettingsLoader) -> int:
    """Deploy all challenges of this call (one triple, or all with HOOK_CHAIN=yes).

    The startup checks already ran in startup_hook, so this costs one read of the bindings and
    three bulk writes (plus login and logout with NS_AUTH=session). A refused write (e.g. a
    command policy that does not allow the bind) or a failed pre-flight (NS_PREFLIGHT=on)
    removes what was deployed and fails, so dehydrated stops before asking the CA.
    """
    from .dns import flow as dns_flow

    if dns_flow.is_dns_call():  # dns-01 (issue 11): publish TXT values, wait until visible
        dns_flow.deploy(load_settings(), dns_flow.records_from(args))
        return 0
    challenges = challenge.parse_triples(args)
    challenge.validate(challenges)  # before loading settings or logging in: no write at all
    settings = load_settings()
    run = runstate.current(settings)
    with open_client(settings, brief=True, run=run) as client:
        status = _challenge_checks(client, settings, run)
        if status:
            return status
        if run is not None:
            run.add_pending([c.token for c in challenges])
        try:
            deployment = challenge.deploy(client, settings, challenges)
            challenge.preflight(client, settings, challenges, deployment)
        except (ChallengeError, NitroApiError):
            _remove_failed(client, settings, challenges, run)
            raise
    return 0


def _challenge_checks(client: NitroClient, settings: Settings,
                      run: Optional[runstate.RunState]) -> int:
    """Within a run, the first challenge checks RESPONDER and the vserver (startup_hook left
    them out); non-zero stops the run before anything is deployed or validated."""
    if run is None or run.get(runstate.CHALLENGE_CHECKS):
        return 0
    status = _report_checks("challenge", appliance.challenge_checks(client, settings))
    if status:
        logger.error("the appliance is not ready: stopping before any challenge is deployed")
        return status
    run.put(runstate.CHALLENGE_CHECKS, True)
    return 0


def _remove_failed(client: NitroClient, settings: Settings,
                   challenges: Sequence[challenge.Challenge],
                   run: Optional[runstate.RunState]) -> None:
    """Best effort: the error being raised matters more than a problem while cleaning up."""
    try:
        problems = challenge.clean(client, settings, challenges)
    except NsLeError as exc:
        problems = [str(exc)]
    for problem in problems:
        logger.warning("removing the failed challenge: %s (left for the sweep)", problem)
    if not problems and run is not None:
        run.done_pending([c.token for c in challenges])


def clean_challenge(args: Sequence[str], load_settings: SettingsLoader) -> int:
    """Remove what deploy_challenge made; never fails (see the module docstring)."""
    from .dns import flow as dns_flow

    if dns_flow.is_dns_call():  # dns-01: remove exactly the values; failures go to the sweep
        try:
            dns_flow.clean(load_settings(), dns_flow.records_from(args))
        except NsLeError as exc:
            logger.warning("clean_challenge: %s (left for the sweep in exit_hook)", exc)
        return 0
    challenges = challenge.parse_triples(args)
    settings = load_settings()
    run = runstate.current(settings)
    try:
        with open_client(settings, brief=True, run=run) as client:
            problems = challenge.clean(client, settings, challenges)
    except (NitroError, ChallengeError) as exc:
        problems = [str(exc)]
    for problem in problems:
        logger.warning("clean_challenge: %s (left for the sweep in exit_hook)", problem)
    if not problems and run is not None:
        run.done_pending([c.token for c in challenges])
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
    """Same files as last time: make sure the appliance still has them.

    With a domains.txt, exit_hook reconciles every certificate in one process, so nothing is
    done here (one Python start per unchanged certificate would be waste). Certificates named
    with ``dehydrated -d`` are checked here, one at a time.
    """
    if _domains_file() is not None:
        return 0
    return _deploy_certificate("unchanged_cert", args, load_settings)


def _deploy_certificate(hook: str, args: Sequence[str], load_settings: SettingsLoader) -> int:
    from . import deploy

    domain, keyfile, certfile, _fullchain, chainfile = [*args, "", "", "", "", ""][:5]
    from .lifecycle import inventory, journal  # issue 13: what the run's end reports

    settings = load_settings()
    cert_name = os.environ.get("alias") or domain
    run = runstate.current(settings)
    try:
        # dehydrated exports the certificate's alias (its directory name) to the hook.
        bundle = deploy.load_bundle(keyfile, certfile, chainfile, domain,
                                    os.environ.get("alias") or None)
        with open_client(settings, run=run) as client:
            deployer = deploy.Deployer(client, settings, report_unsaved=False)
            runstate.seed_inventory(run, deployer, with_files=False)
            try:
                result = deployer.deploy(bundle)
            finally:
                runstate.keep_inventory(run, deployer)
    except NsLeError as exc:
        journal.record_failure(cert_name, inventory.target_of(settings), exc)
        raise
    if hook == "deploy_cert":
        journal.record_deployed(cert_name, inventory.target_of(settings), result.certkey,
                                result.serial)
    logger.info("%s: %s -> certkey %s (%s)", hook, result.name, result.certkey, result.action)
    return 0


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
