"""The ``test`` command: is the appliance reachable, are we allowed in, is it ready?

Prints one line per check (or one JSON object with ``--json``) on stdout and returns the exit
status the checks imply (see :class:`errors.ExitStatus`). ``--show-fingerprint`` instead reads
the management certificate without verification and prints the ``NS_TLS_PIN`` line for it.
Also the body of the legacy ``ns-copytons.py test`` verb.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import urllib.parse
from typing import Callable

from .config import Settings
from .errors import ApplianceNotReady, ConfigError, ExitStatus
from .ha import follow_primary
from .report import Check, Level, as_json, failed, overall_status, render_text, value_of

SettingsLoader = Callable[[], Settings]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``test`` to its subparser."""
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (checks, firmware, ha_state, exit_status)")
    parser.add_argument("--show-fingerprint", action="store_true",
                        help="print the SHA-256 of the management certificate in NS_TLS_PIN "
                             "format (read without verification; sends no credentials)")


def run(args: argparse.Namespace, load_settings: SettingsLoader) -> int:
    """Run the checks (or show the fingerprint), print the result, return the exit status."""
    if args.show_fingerprint:
        return show_fingerprint(args, load_settings)
    checks = readiness_checks(load_settings)
    if args.json:
        print(as_json(checks, {"firmware": value_of(checks, "firmware"),
                               "ha_state": value_of(checks, "ha")}))
    else:
        print(render_text(checks))
    return int(overall_status(checks))


def readiness_checks(load_settings: SettingsLoader) -> list[Check]:
    """Load the configuration and run the connectivity report; a config error is a check too."""
    from .appliance import connectivity_report
    from .register import home_dir
    from .session import open_client

    try:
        settings = load_settings()
    except ConfigError as exc:
        return [failed("config", exc.message, exc.hint, ExitStatus.CONFIG)]
    from .dns import flow as dns_flow  # dns-01 pre-flight (issue 11)

    home = home_dir()  # dehydrated's domains.txt and certs/, for the NS_BIND and DNS checks
    domains = home / "domains.txt"
    checks: list[Check] = []
    for target in settings.targets or (settings,):  # NS_TARGETS: every target is checked
        try:
            target = follow_primary(target)  # NS_URL may name an HA secondary
        except ApplianceNotReady as exc:
            found = [Check("ha", Level.FAIL, exc.message, exc.hint, ExitStatus.NOT_READY,
                           value="secondary")]
        else:
            found = connectivity_report(open_client(target), target, domains, home / "certs")
        if target.target:
            found = [dataclasses.replace(c, name=f"{target.target}:{c.name}") for c in found]
        checks.extend(found)
    return checks + dns_flow.checks(settings, domains if domains.is_file() else None)


def show_fingerprint(args: argparse.Namespace, load_settings: SettingsLoader) -> int:
    """Print the NS_TLS_PIN line for the appliance's certificate and how to use it.

    Raises:
        ConfigError: NS_URL is not an https:// URL.
        NitroConnectionError: the TLS handshake failed.
    """
    from .nitro import fetch_server_fingerprint

    url = args.url or _url_only(load_settings)
    if urllib.parse.urlsplit(url).scheme.lower() != "https":
        raise ConfigError(f"NS_URL {url} is not https://: there is no certificate to pin",
                          "use https://<NSIP> to encrypt the NITRO traffic")
    pin = fetch_server_fingerprint(url)
    if args.json:
        print(json.dumps({"url": url, "tls_pin": pin}))
        return int(ExitStatus.OK)
    print(f"NS_TLS_PIN={pin}")
    print(f"# SHA-256 of the certificate presented by {url}, read WITHOUT verification.")
    print("# Before you trust it, compare it with the appliance itself, e.g. in its shell:")
    print("#   openssl x509 -noout -fingerprint -sha256 -in /nsconfig/ssl/ns-server.cert")
    print("# (it prints the same hex digits in upper case, separated by colons),")
    print("# then put the NS_TLS_PIN line into the .env file (or the environment).")
    print("# If the management certificate is ever replaced, update NS_TLS_PIN.")
    return int(ExitStatus.OK)


def _url_only(load_settings: SettingsLoader) -> str:
    """NS_URL from the configuration, or from the environment when the rest of the
    configuration is incomplete: reading a certificate needs nothing but the address."""
    try:
        return load_settings().url
    except ConfigError:
        url = os.environ.get("NS_URL", "").strip()  # the environment outranks every file
        if not url:
            raise
        return url
