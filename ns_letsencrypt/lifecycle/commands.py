"""The lifecycle commands: ``ari`` (which certificates ARI says to renew), ``ca`` (what the CA
offers) and ``run-end`` (notifications, metrics and state at the end of a scheduled run).

``ari --due`` prints the domains.txt lines to force on stdout, one per line, for ns-cronjob.sh;
everything else goes to the log on stderr. ``run-end`` always exits 0: a notification or a
metrics file that cannot be written is logged, never a reason to change the run's result.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Optional

from ..config import Settings
from ..errors import NsLeError
from ..reconcile import parse_domains
from ..register import home_dir
from . import acme, ari, inventory, journal, metrics, notify, state
from .dehydrated_conf import DehydratedConfig, read_config

logger = logging.getLogger(__name__)

SettingsLoader = Callable[[], Settings]


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="CONFIG_SH",
                        help="dehydrated's config.sh (default: <NS_LE_HOME or install "
                             "dir>/config.sh)")


def _dehydrated_config(args: argparse.Namespace) -> DehydratedConfig:
    home = home_dir()
    return read_config(args.config or home / "config.sh", home)


# -- ari ----------------------------------------------------------------------------------


def configure_ari(parser: argparse.ArgumentParser) -> None:
    _add_config(parser)
    parser.add_argument("--due", action="store_true",
                        help="print the domains.txt lines whose ARI renewal time has come "
                             "(what ns-cronjob.sh forces); without it, only log the windows")


def run_ari(args: argparse.Namespace, load_settings: SettingsLoader) -> int:
    """Check every certificate's ARI window; with --due print the lines to renew now."""
    settings = load_settings()
    if not settings.ari:
        logger.info("ARI: off (NS_ARI=off); RENEW_DAYS decides")
        return 0
    config = _dehydrated_config(args)
    domains = parse_domains(config.domains_txt)
    path = state.state_path(home_dir())
    data = state.load(path)
    due = ari.due_lines(config, domains, data, datetime.datetime.now(datetime.timezone.utc))
    state.save(path, data)
    if args.due:
        for line in due:
            print(ari.dehydrated_line(line))
    return 0


# -- ca -----------------------------------------------------------------------------------


def configure_ca(parser: argparse.ArgumentParser) -> None:
    _add_config(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def describe_ca(config: DehydratedConfig) -> dict[str, Any]:
    """What the CA's directory offers, and what config.sh asks of it."""
    directory = acme.directory(config.ca_url, config.verify)
    meta_value = directory.get("meta")
    meta: dict[str, Any] = meta_value if isinstance(meta_value, dict) else {}
    profiles_value = meta.get("profiles")
    profiles: dict[str, Any] = profiles_value if isinstance(profiles_value, dict) else {}
    return {
        "directory": config.ca_url,
        "profiles": {str(k): str(v) for k, v in profiles.items()},
        "ari": ari.renewal_info_url(directory) is not None,
        "renewal_info": ari.renewal_info_url(directory),
        "eab_required": bool(meta.get("externalAccountRequired")),
        "terms_of_service": meta.get("termsOfService"),
        "configured_profile": config.profile,
        "eab_configured": config.eab_kid_set,
    }


def run_ca(args: argparse.Namespace, load_settings: SettingsLoader) -> int:
    """Print what the configured CA offers."""
    info = describe_ca(_dehydrated_config(args))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    profiles = info["profiles"]
    rows = [("directory", info["directory"]),
            ("profiles", ", ".join(profiles) if profiles else "none offered"),
            *((f"  {name}", text) for name, text in profiles.items()),
            ("ARI (renewalInfo)", info["renewal_info"] or "not offered"),
            ("EAB required", "yes" if info["eab_required"] else "no"),
            ("terms of service", info["terms_of_service"] or "-"),
            ("ACME_PROFILE", info["configured_profile"] or "<unset> (the CA's default)"),
            ("EAB_KID", "set" if info["eab_configured"] else "<unset>")]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    if info["configured_profile"] and profiles and info["configured_profile"] not in profiles:
        logger.warning("ACME_PROFILE=%s is not one of the CA's profiles (%s)",
                       info["configured_profile"], ", ".join(profiles))
        return 2
    return 0


# -- run-end ------------------------------------------------------------------------------


def configure_run_end(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exit-status", type=int, required=True, metavar="N",
                        help="the scheduled run's exit status (0: success)")
    parser.add_argument("--certs-dir", type=Path, metavar="DIR",
                        help="dehydrated's CERTDIR (names the certificates in the metrics)")


def run_run_end(args: argparse.Namespace, load_settings: SettingsLoader) -> int:
    """Notifications, metrics and the last-run record of a scheduled run; always 0."""
    try:
        settings = load_settings()
    except NsLeError as exc:
        logger.warning("run end: settings unreadable (%s); no notification or metrics", exc)
        return 0
    path = state.state_path(home_dir())
    data = state.load(path)
    now = time.time()
    data["last_run"] = {"end": now, "success": args.exit_status == 0}
    rows = _inventory(settings, args.certs_dir)
    if settings.notify:
        _notify(settings, args.exit_status, rows, data, now)
    if settings.metrics_file:
        _write_metrics(settings.metrics_file, rows, data)
    try:
        state.save(path, data)
    except OSError as exc:
        logger.warning("could not write %s: %s", path, exc)
    return 0


def _inventory(settings: Settings, certs_dir: Optional[Path]) -> Optional[list[inventory.Deployed]]:
    rows = inventory.saved_for_run()
    if rows is not None or not inventory.needed(settings):
        return rows
    from ..session import open_client  # reconcile did not run (an earlier step failed)

    try:
        with open_client(settings) as client:
            return inventory.read(client, settings, certs_dir)
    except NsLeError as exc:
        logger.warning("run end: the appliance could not be read (%s)", exc)
        return None


def _notify(settings: Settings, exit_status: int, rows: Optional[list[inventory.Deployed]],
            data: dict[str, Any], now: float) -> None:
    entries = journal.read()
    messages: list[tuple[str, str, str]] = []
    if exit_status != 0 and "failure" in settings.notify_on:
        failures = [e for e in entries if e.get("event") == "failure"]
        messages.append((*notify.failure_message(failures, exit_status), "failure"))
    if rows is not None and "expiry" in settings.notify_on:
        notified = data.setdefault("expiry", {})
        news = notify.expiry_news(rows, notified, now)
        if news:
            messages.append((*notify.expiry_message(news, now), "warning"))
    deployed = [e for e in entries if e.get("event") == "deployed"]
    if deployed and "renewal" in settings.notify_on:
        messages.append((*notify.renewal_message(deployed), "success"))
    for title, body, kind in messages:
        try:
            notify.send(settings, title, body, kind)
        except Exception as exc:  # a broken notifier must not fail the run
            logger.warning("notification %r failed: %s", title, type(exc).__name__)


def _write_metrics(path: str, rows: Optional[list[inventory.Deployed]],
                   data: dict[str, Any]) -> None:
    reg = metrics.registry(rows or [], ari.chosen_times(data), data.get("last_run"))
    try:
        metrics.write(Path(path), reg)
    except OSError as exc:
        logger.warning("could not write NS_METRICS_FILE %s: %s", path, exc)
