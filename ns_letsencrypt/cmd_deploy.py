"""The ``deploy``, ``reconcile`` and ``save-config`` commands around deploy.py.

``deploy`` installs one certificate by hand (what the hook's deploy_cert does); ``reconcile``
compares every certificate in dehydrated's domains.txt with the appliance and redeploys what
differs, in one process. Both save the configuration once at the end (NS_SAVE_CONFIG) and print
one line per certificate on stdout (``--json``: one JSON document).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Callable, Optional

from . import runstate, targets
from .appliance import finish_run
from .config import Settings
from .deploy import Deployer, DeployResult, deploy_cert
from .errors import ConfigError, DeployError
from .ha import follow_primary
from .nitro import NitroClient
from .reconcile import ReconcileResult, reconcile
from .session import open_client

SettingsLoader = Callable[[], Settings]


def configure_deploy(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cert", metavar="CERT", help="the certificate (dehydrated's cert.pem)")
    parser.add_argument("key", metavar="KEY", help="its private key (privkey.pem)")
    parser.add_argument("chain", metavar="CHAIN", help="the intermediates (chain.pem)")
    parser.add_argument("--domain", help="the certificate's first name as in domains.txt "
                                         "(default: the certificate's first SAN)")
    parser.add_argument("--alias", help="dehydrated's alias of the certificate; names the certkey")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run_deploy(args: argparse.Namespace, load_settings: SettingsLoader) -> int:
    return _over_targets("deploy", load_settings, lambda target: _deploy(args, target))


def _over_targets(name: str, load_settings: SettingsLoader,
                  work: Callable[[Settings], int], certs_only: bool = True) -> int:
    """``work`` on the one appliance, or on every (certificate) target of NS_TARGETS in
    parallel; failed targets are named together (exit 8) after the others are done."""
    settings = load_settings()
    if not settings.targets:
        return work(follow_primary(settings))  # NS_URL may name an HA secondary
    chosen = [t for t in settings.targets if targets.takes_certs(t) or not certs_only]
    return targets.combine(name, targets.run_on(chosen, work))


def _deploy(args: argparse.Namespace, settings: Settings) -> int:
    with open_client(settings) as client:
        try:
            result = deploy_cert(client, settings, args.domain, args.key, args.cert,
                                 args.chain, alias=args.alias)
        except DeployError as exc:
            if exc.step in ("bind", "ha-verify"):  # deployed; a binding or the secondary failed
                finish_run(client, settings, True)
            raise
        saved = finish_run(client, settings, result.changed)
    _print([result], saved, args.json, target=settings.target)
    return 0


def configure_save_config(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults()  # no options: saves unless NS_SAVE_CONFIG=never


def run_save_config(args: argparse.Namespace, load_settings: SettingsLoader) -> int:
    """Save the running configuration now (the original tool's ``saveconfig``)."""
    return _over_targets("save-config", load_settings, _save, certs_only=False)


def _save(settings: Settings) -> int:
    with open_client(settings) as client:
        saved = finish_run(client, settings, changed=True)
    print(_tag(settings) + ("configuration saved" if saved else
                            "not saved (NS_SAVE_CONFIG=never)"))
    return 0


def configure_reconcile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--basedir", default=os.environ.get("BASEDIR"),
                        help="dehydrated's BASEDIR (default: $BASEDIR, as dehydrated exports it "
                             "to hooks)")
    parser.add_argument("--domains-txt", help="dehydrated's domains.txt (default: "
                                              "<basedir>/domains.txt)")
    parser.add_argument("--certs-dir", help="dehydrated's CERTDIR (default: $CERTDIR, else "
                                            "<basedir>/certs)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    # certbot (issue 12): its lineages instead of dehydrated's domains.txt
    parser.add_argument("--certbot-dir", metavar="DIR",
                        help="reconcile every certbot lineage under DIR/live instead "
                             "(certbot's --config-dir, e.g. /etc/letsencrypt)")


def run_reconcile(args: argparse.Namespace, load_settings: SettingsLoader) -> int:
    certbot_dir = Path(args.certbot_dir) if args.certbot_dir else None
    domains: Optional[Path] = None
    if certbot_dir is None:
        domains, certs_dir = _dehydrated_paths(args)
    else:
        from .certbot import lineages

        lineages(certbot_dir)  # a wrong directory fails before the settings are loaded
        certs_dir = certbot_dir / "live"  # <lineage>/cert.pem, as dehydrated's CERTDIR
    return _over_targets("reconcile", load_settings,
                         lambda target: _reconcile(args, target, certbot_dir, domains,
                                                   certs_dir))


def _reconcile(args: argparse.Namespace, settings: Settings, certbot_dir: Optional[Path],
               domains: Optional[Path], certs_dir: Path) -> int:
    # After a scripted dehydrated run, startup_hook already reported unsaved changes.
    scripted = os.environ.get("NS_LE_SCRIPT_RECONCILES") == "1"
    run = runstate.current(settings)  # after a scripted run: its session and inventory
    with open_client(settings, run=run) as client:
        deployer = Deployer(client, settings, with_files=True, report_unsaved=not scripted)
        runstate.seed_inventory(run, deployer, with_files=True)
        try:
            if certbot_dir is not None:
                from .certbot import reconcile_lineages

                result = reconcile_lineages(settings, certbot_dir, deployer)
            else:
                assert domains is not None  # set when not certbot
                result = reconcile(client, settings, domains, certs_dir, deployer=deployer)
        finally:
            runstate.keep_inventory(run, deployer)
        saved = finish_run(client, settings, result.changed)
        _note_for_run_end(client, settings, certs_dir, result)
    _print(result.deployed, saved, args.json, checked=len(result.checked),
           failed=[name for name, _ in result.failures], target=settings.target)
    result.raise_for_failures()
    return 0


def _note_for_run_end(client: NitroClient, settings: Settings, certs_dir: Path,
                      result: ReconcileResult) -> None:
    """Issue 13: in a scheduled run, keep the failures, and the deployed inventory when metrics
    or expiry notices need it (one list call), for ``run-end``."""
    from .lifecycle import inventory, journal

    if journal.run_dir() is None:
        return
    target = inventory.target_of(settings)
    for name, exc in result.failures:
        journal.record_failure(name, target, exc)
    for deployed in result.deployed:
        journal.record_deployed(deployed.name, target, deployed.certkey, deployed.serial)
    if inventory.needed(settings):
        inventory.save_for_run(inventory.read(client, settings, certs_dir))


def _dehydrated_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    base = Path(args.basedir) if args.basedir else None
    domains = Path(args.domains_txt) if args.domains_txt else (base / "domains.txt" if base
                                                                 else None)
    certs_env = os.environ.get("CERTDIR")
    certs_dir = Path(args.certs_dir) if args.certs_dir else (
        Path(certs_env) if certs_env else (base / "certs" if base else None))
    if domains is None or certs_dir is None:
        raise ConfigError("reconcile needs dehydrated's directory",
                          hint="pass --basedir (or --domains-txt and --certs-dir)")
    return domains, certs_dir


def _tag(settings: Settings) -> str:
    return f"[{settings.target}] " if settings.target else ""


def _print(results: list[DeployResult], saved: bool, as_json: bool, target: str = "",
           **extra: Any) -> None:
    if as_json:  # NS_TARGETS: one compact document per target and line
        document = {"deployed": [_as_dict(r) for r in results], "saved": saved, **extra}
        if target:
            print(json.dumps({"target": target, **document}))
        else:
            print(json.dumps(document, indent=2))
        return
    tag = f"[{target}] " if target else ""
    for r in results:
        chain = " -> ".join(r.chain) or "no chain"
        bound = f"; bound to {', '.join(r.bound)}" if r.bound else ""
        print(f"{tag}{r.name}: certkey {r.certkey} {r.action} (serial {r.serial}; {chain}{bound})")


def _as_dict(result: DeployResult) -> dict[str, Any]:
    return {"name": result.name, "certkey": result.certkey, "action": result.action,
            "serial": result.serial, "chain": result.chain, "removed": result.removed,
            "bound": result.bound, "bindings_changed": result.bindings_changed}
